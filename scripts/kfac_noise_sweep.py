"""The tkfac noise sweep (configs/kfac_noise_sweep.yaml) over several training seeds, then its summary.

    python scripts/kfac_noise_sweep.py run CONFIG OUT [--seeds 0 1 2]   # spu-sim train per seed -> OUT/seed_<s>
    python scripts/kfac_noise_sweep.py summarise OUT                    # reads OUT/seed_*/, never trains

``run`` trains the config once per seed (train.seed and data.seed set to the seed: other batches, other
initial parameters and another train/test split). ``summarise`` reads each seed's config.yaml (the
resolved factor_bits, readout.adc.bits, kappa of every tkfac entry) and history.csv and writes OUT/noise_sweep.csv,
OUT/noise_sweep.json and OUT/noise_sweep.png. Metrics, per seed then mean and min-max over seeds:
  * area = mean over iterations of log(full-train-set loss): the whole curve, so speed counts;
  * benefit retained = (area_adam - area_tkfac) / (area_adam - area_kfac): 1 = all of digital K-FAC's
    advantage over adam (the first-order baseline on the same batches), 0 = none, < 0 = worse than adam;
    the benefit counts as lost when the mean over seeds is <= 0.5 (half of it gone);
  * late train loss = mean loss over the last third of the iterations; steps to train loss <= 0.15.
Engine: the ideal SPU backend (exact OU transient with the SPU's quantisation, ADC and noise).
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from spu_sim.config import read_yaml
from spu_sim.io import atomic_write_text
from spu_sim.plotting import pyplot, save_png
from spu_sim.train.loop import run_training
from spu_sim.train.plots import read_history

KNOBS = ("factor_bits", "readout.adc.bits", "kappa")   # keys of a tkfac entry (dotted: nested)
REFERENCES = ("kfac", "adam", "sgd")


def run(config: Path, out: Path, seeds: list[int]) -> None:
    raw, _ = read_yaml(config)
    for s in seeds:
        cfg = copy.deepcopy(raw)
        cfg["train"]["seed"] = s
        cfg.setdefault("data", {})["seed"] = s
        summary = run_training(cfg, out / f"seed_{s}")
        print(f"seed {s}: {len(summary['optimizers'])} optimisers in {summary['run_time_s']:.1f} s")


TARGET_LOSS = 0.15
LOST_BELOW = 0.5


def _curve_metrics(run_dir: Path) -> dict[str, dict[str, float]]:
    """{label: {area, late, steps}} of one seed's history (inf where the run diverged or never got there)."""
    out = {}
    for label, h in read_history(run_dir / "history.csv").items():
        it, loss = h["iteration"], h["train_loss"]
        ok = bool(np.all(np.isfinite(loss))) and it.max() == h["iteration"].max()
        late = it >= (2.0 / 3.0) * it.max()
        hit = np.nonzero(loss <= TARGET_LOSS)[0]
        out[label] = {"area": float(np.mean(np.log(loss))) if ok else np.inf,
                      "late": float(np.mean(loss[late])) if ok else np.inf,
                      "steps": float(it[hit[0]]) if ok and len(hit) else np.inf}
    return out


def _knob(entry: dict, key: str):
    """The value of a (dotted) key of an optimiser entry, None when it or a section on its path is absent."""
    for part in key.split("."):
        entry = entry.get(part) if isinstance(entry, dict) else None
    return entry


def summarise(out: Path) -> tuple[list[dict], dict]:
    runs = sorted(p for p in out.glob("seed_*") if (p / "history.csv").is_file())
    if not runs:
        raise SystemExit(f"{out}: no seed_*/history.csv; run 'kfac_noise_sweep.py run' first")
    cfg = yaml.safe_load((runs[0] / "config.yaml").read_text())
    curves = [_curve_metrics(r) for r in runs]
    errs = [json.loads((r / "summary.json").read_text())["optimizers"] for r in runs]
    by_name = {o["name"]: o["label"] for o in cfg["train"]["optimizers"] if o["name"] in REFERENCES}
    refs = {name: {m: float(np.mean([c[label][m] for c in curves])) for m in ("area", "late", "steps")}
            for name, label in by_name.items()}
    rows = []
    for o in cfg["train"]["optimizers"]:
        knobs = [k for k in KNOBS if _knob(o, k) not in (None, 0, 0.0)]
        if o["name"] != "tkfac" or len(knobs) != 1:
            continue
        kept = [(c[by_name["adam"]]["area"] - c[o["label"]]["area"]) /
                (c[by_name["adam"]]["area"] - c[by_name["kfac"]]["area"]) for c in curves]
        kept = [k if np.isfinite(k) else -np.inf for k in kept]
        late = [c[o["label"]]["late"] for c in curves]
        dir_err = [e[o["label"]].get("mean_nat_grad_rel_error", np.nan) for e in errs]
        rows.append({"label": o["label"], "knob": knobs[0], "value": _knob(o, knobs[0]),
                     "benefit_retained": float(np.mean(kept)), "benefit_retained_min": float(np.min(kept)),
                     "benefit_retained_max": float(np.max(kept)), "late_train_loss": float(np.mean(late)),
                     "steps_to_target": float(np.mean([c[o["label"]]["steps"] for c in curves])),
                     "mean_direction_rel_error": float(np.mean(dir_err)) if np.all(np.isfinite(dir_err)) else np.nan,
                     "final_test_accuracy": float(np.mean([e[o["label"]]["final_test_accuracy"] for e in errs])),
                     "benefit_kept": bool(np.mean(kept) > LOST_BELOW), "seeds": len(curves)})
    return rows, {"references": refs, "seeds": [r.name for r in runs], "target_loss": TARGET_LOSS,
                  "lost_below": LOST_BELOW}


def plot(rows: list[dict], meta: dict, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(15, 11), squeeze=False)
    styles = {"kfac": ("k", "--"), "adam": ("r", ":"), "sgd": ("g", "-.")}
    for col, knob in enumerate(KNOBS):
        sub = sorted((r for r in rows if r["knob"] == knob), key=lambda r: r["value"])
        x = np.array([r["value"] for r in sub], float)
        y = np.array([r["benefit_retained"] for r in sub])
        fin = np.isfinite(y)
        lo = np.array([r["benefit_retained_min"] for r in sub])
        hi = np.array([r["benefit_retained_max"] for r in sub])
        ax = axes[0][col]
        with np.errstate(invalid="ignore"):
            err = [np.nan_to_num(y - lo)[fin], np.nan_to_num(hi - y)[fin]]
        ax.errorbar(x[fin], y[fin], yerr=err, fmt="o-", capsize=3,
                    label=f"tkfac, ideal SPU (mean, min-max of {len(meta['seeds'])} seeds)")
        if (~fin).any():
            ax.plot(x[~fin], np.full((~fin).sum(), -0.9), "rx", ms=9, label="diverged")
        ax.axhline(1.0, color="k", ls="--", label="digital kfac")
        ax.axhline(0.0, color="r", ls=":", label="adam")
        ax.axhline(meta["lost_below"], color="0.5", lw=0.8)
        ax.set_ylim(-1.0, 1.5)
        ax.set_ylabel("K-FAC benefit over adam retained")
        ly = np.array([r["late_train_loss"] for r in sub])
        axes[1][col].plot(x[np.isfinite(ly)], ly[np.isfinite(ly)], "o-", label="tkfac")
        for name, ref in meta["references"].items():
            c, ls = styles[name]
            axes[1][col].axhline(ref["late"], color=c, ls=ls, label=name)
        axes[1][col].set_yscale("log")
        axes[1][col].set_ylabel("late train loss")
        axes[2][col].plot(x, [r["mean_direction_rel_error"] for r in sub], "s-")
        axes[2][col].set_yscale("log")
        axes[2][col].set_ylabel("mean |D_spu - D_kfac| / |D_kfac|")
        for a in (ax, axes[1][col], axes[2][col]):
            a.set_xlabel(knob + (" (normalised factor units)" if knob == "kappa" else ""))
            if knob == "kappa":
                a.set_xscale("log")
            a.grid(alpha=0.3)
        ax.legend(fontsize=7)
        axes[1][col].legend(fontsize=7)
    fig.suptitle("thermodynamic K-FAC: quantisation and noise of the SPU (engine: exact OU transient)")
    return save_png(fig, path)


def write_summary(out: Path) -> None:
    rows, meta = summarise(out)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "noise_sweep.csv", buf.getvalue())
    atomic_write_text(out / "noise_sweep.json", json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    print(plot(rows, meta, out / "noise_sweep.png"))
    for k, v in meta["references"].items():
        print(f"reference {k}: area {v['area']:.4f}, late loss {v['late']:.4f}, "
              f"steps to {TARGET_LOSS} {v['steps']:.1f}")
    for r in rows:
        print(f"{r['knob']:12s} {r['value']!s:8s} retained {r['benefit_retained']:+.2f} "
              f"[{r['benefit_retained_min']:+.2f}, {r['benefit_retained_max']:+.2f}]  "
              f"late loss {r['late_train_loss']:.4f}  "
              f"steps {r['steps_to_target']:.1f}  test acc {r['final_test_accuracy']:.4f}  "
              f"dir err {r['mean_direction_rel_error']:.3g}  {'kept' if r['benefit_kept'] else 'LOST'}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("config", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s = sub.add_parser("summarise")
    s.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        run(args.config, args.out, args.seeds)
        write_summary(args.out)
    else:
        write_summary(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
