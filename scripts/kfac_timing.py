"""K-FAC time model against the layer width n: digital against thermodynamic, n = 16 .. 4096.

    python scripts/kfac_timing.py OUT [--batch 32] [--inverse-every 10] [--t-stop-tau 50] [--measure-max 2048]

Measures this CPU's rates (one BLAS thread) for the two digital kernels (n x n matrix product, SPD
inverse by Cholesky)
for n up to --measure-max (larger n: the rate of the largest measured n, i.e. n^3 extrapolation), then
evaluates spu_sim.train.kfac_timing.asymptotics with the TNGD App. C constants (50 Gb/s link, 16-bit
DAC / resistors / ADC, tau = 1 us). Writes OUT/kfac_timing.csv, OUT/kfac_timing.json (rates, rows, fitted
exponents, crossovers) and OUT/kfac_timing.png. Engine: none (a model; only the digital rates are measured).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from spu_sim.io import atomic_write_text
from spu_sim.plotting import pyplot, save_png
from spu_sim.train import kfac_timing
from spu_sim.train.config import TimingConfig


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--inverse-every", type=int, default=10)
    ap.add_argument("--t-stop-tau", type=float, default=50.0)
    ap.add_argument("--measure-max", type=int, default=2048)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timing = TimingConfig().model_dump()
    tau_s = timing.pop("r_ohm") * timing.pop("c_farad")
    timing.pop("include_digital")
    ns = [2 ** k for k in range(4, 13)]
    measured = kfac_timing.measure_flop_rates([n for n in ns if n <= args.measure_max])
    by_n = {r["n"]: r for r in measured}
    rows = []
    for n in ns:
        rate = by_n.get(n) or measured[-1]
        row = kfac_timing.asymptotics([n], batch=args.batch, inverse_every=args.inverse_every, t_stop_tau=args.t_stop_tau,
                                      tau_s=tau_s, matmul_flops_per_s=rate["matmul_flops_per_s"],
                                      inverse_flops_per_s=rate["inverse_flops_per_s"], **timing)[0]
        row["rates_measured_at_n"] = rate["n"]
        rows.append(row)
    keys = ("digital_s", "thermo_s", "thermo_apply_s", "digital_inverse_s", "spu_refresh_s")
    big = [r for r in rows if r["n"] >= 256]
    exps = {k: kfac_timing.power_law_exponent([r["n"] for r in big], [r[k] for r in big]) for k in keys}

    def crossover(key: str) -> int | None:
        wins = [r["n"] for r in rows if r[key] < r["digital_s"]]
        return min(wins) if wins else None

    result = {"engine": "model (digital rates measured on this CPU)", "batch": args.batch,
              "inverse_every": args.inverse_every, "t_stop_tau": args.t_stop_tau, "tau_s": tau_s, "timing": timing,
              "measured_rates": measured, "rows": rows, "exponents_n_ge_256": exps,
              "thermo_faster_from_n": crossover("thermo_s"), "thermo_apply_faster_from_n": crossover("thermo_apply_s"),
              "inverse_speedup_at_4096": rows[-1]["digital_inverse_s"] / rows[-1]["spu_refresh_s"],
              "step_speedup_at_4096": rows[-1]["digital_s"] / rows[-1]["thermo_s"],
              "apply_step_speedup_at_4096": rows[-1]["digital_s"] / rows[-1]["thermo_apply_s"]}
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "kfac_timing.csv", buf.getvalue())
    atomic_write_text(out / "kfac_timing.json", json.dumps(result, indent=2) + "\n")

    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    n = np.array([r["n"] for r in rows])
    labels = {"digital_s": "digital K-FAC step", "thermo_s": "thermodynamic K-FAC step (SPU inverts)",
              "thermo_apply_s": "thermodynamic, SPU also applies (model only)"}
    for k, lab in labels.items():
        ax[0].loglog(n, [r[k] for r in rows], "o-", label=f"{lab} (~n^{exps[k]:.2f})")
    ax[0].axvline(args.measure_max, color="0.6", ls=":", lw=1)
    ax[0].set_title(f"per step, one n x n layer, batch {args.batch}, refresh every {args.inverse_every}")
    ax[1].loglog(n, [r["digital_inverse_s"] for r in rows], "o-", label="digital inverses (2 n^3 flops)")
    ax[1].loglog(n, [r["spu_refresh_s"] for r in rows], "s-", label=f"SPU inverses (n columns x {args.t_stop_tau:g} tau)")
    ax[1].set_title("inversion part only, per step (amortised)")
    for a in ax:
        a.set_xlabel("layer width n")
        a.set_ylabel("seconds")
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=8)
    fig.suptitle("K-FAC time model (digital rates measured on this CPU up to the dotted line; SPU: TNGD App. C)")
    print(save_png(fig, out / "kfac_timing.png"))
    for r in rows:
        print(f"n {r['n']:5d}  digital {r['digital_s']:.3e} s  thermo {r['thermo_s']:.3e} s  "
              f"thermo+apply {r['thermo_apply_s']:.3e} s  (inverse: digital {r['digital_inverse_s']:.3e}, "
              f"SPU {r['spu_refresh_s']:.3e})")
    print("exponents (n >= 256): " + ", ".join(f"{k} {v:.2f}" for k, v in exps.items()))
    print(f"thermo faster from n = {result['thermo_faster_from_n']}, thermo+apply from n = "
          f"{result['thermo_apply_faster_from_n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
