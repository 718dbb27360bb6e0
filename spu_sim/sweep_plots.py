"""Plots of a finished (or partial) sweep, read from DIR/summary.csv, mitigation.csv and plan.json only.

    plot_sweep("runs/mc")   # -> [DIR/error_vs_<key>.png ..., DIR/mc_histogram.png, DIR/mc_yield.png]

- error_vs_<key>.png: every error metric of the ok runs against each swept key (points, median line;
  log axes where the values span more than a factor 20); failed runs marked at the bottom. A seed key
  (``simulation.seed``, ``circuit.tolerance.seed``: replications, no physical axis) gets no such plot: its runs
  are the spread of the points in the other keys' plots, or, when seeds are all that is swept, the histogram.
- mc_histogram.png: histogram of the sweep metric over Monte Carlo draws or swept seeds (and of the mitigated,
  group-averaged error when mitigation.csv exists); whole-number counts.
- mc_yield.png: yield (fraction of all runs, failed ones count as misses) against the threshold, the
  configured threshold marked.
Never simulates; matplotlib Agg, no LaTeX.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from .plotting import integer_ticks, no_minor_labels, pyplot, save_png
from .runs.records import PLAN_NAME
from .runs.summary import MITIGATION_NAME, SUMMARY_NAME, format_value

ERROR_COLUMNS = ("mean_rel_err", "op_rel_err", "cov_rel_err")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan


def is_seed_key(key: str) -> bool:
    """A config key that only names a random stream (simulation.seed, circuit.tolerance.seed): no axis to plot on."""
    leaf = key.rsplit(".", 1)[-1]
    return leaf == "seed" or leaf.endswith("_seed")


def metric_label(metric: str) -> str:
    """An axis label for a summary metric: its name, and what a *_rel_err is."""
    return f"{metric} (relative error)" if "rel_err" in metric else metric


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def plot_sweep(out_dir: str | Path) -> list[Path]:
    """Write the PNGs of the sweep in out_dir; returns their paths."""
    plt = pyplot()
    plt.rcParams["text.usetex"] = False
    out = Path(out_dir)
    plan = json.loads((out / PLAN_NAME).read_text())
    spec = plan["sweep"]
    rows = read_csv(out / SUMMARY_NAME)
    metric = spec.get("metric", "mean_rel_err")
    files: list[Path] = []
    if not rows:
        return files
    errors = [c for c in ERROR_COLUMNS if c in rows[0]] or ([metric] if metric in rows[0] else [])
    ok = [r for r in rows if r["status"] == "ok"]

    grid_keys = list(spec.get("grid", {}))
    for key in [k for k in grid_keys if not is_seed_key(k)]:
        values = spec["grid"][key]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        if numeric:
            xs_all = np.array(values, dtype=float)
            pos = lambda v: _num(v)  # noqa: E731
        else:
            labels = [str(format_value(v)) for v in values]  # as summary.csv spells them
            pos = lambda v: float(labels.index(v)) if v in labels else math.nan  # noqa: E731
            xs_all = np.arange(len(values), dtype=float)
        plotted = False
        for name in errors:
            x = np.array([pos(r[key]) for r in ok])
            y = np.array([_num(r[name]) for r in ok])
            keep = np.isfinite(x) & np.isfinite(y) & (y > 0)
            if not keep.any():
                continue
            plotted = True
            pts = ax.plot(x[keep], y[keep], "o", alpha=0.35, ms=4)[0]
            xu = np.unique(x[keep])
            med = [np.median(y[keep][x[keep] == u]) for u in xu]
            ax.plot(xu, med, "-", color=pts.get_color(), label=f"{name} (median)")
        failed = [r for r in rows if r["status"] != "ok"]
        if failed:
            xf = np.array([pos(r[key]) for r in failed])
            ax.plot(xf, np.zeros_like(xf), "x", color="red", transform=ax.get_xaxis_transform(),
                    clip_on=False, label=f"failed ({len(failed)})")
        if numeric and np.all(xs_all > 0) and xs_all.max() / xs_all.min() > 20:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(xs_all, labels, rotation=20)
        if plotted:
            ax.set_yscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel("relative error")
        ax.set_title(f"error vs {key} ({len(ok)} ok of {len(rows)} runs)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        path = out / f"error_vs_{_safe(key)}.png"
        save_png(fig, path)
        files.append(path)

    only_seeds = bool(grid_keys) and all(is_seed_key(k) for k in grid_keys)
    if (spec.get("monte_carlo") or only_seeds) and metric in rows[0]:
        y = np.array([_num(r[metric]) for r in ok])
        y = y[np.isfinite(y)]
        mit_path = out / MITIGATION_NAME
        mit = read_csv(mit_path) if mit_path.is_file() else []
        y_avg = np.array([_num(r.get(f"{metric}_averaged")) for r in mit]) if mit else np.zeros(0)
        y_avg = y_avg[np.isfinite(y_avg)]
        if len(y):
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            lo = min(y.min(), y_avg.min() if len(y_avg) else np.inf)
            hi = max(y.max(), y_avg.max() if len(y_avg) else -np.inf)
            bins = np.geomspace(lo * 0.9, hi * 1.1, 30) if lo > 0 else 30
            ax.hist(y, bins=bins, alpha=0.6, label=f"single realisation (n={len(y)}, median {np.median(y):.3g})")
            if len(y_avg):
                k = mit[0].get("group_size", "K")
                ax.hist(y_avg, bins=bins, alpha=0.6,
                        label=f"average of {k} realisations (n={len(y_avg)}, median {np.median(y_avg):.3g})")
            if lo > 0:
                ax.set_xscale("log")
                no_minor_labels(ax.xaxis)
            if spec.get("threshold"):
                ax.axvline(spec["threshold"], color="k", ls="--", label=f"threshold {spec['threshold']:g}")
            ax.set_xlabel(metric_label(metric))
            ax.set_ylabel("runs")
            integer_ticks(ax.yaxis)
            ax.set_title(f"Monte Carlo: {metric} ({len(rows) - len(ok)} failed)")
            ax.legend(fontsize=8)
            path = out / "mc_histogram.png"
            save_png(fig, path)
            files.append(path)

            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            n_all = len(rows)
            thr = np.geomspace(max(y.min() * 0.5, 1e-300), y.max() * 2, 200) if y.min() > 0 else np.linspace(0, y.max() * 2, 200)
            ax.plot(thr, [(y <= t).sum() / n_all for t in thr], label="single realisation")
            if len(y_avg):
                ax.plot(thr, [(y_avg <= t).sum() / len(mit) for t in thr], label="averaged (mitigation)")
            if spec.get("threshold"):
                t0 = spec["threshold"]
                ax.axvline(t0, color="k", ls="--")
                ax.annotate(f"yield {(y <= t0).sum() / n_all:.1%} at {t0:g}", (t0, 0.05), fontsize=8)
            if y.min() > 0:
                ax.set_xscale("log")
                no_minor_labels(ax.xaxis)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel(f"threshold on {metric_label(metric)}")
            ax.set_ylabel("yield (fraction of runs at or below)")
            ax.set_title(f"Monte Carlo yield: {metric}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
            path = out / "mc_yield.png"
            save_png(fig, path)
            files.append(path)
    return files
