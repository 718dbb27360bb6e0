"""The ``spu-sim`` command line.

    spu-sim netlist    CONFIG --out DIR    write DIR/netlist.cir (and noise_<i>.txt), run nothing
    spu-sim simulate   CONFIG --out DIR    run ngspice, write DIR/result.npz
    spu-sim compare    CONFIG --out DIR    simulate + exact OU reference + metrics.json + plots
    spu-sim noise      CONFIG --out DIR    small-signal .noise analysis vs OU theory
    spu-sim crosscheck CONFIG --out DIR    one circuit on ngspice and on the exact linear engine, same noise
    spu-sim characterise CONFIG --out DIR  a transistor-level op-amp cell's testbenches -> a macromodel section
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
import csv
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .analyses.characterise import key_number_lines as characterise_key_numbers, run_characterise
from .analyses.crosscheck import run_crosscheck
from .analyses.noise import run_noise
from .compare import compare, format_budget, format_macro_gaps, format_table
from .engines import available
from .errors import BadInputError, SpuSimError, one_line
from .experiments import EXPERIMENTS, key_numbers as experiment_key_numbers, run_experiment
from .parts.element_table import ELEMENTS_NAME
from .pipeline import simulate, write_netlist
from .runs.records import PLAN_NAME
from .runs.summary import SUMMARY_JSON, SUMMARY_NAME
from .posterior.run import format_summary, run_posterior
from .sweep import run_sweep
from .sweep_plots import is_seed_key, read_csv
from .train.loop import run_training_from_file


#: the key numbers a command prints, in words with units: (metric key, words, kind), kind "%" (a relative error,
#: printed in percent), "s", "J", "W", "tau", "x" (a ratio) or "" (a plain number)
KEY_NUMBERS: tuple[tuple[str, str, str], ...] = (
    # op-amp circuits: settling and energy (spu_sim.topologies.opamp.metrics, spu_sim.parts.settling)
    ("settle_measured_tau", "settling time into 1 % of the initial error plus the 4-sigma noise band, measured", "tau"),
    ("settle_measured_s", "the same settling time in seconds", "s"),
    ("settle_predicted_exact_tau", "settling time into 1 % of the initial error of the noise-free mean, predicted "
                                   "from the effective drift", "tau"),
    ("energy_supply_j", "energy drawn from the op-amp supplies over the run", "J"),
    ("power_supply_mean_w", "mean supply power of the op-amps", "W"),
    ("energy_resistive_j", "energy dissipated in the coupling and input resistors", "J"),
    ("power_resistive_mean_w", "mean power in the coupling and input resistors", "W"),
    # switched-capacitor circuits: the error split (spu_sim.topologies.opamp_sc.metrics)
    ("sc_quantization_mean_rel_err", "mean error from the capacitor-bank codes (quantisation)", "%"),
    ("sc_quantization_cov_rel_err", "covariance error from the capacitor-bank codes (quantisation)", "%"),
    ("sc_discretization_mean_rel_err", "mean error from the clocked (discrete-time) update", "%"),
    ("sc_discretization_cov_rel_err", "covariance error from the clocked (discrete-time) update", "%"),
    ("sc_feedthrough_mean_rel_err", "mean error from clock feedthrough and charge injection", "%"),
    ("sc_sampling_mean_rel_err", "mean error of the finite run (sampling)", "%"),
    ("sc_sampling_mean_rel_err_expected", "mean error of the finite run expected from theory", "%"),
    ("sc_sampling_cov_rel_err", "covariance error of the finite run (sampling)", "%"),
    ("sc_sampling_cov_rel_err_expected", "covariance error of the finite run expected from theory", "%"),
    ("sc_ktc_over_kappa", "kT/C noise relative to the target kappa", "x"),
    ("sc_energy_per_clock_j", "switching energy per clock period", "J"),
    ("sc_power_w", "switching power at the clock frequency", "W"),
    # the small-signal noise analysis (spu_sim.analyses.noise)
    ("max_abs_var_error_relative", "largest variance error of .noise against the Lyapunov theory", "%"),
    ("cov_rel_error_vs_lyapunov", "covariance from .noise against the Lyapunov theory of the realised circuit", "%"),
    ("cov_rel_error_vs_band_theory", "covariance from .noise against the theory over the same band", "%"),
    ("cov_rel_error_vs_kappa_A_inv", "covariance from .noise against the target kappa A^-1", "%"),
    ("cov_rel_error_vs_kT_Cm_inv_realized", "covariance from .noise against kT Cm^-1 of the realised capacitors", "%"),
    ("spectrum_max_rel_error", "largest error of a noise spectrum against theory, over the band", "%"),
    ("spectrum_max_rel_error_below_gbw", "the same below GBW / 10 (the OU theory has no op-amp pole: above GBW the "
                                         "circuit rolls off faster)", "%"),
    ("cov_rel_error_transient_vs_noise", "covariance of the transient run against the one from .noise", "%"),
    ("engine_s", "engine run time", "s"),
)


def format_number(value: float, kind: str) -> str:
    """A key number with its unit: a relative error in percent, a time in s, an energy in J, ..."""
    if kind == "%":
        return f"{100.0 * value:.3g} %"
    if kind == "x":
        return f"{value:.3g} x"
    return f"{value:.4g} {kind}".rstrip()


def format_key_numbers(m: dict, keys: tuple[tuple[str, str, str], ...] = KEY_NUMBERS) -> list[str]:
    """One line per key number present in m (finite numbers only): "words: value unit"."""
    out = []
    for key, words, kind in keys:
        v = m.get(key) if isinstance(m, dict) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf"):
            out.append(f"{words}: {format_number(float(v), kind)}")
    return out


def _print_files(out: Path, files: list[Path] | None = None) -> None:
    files = files or sorted(p for p in Path(out).iterdir() if p.is_file() and not p.name.startswith("."))
    print(f"output folder: {Path(out).resolve()}")
    for f in files:
        print(f"  {Path(f).name}")


def element_key_numbers(folder: Path) -> list[str]:
    """From elements.csv: how many elements the netlist has and how many matrix entries have none (dropped by
    quantisation to code 0, pruned below circuit.integrator.prune_below_relative); nothing without the file."""
    path = Path(folder) / ELEMENTS_NAME
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        status = [row.get("status", "") for row in csv.DictReader(f)]
    dropped, pruned = status.count("dropped"), status.count("pruned")
    line = f"elements: {status.count('present')} in the netlist"
    if dropped or pruned:
        line += (f"; matrix entries without an element: {dropped} dropped (quantised to code 0), {pruned} pruned "
                 f"(below prune_below_relative), listed in {ELEMENTS_NAME}")
    return [line]


def cmd_netlist(a) -> int:
    files = write_netlist(a.config, a.out)
    print(f"netlist: {(Path(a.out) / 'netlist.cir').resolve()}")
    for line in element_key_numbers(Path(a.out)):
        print(line)
    _print_files(a.out, files)
    return 0


#: simulate's key numbers beyond the run times: the solution read at .op and in the transient, energy and power
SIMULATE_NUMBERS = (("matrix_rel_err", "realised matrix against A (quantisation, tolerance, dropped entries)", "%"),
                    ("op_rel_err", "solution at the operating point (.op) against A^-1 b", "%"),
                    ("mean_rel_err", "time average of the transient against A^-1 b", "%"),
                    ("energy_supply_j", "energy drawn from the op-amp supplies over the run", "J"),
                    ("power_supply_mean_w", "mean supply power of the op-amps", "W"),
                    ("power_resistive_mean_w", "mean power in the coupling and input resistors", "W"))


def simulate_key_numbers(res) -> list[str]:
    """The key numbers of a simulate run in words with units: the relative error of x_op and of the transient's time
    average against the exact solution x_star (when the problem has one), energy and power when the run has them."""
    m: dict[str, float] = {}
    arrays = res.arrays
    x_star = np.asarray(arrays.get("x_star", []), dtype=float)
    ref = float(np.linalg.norm(x_star)) if x_star.size and bool(arrays.get("has_mean", True)) else 0.0
    A, A_real = (np.asarray(arrays.get(k, []), dtype=float) for k in ("A", "A_realized"))
    if A.size and A.shape == A_real.shape and np.linalg.norm(A) > 0:
        m["matrix_rel_err"] = float(np.linalg.norm(A_real - A) / np.linalg.norm(A))
    if ref > 0 and "x_op" in arrays and np.size(arrays["x_op"]) == x_star.size:
        m["op_rel_err"] = float(np.linalg.norm(np.asarray(arrays["x_op"], dtype=float) - x_star) / ref)
    if ref > 0 and "x_mean" in arrays and np.size(arrays["x_mean"]) == x_star.size:
        m["mean_rel_err"] = float(np.linalg.norm(np.asarray(arrays["x_mean"], dtype=float) - x_star) / ref)
    for k in ("energy_supply_j", "power_supply_mean_w", "power_resistive_mean_w"):
        if k in arrays and np.size(arrays[k]) == 1:
            m[k] = float(arrays[k])
    t_supply = np.asarray(arrays.get("t_supply_s", []), dtype=float)
    if "energy_supply_j" in m and "power_supply_mean_w" not in m and t_supply.size > 1 and t_supply[-1] > t_supply[0]:
        m["power_supply_mean_w"] = m["energy_supply_j"] / float(t_supply[-1] - t_supply[0])   # as compare's metrics
    return format_key_numbers(m, SIMULATE_NUMBERS)


def cmd_simulate(a) -> int:
    res = simulate(a.config, a.out, progress=True)
    t = res.timings_s
    print(f"engine {res['engine']}: {t.engine_s:.2f} s, readout {t.readout_s:.2f} s")
    n = len(res["t"])
    if n:
        print(f"transient: {n} samples over {float(res['t'][-1]) / float(res['tau_s']):.4g} tau "
              f"(tau = {float(res['tau_s']):.4g} s), {int(res['adc_clipped'])} ADC samples clipped")
    for line in element_key_numbers(Path(a.out)) + simulate_key_numbers(res):
        print(line)
    print(f"netlist: {(Path(a.out) / 'netlist.cir').resolve()}")
    print(f"results: {(Path(a.out) / 'result.npz').resolve()}")
    return 0


def cmd_compare(a) -> int:
    m = compare(a.config, a.out, progress=True)
    print(format_table(m))
    for line in format_key_numbers(m) + format_macro_gaps(m):
        print(line)
    if format_budget(m):
        print(format_budget(m))
    elif m.get("budget_note"):
        print(m["budget_note"])
    out = Path(a.out).resolve()
    print(f"netlist: {out / 'netlist.cir'}")
    print(f"results: {out / 'result.npz'}  metrics: {out / 'metrics.json'}")
    print("plots:   " + (", ".join(str(p) for p in sorted(out.glob('*.png')))
                         or "none (no transient analysis: nothing over time to plot)"))
    return 0


def cmd_noise(a) -> int:
    m = run_noise(a.config, a.out, points_per_decade=a.points_per_decade, span_decades=a.span_decades,
                  element_noise=a.element_noise, transient=not a.no_transient)
    f1, f2 = m["band_hz"]
    print(f".noise of {m['d']} outputs and {m['n_outputs'] - m['d']} differences on {m['engine']}, "
          f"{f1:.3g} Hz to {f2:.3g} Hz, {m['points_per_decade']} points per decade"
          + (", every resistor's thermal noise included" if m["element_noise"] else ""))
    for line in format_key_numbers(m):
        print(line)
    if "theory_note" in m:
        print(m["theory_note"])
    _print_files(a.out)
    return 0


def posterior_key_numbers(m: dict) -> list[str]:
    """The posterior sampler's key numbers in words with units (beside format_summary's table)."""
    pc = lambda v: format_number(float(v), "%")  # noqa: E731
    lines = [f"posterior mean against the {m['reference']} reference: {pc(m['mean_rel_err'])} "
             f"(expected from the finite run: {pc(m['mean_rel_err_expected'])})",
             f"posterior covariance against the {m['reference']} reference: {pc(m['cov_rel_err'])} "
             f"(expected from the finite run: {pc(m['cov_rel_err_expected'])})",
             f"mixing time: {m['mixing_time_tau']:.3g} tau = {m['mixing_time_tau'] * m['tau_s']:.3g} s "
             f"({m['ess']:.0f} effective samples)",
             f"energy per mixing time: {m['energy_per_mixing_time_j']:.3g} J"]
    return lines


def cmd_posterior(a) -> int:
    m = run_posterior(a.config, a.out, progress=True)
    print(format_summary(m))
    for line in posterior_key_numbers(m):
        print(line)
    out = Path(a.out).resolve()
    print(f"samples: {out / 'samples.npz'}  metrics: {out / 'metrics.json'}")
    print("plots:   " + ", ".join(str(p) for p in sorted(out.glob('*.png'))))
    return 0


CROSSCHECK_NUMBERS = (("op_rel_diff", ".op difference (relative)", "%"),
                      ("path_rms_diff_sd", "path difference, rms, in stationary standard deviations", "x"),
                      ("path_max_diff_sd", "path difference, largest, in stationary standard deviations", "x"),
                      ("mean_rel_diff", "time-average difference (relative)", "%"),
                      ("cov_rel_diff", "covariance difference (relative)", "%"))


def cmd_crosscheck(a) -> int:
    m = run_crosscheck(a.config, a.out, reference=a.reference, candidate=a.candidate)
    for line in format_key_numbers({k: getattr(m, k) for k, _, _ in CROSSCHECK_NUMBERS}, CROSSCHECK_NUMBERS):
        print(line)
    print(f"{m.reference}: {m.reference_s:.3f} s, {m.candidate}: {m.candidate_s:.3f} s, ratio {m.speedup:.1f}")
    _print_files(a.out)
    return 0


def cmd_characterise(a) -> int:
    m = run_characterise(a.config, a.out)
    print(f"{m['cell']} ({m['source']}, corner {m['corner']}, {m['temp_c']:g} C) on {m['engine']}, "
          f"{m['engine_s']:.2f} s:")
    for line in characterise_key_numbers(m):
        print(line)
    print(f"macromodel section: {(Path(a.out) / 'opamp_macro.yaml').resolve()}")
    _print_files(a.out)
    return 0


def format_sweep_summary(info: dict) -> list[str]:
    """The key numbers of a sweep's summary.json in words: runs, the metric's spread, the yield (and with
    mitigation the averaged groups' spread and yield)."""
    metric = info.get("metric", "")
    lines = [f"runs: {info.get('ok', 0)} ok, {info.get('failed', 0)} failed of {info.get('runs_planned', 0)} planned"]

    kind = "%" if "rel_err" in metric or metric.endswith("_relative") else ""

    def spread(st: dict) -> str:
        return (f"mean {format_number(st['mean'], kind)}, median {format_number(st['median'], kind)}, 95th percentile "
                f"{format_number(st['p95'], kind)}, largest {format_number(st['max'], kind)} over {st['n']} runs")
    st = info.get("metric_stats", {}).get(metric, {})
    if st.get("n"):
        lines.append(f"{metric}{' (relative error)' if kind else ''}: {spread(st)}")
    if "yield" in info:
        lines.append(f"yield: {100 * info['yield']:.3g} % of the planned runs have {metric} <= "
                     f"{format_number(info['threshold'], kind)}")
    mit = info.get("mitigation", {})
    col = mit.get(f"{metric}_averaged", {})
    if col.get("n"):
        lines.append(f"{metric} of groups of {mit['group_size']} averaged (mitigation): " + spread(col).replace(
            "runs", "groups"))
    if "yield" in mit:
        lines.append(f"yield with mitigation: {100 * mit['yield']:.3g} % of the groups")
    return lines


def format_grid_lines(plan: dict, rows: list[dict]) -> list[str]:
    """A grid sweep's metric at each value of each swept key that is not a seed (the other keys' runs, seeds
    included, are its spread): "<metric> at <key> = <value>: median (smallest to largest) over n runs"."""
    spec = plan.get("sweep", {})
    metric = spec.get("metric", "mean_rel_err")
    kind = "%" if "rel_err" in metric or metric.endswith("_relative") else ""
    lines = []
    for key, values in spec.get("grid", {}).items():
        if is_seed_key(key):
            continue
        for v in values:
            runs = [r for r in rows if r.get(key) is not None and _same_value(r[key], v)]
            vals = np.array([float(r[metric]) for r in runs if r.get("status") == "ok" and r.get(metric) not in ("", None)])
            vals = vals[np.isfinite(vals)]
            failed = len(runs) - len(vals)
            shown = f"{v:.4g}" if isinstance(v, float) else str(v)
            if not vals.size:
                lines.append(f"{metric} at {key} = {shown}: no finished run ({failed} failed)")
                continue
            lines.append(f"{metric} at {key} = {shown}: median {format_number(float(np.median(vals)), kind)} "
                         f"({format_number(float(vals.min()), kind)} to {format_number(float(vals.max()), kind)}) over "
                         f"{vals.size} run{'s' if vals.size != 1 else ''}" + (f", {failed} failed" if failed else ""))
    return lines


def _same_value(cell: str, v) -> bool:
    """A summary.csv cell against a grid value (numbers compared as numbers)."""
    try:
        return float(cell) == float(v)
    except (TypeError, ValueError):
        return str(cell) == str(v)


def cmd_sweep(a) -> int:
    path = run_sweep(a.config, a.out, scheduler=a.scheduler, workers=a.workers, plots=not a.no_plots)
    summary_json = Path(a.out) / SUMMARY_JSON
    if summary_json.is_file():
        for line in format_sweep_summary(json.loads(summary_json.read_text())):
            print(line)
    plan_json, summary_csv = Path(a.out) / PLAN_NAME, Path(a.out) / SUMMARY_NAME
    if plan_json.is_file() and summary_csv.is_file():
        for line in format_grid_lines(json.loads(plan_json.read_text()), read_csv(summary_csv)):
            print(line)
    print(f"summary: {Path(path).resolve()}")
    _print_files(a.out)
    return 0


def train_key_numbers(summary: dict) -> list[str]:
    """Each optimiser's final numbers in words with units: losses (the model's mean loss per example), accuracy
    in percent, modelled and measured time per step in ms; a failed or diverged optimiser says so."""
    lines = []
    for label, s in summary["optimizers"].items():
        state = (f"failed after {s['steps']} steps ({s.get('error', '')})" if s.get("failed")
                 else f"diverged, {s['steps']} steps" if s.get("diverged") else f"{s['steps']} steps")
        lines.append(f"{label} ({s['optimizer']}, {state}): final test loss {s['final_test_loss']:.4g} (mean per example), "
                     f"train loss {s['final_train_loss']:.4g}, test accuracy "
                     f"{100 * s['final_test_accuracy']:.3g} % (best {100 * s['best_test_accuracy']:.3g} %), "
                     f"modelled time per step {1e3 * s['modelled_time_per_step_s']:.4g} ms "
                     f"({s['modelled_time_kind']}), measured {1e3 * s['wall_time_per_step_s']:.4g} ms")
    failed = sum(1 for s in summary["optimizers"].values() if s.get("failed"))
    lines.append(f"optimisers: {len(summary['optimizers']) - failed} finished, {failed} failed; "
                 f"run time {summary['run_time_s']:.3g} s")
    return lines


def cmd_train(a) -> int:
    summary = run_training_from_file(a.config, a.out)
    for line in train_key_numbers(summary):
        print(line)
    _print_files(a.out)
    return 0


def cmd_experiment(a) -> int:
    files = run_experiment(a.name, a.config, a.out)
    for line in experiment_key_numbers(a.name, a.out):
        print(line)
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
    n = add("noise", cmd_noise, "small-signal .noise analysis against the OU theory")
    n.add_argument("--points-per-decade", type=int, default=20, help="frequency points per decade (>= 2; default 20)")
    n.add_argument("--span-decades", type=float, default=4.0,
                   help="decades of band beyond the slowest and fastest mode (> 0; default 4)")
    n.add_argument("--element-noise", action="store_true",
                   help="include every resistor's own thermal noise (default: only the injected noise)")
    n.add_argument("--no-transient", action="store_true",
                   help="skip the comparison with a transient run's covariance")
    x = add("crosscheck", cmd_crosscheck, "run one circuit on ngspice and on the exact linear engine with the same "
            "noise: .op and path differences (in stationary sd), statistics, run times and their ratio, a plot")
    x.add_argument("--reference", default=None, help="the sign-off engine (default: the config's ngspice engine)")
    x.add_argument("--candidate", default="linear", help="the engine judged against it (default: linear)")
    add("characterise", cmd_characterise, "characterise a transistor-level op-amp (circuit.opamp.model: "
        "sky130_miller, sky130_ota5t, gf180_miller, or subckt with circuit.opamp.subckt) in ngspice: gain, GBW, offset, swing, noise, r_out, quiescent "
        "current, written as a ready circuit.opamp macromodel section (opamp_macro.yaml) with Bode, noise and swing "
        "plots")
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
