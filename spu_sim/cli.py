"""The ``spu-sim`` command line.

    spu-sim netlist    CONFIG --out DIR    write DIR/netlist.cir (and noise_<i>.txt), run nothing
    spu-sim simulate   CONFIG --out DIR    run ngspice, write DIR/result.npz
    spu-sim compare    CONFIG --out DIR    simulate + exact OU reference + metrics.json + plots
    spu-sim noise      CONFIG --out DIR    small-signal .noise analysis vs OU theory
    spu-sim crosscheck CONFIG --out DIR    one circuit on ngspice and on the exact linear engine, same noise
    spu-sim posterior  CONFIG --out DIR    posterior sampler circuit vs the exact / emcee posterior
    spu-sim sweep      CONFIG --out DIR    grid / Monte Carlo over config keys, in parallel, resumable
    spu-sim train      CONFIG --out DIR    NGD training loop with the SPU in the loop
    spu-sim experiment NAME CONFIG --out DIR   packaged experiments (RLC inversion, autocorrelation, ...)
    spu-sim check                          is ngspice usable here?

Exit codes: 0 ok, 1 simulation or internal failure, 2 bad input (config, matrix, unrealisable value).
Errors print one line, never a traceback (set SPU_SIM_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from .analyses.crosscheck import run_crosscheck
from .analyses.noise import run_noise
from .compare import compare, format_budget, format_table
from .engines import available
from .errors import BadInputError, SpuSimError, one_line
from .experiments import EXPERIMENTS, run_experiment
from .pipeline import simulate, write_netlist
from .posterior.run import format_summary, run_posterior
from .sweep import run_sweep
from .train.loop import run_training_from_file


def _print_files(out: Path, files: list[Path] | None = None) -> None:
    files = files or sorted(p for p in Path(out).iterdir() if p.is_file() and not p.name.startswith("."))
    print(f"output folder: {Path(out).resolve()}")
    for f in files:
        print(f"  {Path(f).name}")


def cmd_netlist(a) -> int:
    files = write_netlist(a.config, a.out)
    print(f"netlist: {(Path(a.out) / 'netlist.cir').resolve()}")
    _print_files(a.out, files)
    return 0


def cmd_simulate(a) -> int:
    res = simulate(a.config, a.out, progress=True)
    t = res.timings_s
    print(f"engine {res['engine']}: {t.engine_s:.2f} s, readout {t.readout_s:.2f} s")
    print(f"netlist: {(Path(a.out) / 'netlist.cir').resolve()}")
    print(f"results: {(Path(a.out) / 'result.npz').resolve()}")
    return 0


def cmd_compare(a) -> int:
    m = compare(a.config, a.out, progress=True)
    print(format_table(m))
    if format_budget(m):
        print(format_budget(m))
    out = Path(a.out).resolve()
    print(f"netlist: {out / 'netlist.cir'}")
    print(f"results: {out / 'result.npz'}  metrics: {out / 'metrics.json'}")
    print("plots:   " + ", ".join(str(p) for p in sorted(out.glob('*.png'))))
    return 0


def cmd_noise(a) -> int:
    m = run_noise(a.config, a.out)
    for key in ("max_abs_var_error_relative", "cov_rel_error_vs_lyapunov", "cov_rel_error_vs_kappa_A_inv",
                "spectrum_max_rel_error", "cov_rel_error_vs_kT_Cm_inv_realized",
                "cov_rel_error_transient_vs_noise"):
        if isinstance(m, dict) and key in m:
            print(f"{key:36s} {m[key]:.3e}")
    _print_files(a.out)
    return 0


def cmd_posterior(a) -> int:
    m = run_posterior(a.config, a.out, progress=True)
    print(format_summary(m))
    out = Path(a.out).resolve()
    print(f"samples: {out / 'samples.npz'}  metrics: {out / 'metrics.json'}")
    print("plots:   " + ", ".join(str(p) for p in sorted(out.glob('*.png'))))
    return 0


def cmd_crosscheck(a) -> int:
    m = run_crosscheck(a.config, a.out, reference=a.reference, candidate=a.candidate)
    for key in ("op_rel_diff", "path_rms_diff_sd", "path_max_diff_sd", "mean_rel_diff", "cov_rel_diff"):
        value = getattr(m, key)
        if value is not None:
            print(f"{key:20s} {value:.3e}")
    print(f"{m.reference}: {m.reference_s:.3f} s, {m.candidate}: {m.candidate_s:.3f} s, ratio {m.speedup:.1f}")
    _print_files(a.out)
    return 0


def cmd_sweep(a) -> int:
    path = run_sweep(a.config, a.out, scheduler=a.scheduler, workers=a.workers, plots=not a.no_plots)
    print(f"summary: {Path(path).resolve()}")
    _print_files(a.out)
    return 0


def cmd_train(a) -> int:
    run_training_from_file(a.config, a.out)
    _print_files(a.out)
    return 0


def cmd_experiment(a) -> int:
    files = run_experiment(a.name, a.config, a.out)
    _print_files(a.out, files)
    return 0


def cmd_check(a) -> int:
    if not available():
        print("ngspice: not found (apt-get install ngspice libngspice0 libngspice0-dev)")
        return 1
    r = simulate({"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.0], "kappa": 0.0},
                  "simulation": {"analyses": ["op"]}})
    print(f"ngspice ok: .op of a 2x2 problem gives {r['x_op']} (exact {r['x_star']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spu-sim",
        description="Circuit-level simulator of thermodynamic computing hardware (stochastic processing "
                    "units) on ngspice: YAML config -> netlist -> ngspice -> readout -> exact OU comparison.",
        epilog="Exit codes: 0 ok, 1 simulation or internal failure, 2 bad input. "
               "Example: spu-sim compare configs/opamp_d8.yaml --out runs/opamp_d8")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, fn, help_, out=True):
        s = sub.add_parser(name, help=help_, description=help_)
        s.add_argument("config", help="YAML config file (see configs/)")
        if out:
            s.add_argument("--out", required=True, help="output folder (created; finished files are replaced atomically)")
        s.set_defaults(fn=fn)
        return s
    add("netlist", cmd_netlist, "write the netlist only")
    add("simulate", cmd_simulate, "run ngspice and write result.npz")
    add("compare", cmd_compare, "simulate, compare with the exact OU reference, write metrics and plots")
    add("noise", cmd_noise, "small-signal .noise analysis against the OU theory")
    x = add("crosscheck", cmd_crosscheck, "run one circuit on ngspice and on the exact linear engine with the same "
            "noise: .op and path differences (in stationary sd), statistics, run times and their ratio, a plot")
    x.add_argument("--reference", default=None, help="the sign-off engine (default: the config's ngspice engine)")
    x.add_argument("--candidate", default="linear", help="the engine judged against it (default: linear)")
    add("posterior", cmd_posterior, "sample a Bayesian posterior with a posterior_gaussian / posterior_logistic "
        "circuit and judge it against the exact or emcee reference (samples.npz, metrics.json, plots)")
    s = add("sweep", cmd_sweep, "grid and Monte Carlo sweeps in parallel processes (resumable)")
    s.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (tcp://host:port)")
    s.add_argument("--workers", type=int, default=None, help="local worker processes, a positive integer (default: all cores)")
    s.add_argument("--no-plots", action="store_true", help="write summary.csv and summary.json, skip the PNGs")
    add("train", cmd_train, "train a model with SGD, Adam, NGD variants and TNGD (SPU in the loop)")
    e = sub.add_parser("experiment", help="run a packaged experiment", description="run a packaged experiment")
    e.add_argument("name", help=f"experiment name ({', '.join(EXPERIMENTS.names())})")
    e.add_argument("config", help="YAML config file")
    e.add_argument("--out", required=True, help="output folder")
    e.set_defaults(fn=cmd_experiment)
    c = sub.add_parser("check", help="check that ngspice works here")
    c.set_defaults(fn=cmd_check)
    return p


def _run(args) -> int:
    """The command with Python warnings held back: a failed command prints only its one error line (a numpy
    RuntimeWarning is a symptom of the cause the error names); a command that succeeds prints each distinct
    warning once, as one line, after its output."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        code = int(args.fn(args) or 0)
    for text in dict.fromkeys(f"warning: {w.category.__name__}: {one_line(str(w.message), 300)}" for w in caught):
        print(text, file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except BadInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SpuSimError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished results were kept", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - last resort: one line, not a traceback
        if os.environ.get("SPU_SIM_DEBUG"):
            raise
        print(f"error: internal failure: {type(e).__name__}: {one_line(str(e))} (set SPU_SIM_DEBUG=1 for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
