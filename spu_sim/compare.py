"""Compare: circuit results vs the exact reference (spu_sim.ideal), metrics, and the files plots read.

For every run ``compare`` reports, as relative errors:

- ``op_rel_err``            circuit .op vs x* = A^-1 b (the target problem)
- ``mean_rel_err``          circuit time average vs x*
- ``cov_rel_err``           circuit sample covariance vs the target's stationary covariance (Frobenius)
- ``*_ideal_sampler``       the same two errors for the exact sampler of the target process over the
                            same window, sample grid and seed: finite sampling alone
- ``*_expected``            the root-mean-square error that finite sampling predicts (theory:
                            ideal.time_average_cov and ideal.sample_cov_var)
- ``*_vs_realized``         the circuit's errors against the process its element values implement:
                            with ``matrix_rel_err`` this separates "the circuit realises the wrong matrix"
                            from "the dynamics or readout add error".

Topologies without a mean (RLC: the inductors short DC) report only covariance metrics; their mean
metrics are absent, never a misleading zero.

A transistor-level run with ``circuit.opamp.characterised`` (the folder ``spu-sim characterise`` wrote for its op-amp,
spu_sim.parts.characterised) also runs the same design with that macromodel on the run's engine and on the linear
engine and reports the gaps (``macro_gaps``: ``macro_<ngspice|linear>_<op|path|mean|cov>_gap``), the macromodel's
error; its error budget is the macromodel design's, with that error as the row ``macro_model``.

The error budget (``error_budget``; ``budget_<estimate>_<cause>`` in metrics.json, a table beside the total and
budget.png): the error of each estimate (``op``: the equilibrium, ``mean``: the time average, ``cov``: the sample
covariance) split by cause, each measured on the exact linear engine with that cause alone present (same
realisation: the same tolerance seed, noise seed, sample grid, burn-in and window):

    circuit causes (BUDGET_CAUSES, by registration: quantisation_tolerance, opamp, parasitics, intrinsic_noise)
        the circuit with only that cause's keys of the ``circuit`` section set (the rest at their defaults);
        op and mean: its DC solution (the linear engine's .op) against A^-1 b, i.e. the stationary mean with no
        finite-time or sampling error; cov: the Lyapunov covariance of its realised process (effective_sde)
        against kappa A^-1
    finite_time   the ideal circuit, noise off: the time average of the deterministic transient against A^-1 b
    sampling      the ideal circuit with the run's noise (same seed): mean: its time average minus the noise-free
                  one; cov: its sample covariance against kappa A^-1 (the finite-time part of the covariance
                  cannot be told apart on one path and is counted here)

Errors are relative norms, so the shares do not add exactly: their sum is stated beside the measured total
(``budget_<estimate>_sum``, ``budget_<estimate>_total``). A cause that is not set is left out (not a zero). The
op-amp's output-swing limit is nonlinear and not in the budget (the linear engine refuses it): no cause-alone run takes
it (BUDGET_LEFT_OUT) and the budget says so (``budget_left_out``). The op-amp cause
owns the whole op-amp: gain, GBW, offsets and its output impedance and input capacitance (r_out_ohm, r_out_hf_ohm,
r_out_pole_hz, c_in_farad: properties of the op-amp that characterise measures with the rest); parasitics are the
wires. ``spu-sim posterior`` (spu_sim.posterior.run) has the same budget
for its sample mean and covariance (no .op estimate there: the circuit causes' DC solution is the mean's share). A new cause (e.g. one more noise key) joins with ``BUDGET_CAUSES.add(Cause(...))``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import ideal, io, plots
from .errors import BadInputError
from .plotting import pyplot
from .registry import Registry
from .run_config import Config
from .parts.characterised import CharacterisedMacro, read_characterised
from .parts.opamp import IMPEDANCE_KEYS, is_subckt
from .pipeline import TIMING_NAMES, Prepared, prepare, prepare_problem, simulate_in, staged

METRICS_NAME = "metrics.json"
REFERENCE_NAME = "reference.npz"
MAX_STATE_FOR_COV_THEORY = 40


def _rel(err: np.ndarray, ref: np.ndarray) -> float:
    den = float(np.linalg.norm(ref))
    num = float(np.linalg.norm(err))
    return num / den if den > 0 else num


def _observed(sde: ideal.LinearSDE, d: int) -> tuple[np.ndarray, np.ndarray]:
    return ideal.stationary_mean(sde)[:d], ideal.stationary_cov(sde)[:d, :d]


def expected_errors(sde: ideal.LinearSDE, d: int, window_tau: float | np.ndarray) -> dict[str, Any]:
    """RMS relative errors of the time average and of the sample covariance over a stationary window (or an array
    of windows: both variances are exactly 1/T times their T = 1 value in the large-T form, so the theory --
    O(n^6) for the covariance -- is evaluated once whatever the number of windows)."""
    mean, cov = _observed(sde, d)
    T = np.asarray(window_tau, dtype=float)
    out: dict[str, Any] = {}
    var_mean_1 = ideal.time_average_cov(sde, 1.0)[:d, :d]
    out["mean_rel_err_expected"] = np.sqrt(max(np.trace(var_mean_1), 0.0) / T) / max(np.linalg.norm(mean), 1e-300)
    if sde.K.shape[0] <= MAX_STATE_FOR_COV_THEORY and np.any(sde.D):
        var_cov_1 = ideal.sample_cov_var(sde, 1.0)[:d, :d]
        out["cov_rel_err_expected"] = np.sqrt(var_cov_1.sum() / T) / np.linalg.norm(cov)
    return {k: float(v) if np.ndim(v) == 0 else v for k, v in out.items()}


def compute_metrics(prep: Prepared, arrays: dict[str, np.ndarray], x_ideal: np.ndarray | None = None) -> dict[str, Any]:
    """All metrics of one run from its result arrays (and the ideal sampler's path, if given).

    The problem (A, b, kappa) comes from ``prep.problem`` only (the one path of the matrix into compare; the
    copies in result.npz are for readers of the file); ``arrays`` give what the run measured and realised.
    """
    design, d, problem = prep.design, prep.design.d, prep.problem
    target = design.target_sde()
    # the judge of "dynamics and readout": the process the netlist implements (finite op-amp gain and
    # offsets included where the design models them), so *_vs_realized isolates what the matrix error is not
    realized = design.effective_sde()
    mean_t, cov_t = _observed(target, d)
    mean_r, cov_r = _observed(realized, d)
    m: dict[str, Any] = {"topology": prep.topology.name, "engine": prep.cfg.simulation.backend, "d": d, "tau_s": float(design.tau_s),
                         "kappa_target": float(problem.kappa), "kappa_realized": float(design.kappa_realized),
                         "matrix_rel_err": _rel(arrays["A_realized"] - problem.A, problem.A)}
    has_mean = bool(prep.topology.has_mean)
    if has_mean and np.all(np.isfinite(arrays["x_op"])):
        m["op_rel_err"] = _rel(arrays["x_op"] - mean_t, mean_t)
        m["op_rel_err_vs_realized"] = _rel(arrays["x_op"] - mean_r, mean_r)
    t = arrays.get("t")
    if t is not None and len(t) > 1:
        tau = float(design.tau_s)
        burn = float(arrays["burn_in_s"])
        keep = t >= burn
        window_tau = (t[keep][-1] - t[keep][0]) / tau
        m.update(window_tau=window_tau, n_samples=int(keep.sum()), burn_in_tau=burn / tau,
                 adc_clipped=int(arrays.get("adc_clipped", 0)))
        if has_mean:
            m["mean_rel_err"] = _rel(arrays["x_mean"] - mean_t, mean_t)
            m["mean_rel_err_vs_realized"] = _rel(arrays["x_mean"] - mean_r, mean_r)
        if problem.kappa > 0:
            m["cov_rel_err"] = _rel(arrays["x_cov"] - cov_t, cov_t)
            m["cov_rel_err_vs_realized"] = _rel(arrays["x_cov"] - cov_r, cov_r)
        if x_ideal is not None:
            xi = x_ideal[keep]
            if has_mean:
                m["mean_rel_err_ideal_sampler"] = _rel(xi.mean(0) - mean_t, mean_t)
            if problem.kappa > 0:
                m["cov_rel_err_ideal_sampler"] = _rel(np.atleast_2d(np.cov(xi, rowvar=False)) - cov_t, cov_t)
        if problem.kappa > 0:
            exp = expected_errors(target, d, window_tau)
            if not has_mean:
                exp.pop("mean_rel_err_expected", None)
            m.update(exp)
    m.update(prep.topology.circuit_metrics(design, problem, arrays))   # e.g. opamp: settling, energy
    m = _unmeasured_realised(design, m)
    if "timings_s" in arrays:
        for k, v in zip(TIMING_NAMES, arrays["timings_s"]):
            m[f"time_{k}"] = float(v)
    return m


def convergence(x: np.ndarray, t_tau: np.ndarray, burn_tau: float, mean: np.ndarray, cov: np.ndarray,
                n_points: int = 30) -> dict[str, np.ndarray]:
    """Relative errors of the running time average and running covariance against the averaging time."""
    keep = t_tau >= burn_tau
    xs, ts = x[keep], t_tau[keep] - burn_tau
    idx = np.unique(np.geomspace(10, len(xs), n_points).astype(int).clip(2, len(xs)))
    # one pass over the samples: running sums of (x - mean) and its outer products, read at the window ends
    # (centred on the reference mean, so the covariance formula does not cancel), O(n d^2) in all
    c = xs - mean
    s1, s2, prev = np.zeros(c.shape[1]), np.zeros((c.shape[1], c.shape[1])), 0
    mean_err, cov_err = [], []
    for k in idx:
        blk = c[prev:k]
        s1, s2, prev = s1 + blk.sum(0), s2 + blk.T @ blk, k
        m1 = s1 / k
        mean_err.append(_rel(m1, mean) if np.linalg.norm(mean) > 0 else float(np.linalg.norm(m1)))
        cov_err.append(_rel((s2 - k * np.outer(m1, m1)) / (k - 1) - cov, cov))
    return {"T_tau": ts[idx - 1], "mean_err": np.array(mean_err), "cov_err": np.array(cov_err)}


def reference_arrays(prep: Prepared, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Exact transient moments on the circuit's sample grid and the ideal sampler's path (same seed)."""
    design, d = prep.design, prep.design.d
    target = design.target_sde()
    t_tau = arrays["t"] / design.tau_s
    n_plot = min(len(t_tau), 2000)
    sel = np.unique(np.linspace(0, len(t_tau) - 1, n_plot).astype(int))
    ref = {"t_tau": t_tau, "plot_index": sel,
           "mean_t": ideal.transient_mean(target, design.x0_state, t_tau[sel])[:, :d],
           "std_t": np.sqrt(np.clip(np.diagonal(ideal.transient_cov(target, t_tau[sel]), axis1=1, axis2=2)[:, :d], 0, None)),
           "cov_stationary": ideal.stationary_cov(target)[:d, :d], "mean_stationary": ideal.stationary_mean(target)[:d]}
    x_ideal = ideal.sample(target, design.x0_state, t_tau, seed=prep.cfg.simulation.seed)[:, :d]
    ref["x_ideal"] = x_ideal
    burn_tau = float(arrays["burn_in_s"]) / design.tau_s
    conv_c = convergence(arrays["x"], t_tau, burn_tau, ref["mean_stationary"], ref["cov_stationary"])
    conv_i = convergence(x_ideal, t_tau, burn_tau, ref["mean_stationary"], ref["cov_stationary"])
    ref.update(conv_T_tau=conv_c["T_tau"], conv_mean_err=conv_c["mean_err"], conv_cov_err=conv_c["cov_err"],
               conv_mean_err_ideal=conv_i["mean_err"], conv_cov_err_ideal=conv_i["cov_err"])
    if prep.problem.kappa > 0:
        exp = expected_errors(target, d, conv_c["T_tau"])
        nan = np.full(len(conv_c["T_tau"]), np.nan)
        ref["conv_mean_err_expected"] = np.asarray(exp.get("mean_rel_err_expected", nan))
        ref["conv_cov_err_expected"] = np.asarray(exp.get("cov_rel_err_expected", nan))
    return ref


# ---------------------------------------------------------------- the characterised macromodel beside a cell

#: the keys of a characterised section left out of both macromodel runs: the noise keys (ngspice's transient of the
#: cell has no device noise)
MACRO_LEFT_OUT_KEYS = ("en_v_per_rthz", "in_a_per_rthz", "flicker_corner_hz")
#: left out of the linear engine's macromodel run only: the swing limit, nonlinear (the linear engine refuses it; the
#: budget leaves it out too, BUDGET_LEFT_OUT); the ngspice run has it, on the output node as a real op-amp's
MACRO_LINEAR_LEFT_OUT_KEYS = ("v_out_max_v",)
MACRO_ENGINE_TAGS = ("ngspice", "linear")


def _gap_scale(prep: Prepared) -> float:
    """The norm the gaps are relative to: ||x*|| (a topology with a mean), else sqrt(tr kappa A^-1)."""
    mean_t, cov_t = _observed(prep.design.target_sde(), prep.design.d)
    return float(np.linalg.norm(mean_t)) if prep.topology.has_mean else float(np.sqrt(max(np.trace(cov_t), 1e-300)))


def macro_gaps(prep: Prepared, arrays: dict[str, np.ndarray],
               macro: CharacterisedMacro) -> tuple[dict[str, Any], Prepared, dict[str, float]]:
    """The transistor-level run (prep, its result arrays) against the same design with its characterised
    macromodel (macro.section without MACRO_LEFT_OUT_KEYS, and on the linear engine without
    MACRO_LINEAR_LEFT_OUT_KEYS; same seed, noise samples, sample grid and burn-in) on the
    run's engine (tag ngspice) and on the linear engine (tag linear). Returns (metrics,
    the linear macromodel run's Prepared, {estimate: gap of the linear run}), metrics:

        macro_<tag>_op_gap     ||x_op(cell) - x_op(macro)|| / ||x*||
        macro_<tag>_path_gap   RMS over the samples after burn-in of ||x_cell(t) - x_macro(t)|| / ||x*||
        macro_<tag>_mean_gap   ||x_mean(cell) - x_mean(macro)|| / ||x*||
        macro_<tag>_cov_gap    ||cov(cell) - cov(macro)||_F / ||kappa A^-1||_F (with noise)
        macro_<tag>_op_rel_err, _mean_rel_err, _cov_rel_err   the macromodel run's own errors against the target

    with macro_engines naming each tag's engine, macro_characterised the folder, macro_note what was left out
    (||x*|| is sqrt(tr kappa A^-1) for a topology without a mean). The linear engine's gap is the macromodel's error
    (no time-step error), the one the budget lists."""
    section = {k: v for k, v in macro.section.items() if k not in MACRO_LEFT_OUT_KEYS}
    circuit = prep.cfg.circuit.model_dump(mode="json", exclude_defaults=True)
    runs: dict[str, tuple[Prepared, dict[str, np.ndarray]]] = {}
    for tag, backend in zip(MACRO_ENGINE_TAGS, (prep.cfg.simulation.backend, "linear")):
        sec = section if tag != "linear" else {k: v for k, v in section.items() if k not in MACRO_LINEAR_LEFT_OUT_KEYS}
        p = _with_circuit(prep, {**circuit, "opamp": sec}, backend=backend)
        runs[tag] = (p, _run(p, list(prep.cfg.simulation.analyses)))
    d = prep.design.d
    scale = _gap_scale(prep)
    cov_t = _observed(prep.design.target_sde(), d)[1]
    out: dict[str, Any] = {"macro_characterised": macro.folder,
                           "macro_engines": {tag: runs[tag][0].cfg.simulation.backend for tag in MACRO_ENGINE_TAGS},
                           "macro_note": (f"the {macro.cell} run against its characterised macromodel ({macro.folder}: "
                                          f"corner {macro.corner}, {macro.temp_c:g} C) without its noise keys (the "
                                          "transistor-level transient has no device noise); on the linear engine also "
                                          "without its swing limit (nonlinear)")}
    gap: dict[str, float] = {}
    for tag, (p, a) in runs.items():
        m = compute_metrics(p, a)
        for k in ("op_rel_err", "mean_rel_err", "cov_rel_err"):
            if k in m:
                out[f"macro_{tag}_{k}"] = m[k]
        g: dict[str, float] = {}
        if "x_op" in arrays and "x_op" in a and np.all(np.isfinite(arrays["x_op"])) and prep.topology.has_mean:
            g["op"] = float(np.linalg.norm(arrays["x_op"] - a["x_op"]) / scale)
        t = arrays.get("t")
        if t is not None and len(t) > 1:
            keep = t >= float(arrays["burn_in_s"])
            out[f"macro_{tag}_path_gap"] = float(np.sqrt(np.mean(np.sum((arrays["x"][keep] - a["x"][keep]) ** 2, axis=1)))
                                                 / scale)
            if prep.topology.has_mean:
                g["mean"] = float(np.linalg.norm(arrays["x_mean"] - a["x_mean"]) / scale)
            if prep.problem.kappa > 0:
                g["cov"] = _rel(arrays["x_cov"] - a["x_cov"], cov_t)
        out.update({f"macro_{tag}_{est}_gap": v for est, v in g.items()})
        if tag == "linear":
            gap = g
    return out, runs["linear"][0], gap


def format_macro_gaps(m: dict[str, Any]) -> list[str]:
    """The gaps of macro_gaps in words (empty without a characterised macromodel)."""
    if "macro_engines" not in m:
        return []
    words = (("op_gap", "equilibrium (.op)"), ("path_gap", "path, RMS after burn-in"), ("mean_gap", "time average"),
             ("cov_gap", "covariance (relative to kappa A^-1)"))
    lines = [f"transistor level against its characterised macromodel ({m['macro_characterised']}), relative to ||x*||:"]
    for tag in MACRO_ENGINE_TAGS:
        cells = [f"{w} {m[f'macro_{tag}_{k}']:.3g}" for k, w in words if f"macro_{tag}_{k}" in m]
        lines.append(f"  macromodel on {m['macro_engines'][tag]}: " + ", ".join(cells))
    return lines + [f"  ({m['macro_note']})"]


# ---------------------------------------------------------------- the error budget (module doc)

@dataclass(frozen=True)
class Cause:
    """A circuit cause of the error budget: ``keys`` are the paths in the ``circuit`` section it owns ("wires",
    "opamp.r_out_ohm"); its share is the run with those keys alone against the ideal: ||x(cause) - x*|| / ||x*||."""

    name: str
    label: str
    keys: tuple[str, ...]


BUDGET_CAUSES: Registry[Cause] = Registry("an error-budget cause", "budget cause")
#: the op-amp's output impedance and input capacitance keys (spu_sim.parts.opamp.IMPEDANCE_KEYS): in the op-amp cause
OPAMP_IMPEDANCE_KEYS = tuple(f"opamp.{k}" for k in IMPEDANCE_KEYS)
BUDGET_CAUSES.add(Cause("quantisation_tolerance", "quantisation and tolerance", ("quantization", "tolerance", "temperature")))
# the op-amp share is the whole op-amp as its data sheet (or characterise) gives it: gain, GBW, offset, and its
# output impedance and input capacitance (keys OPAMP_IMPEDANCE_KEYS; properties of the op-amp, not of the wiring)
BUDGET_CAUSES.add(Cause("opamp", "op-amp (gain, GBW, offset, r_out, c_in)",
                        ("opamp.model", "opamp.gain", "opamp.gbw_hz", "opamp.offset_v",
                         "opamp.offset_sigma_v", "opamp.r_inverter_ohm", "opamp.supply_v", "opamp.i_quiescent_a",
                         "opamp.subckt", "opamp.corner", "opamp.characterised", *OPAMP_IMPEDANCE_KEYS)))
BUDGET_CAUSES.add(Cause("parasitics", "parasitics (wires)", ("wires",)))
# the intrinsic noise keys (issue 20 parts 1-2): present once the config models have them
BUDGET_CAUSES.add(Cause("intrinsic_noise", "intrinsic noise", ("thermal_noise", "opamp.en_v_per_rthz",
                                                               "opamp.in_a_per_rthz", "opamp.flicker_corner_hz")))
#: circuit keys no cause-alone run takes, and why (the budget's runs are on the linear engine): the run's budget then
#: names them (budget_left_out) instead of failing whole -- every realistic macromodel has a swing limit
BUDGET_LEFT_OUT = {"opamp.v_out_max_v": "the op-amp output-swing limit (opamp.v_out_max_v: nonlinear, which the "
                                         "linear engine cannot run)"}
BUDGET_ESTIMATES = ("op", "mean", "cov")
BUDGET_TIME = (("finite_time", "finite time"), ("sampling", "sampling"))
#: the measured error of the op-amp macromodel itself (a transistor-level run with circuit.opamp.characterised: the
#: cell's run against its characterised macromodel on the linear engine, macro_gaps)
BUDGET_MODEL = (("macro_model", "op-amp macromodel error"),)
#: each estimate's measured total in metrics.json
BUDGET_TOTALS = {"op": "op_rel_err", "mean": "mean_rel_err", "cov": "cov_rel_err"}
#: keys kept in every budget run: the random streams' seed and the operating temperature (kT of the intrinsic noise;
#: element values move with it only through the temperature coefficients, which the quantisation cause owns)
_SEED_KEYS = ("tolerance.seed", "temperature.temp_c", "temperature.tnom_c")


def _get(d: dict, path: str):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return _MISSING
        d = d[k]
    return d


def _set(d: dict, path: str, v) -> None:
    *head, last = path.split(".")
    for k in head:
        d = d.setdefault(k, {})
    d[last] = v


_MISSING = object()


def _base_circuit(circuit: dict) -> dict:
    """The circuit section with every key any cause owns removed (the ideal circuit of the same design ranges)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in circuit.items()}
    for _, cause in [*BUDGET_CAUSES.items(), ("left out", Cause("left out", "", tuple(BUDGET_LEFT_OUT)))]:
        for key in cause.keys:
            *head, last = key.split(".")
            parent = _get(out, ".".join(head)) if head else out
            if isinstance(parent, dict):
                parent.pop(last, None)
    for key in _SEED_KEYS:
        v = _get(circuit, key)
        if v is not _MISSING:
            _set(out, key, v)
    return out


def _with_circuit(prep: Prepared, circuit: dict, kappa: float | None = None, backend: str = "linear") -> Prepared:
    """prep's run on the linear engine (or ``backend``) with another circuit section (and kappa), the noise step,
    sample grid and burn-in of the run fixed (so the same seed gives the same noise samples), designed for the same
    problem (no file is read again)."""
    cfg = prep.cfg
    section = type(cfg.circuit).model_validate(circuit)
    # no save_nodes and no waveform file: the run's extra vectors name elements of its own circuit (VOI1 of a
    # macro op-amp) that a cause-alone circuit may not have, and the budget reads result arrays only
    sim = cfg.simulation.model_copy(update={"backend": backend, "burn_in_tau": prep.burn_in_tau,
                                            "noise_dt_tau": float(prep.design.noise_dt_tau), "save_nodes": []})
    readout = cfg.readout.model_copy(update={"sample_dt_tau": prep.sample_dt_tau, "waveforms": "none"})
    new = cfg.model_copy(update={"circuit": section, "simulation": sim, "readout": readout})
    problem = prep.problem if kappa is None else _with_kappa(prep.problem, kappa)
    return prepare_problem(new, problem)


def _with_kappa(problem, kappa: float):
    """The problem with another kappa (a dataclass Problem, or a problem class such as FactoredProblem: a copy)."""
    if dataclasses.is_dataclass(problem):
        return dataclasses.replace(problem, kappa=kappa)
    out = copy.copy(problem)
    out.kappa = float(kappa)
    return out


def _run(prep: Prepared, analyses: list[str]) -> dict[str, np.ndarray]:
    sim = prep.cfg.simulation.model_copy(update={"analyses": analyses})
    p = Prepared(prep.cfg.model_copy(update={"simulation": sim}), prep.problem, prep.topology, prep.design)
    with io.temp_folder("spu-sim-budget-") as tmp:     # locked: a killed run's is removed by the next run
        return simulate_in(p, Path(tmp), None).arrays


def error_budget(prep: Prepared, metrics: dict[str, Any], mean_from_op: bool = False,
                 model_gap: dict[str, float] | None = None) -> dict[str, float]:
    """The budget_<estimate>_<cause> entries of metrics.json (module doc), with budget_<estimate>_sum and
    budget_<estimate>_total (the run's measured error: op_rel_err, mean_rel_err, cov_rel_err), for the estimates
    the run has. Empty when the topology has no mean and no noise, or its circuit is not linear. mean_from_op: the
    circuit causes' mean share from the DC solution also when the run has no .op estimate (spu-sim posterior; a
    compare run takes it only with op_rel_err, since a clocked circuit has no meaningful .op). model_gap
    ({estimate: share}): the op-amp macromodel's own error, budget_<estimate>_macro_model (compare of a
    transistor-level run with its characterisation: prep is then the macromodel's run)."""
    problem, d = prep.problem, prep.design.d
    target = prep.design.target_sde()
    mean_t, cov_t = _observed(target, d)
    circuit = prep.cfg.circuit.model_dump(mode="json", exclude_defaults=True)   # the knobs the run sets
    base = _base_circuit(circuit)
    base_dump = type(prep.cfg.circuit).model_validate(base).model_dump(mode="json")
    has_mean = bool(prep.topology.has_mean)
    subckt = is_subckt(getattr(prep.design, "macro", None))
    out: dict[str, float] = {}
    for name, cause in BUDGET_CAUSES.items():
        if subckt and "opamp.model" in cause.keys:
            out["budget_note_opamp"] = (f"op-amp share not measured: circuit.opamp.model {_get(circuit, 'opamp.model')} "
                                        "is a SPICE subcircuit that the linear engine (which runs the budget) cannot run")
            continue
        alone = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
        for key in cause.keys:
            v = _get(circuit, key)
            if v is not _MISSING:
                _set(alone, key, v)
        try:
            section = type(prep.cfg.circuit).model_validate(alone).model_dump(mode="json")
        except ValueError:
            continue
        if section == base_dump:
            continue      # the cause is not set in this run
        p = _with_circuit(prep, alone)
        if has_mean and ("op_rel_err" in metrics or (mean_from_op and "mean_rel_err" in metrics)):
            x = _run(p, ["op"])["x_op"]
            out[f"budget_mean_{name}"] = _rel(x - mean_t, mean_t)
            if "op_rel_err" in metrics:
                out[f"budget_op_{name}"] = out[f"budget_mean_{name}"]
        if "cov_rel_err" in metrics:
            out[f"budget_cov_{name}"] = _rel(_observed(p.design.effective_sde(), d)[1] - cov_t, cov_t)
    if "window_tau" in metrics:
        ideal_noisy = _with_circuit(prep, base)
        noisy = _run(ideal_noisy, ["tran"])
        if has_mean and "mean_rel_err" in metrics:
            quiet = _run(_with_circuit(prep, base, kappa=0.0), ["tran"]) if problem.kappa > 0 else noisy
            out["budget_mean_finite_time"] = _rel(quiet["x_mean"] - mean_t, mean_t)
            if problem.kappa > 0:
                out["budget_mean_sampling"] = _rel(noisy["x_mean"] - quiet["x_mean"], mean_t)
        if "cov_rel_err" in metrics:
            out["budget_cov_sampling"] = _rel(noisy["x_cov"] - cov_t, cov_t)
    for est, share in (model_gap or {}).items():
        if BUDGET_TOTALS[est] in metrics:
            out[f"budget_{est}_macro_model"] = float(share)
    for est, total in BUDGET_TOTALS.items():
        shares = [v for k, v in out.items() if k.startswith(f"budget_{est}_")]
        if shares and total in metrics:
            out[f"budget_{est}_sum"] = float(sum(shares))
            out[f"budget_{est}_total"] = float(metrics[total])
    return out


def error_budget_or_note(prep: Prepared, metrics: dict[str, Any], mean_from_op: bool = False,
                         model_gap: dict[str, float] | None = None) -> dict[str, Any]:
    """error_budget, or {"budget_note": why} when the circuit cannot run on the linear engine (a nonlinear
    element such as the output-swing limit of every cause-alone circuit)."""
    try:
        out: dict[str, Any] = error_budget(prep, metrics, mean_from_op, model_gap)
    except BadInputError as e:
        return {"budget_note": f"no error budget: {e}"}
    run_keys = prep.cfg.circuit.model_dump(mode="json", exclude_defaults=True)
    left = [why for key, why in BUDGET_LEFT_OUT.items() if _get(run_keys, key) not in (_MISSING, None)]
    if left and out:
        out["budget_left_out"] = "not in the budget: " + "; ".join(left)
    return out


def budget_causes() -> list[tuple[str, str]]:
    """(name, label) of every cause, circuit causes in registration order, then the macromodel's own error,
    finite time and sampling."""
    return [(n, c.label) for n, c in BUDGET_CAUSES.items()] + list(BUDGET_MODEL) + list(BUDGET_TIME)


def format_budget(m: dict[str, Any]) -> str:
    """The budget as a text table: one row per cause present, one column per estimate, then the sum of the shares
    and the measured total ('' when the run has no budget)."""
    ests = [e for e in BUDGET_ESTIMATES if f"budget_{e}_total" in m]
    if not ests:
        return ""
    head = {"op": ".op", "mean": "time average", "cov": "covariance"}
    lines = ["error budget (each cause alone, linear engine, same seed)",
             f"{'cause':40s} " + " ".join(f"{head[e]:>12s}" for e in ests)]

    def cell(k):
        return f"{m[k]:.3e}" if k in m else "-"
    for name, label in budget_causes():
        if any(f"budget_{e}_{name}" in m for e in ests):
            lines.append(f"{label:40s} " + " ".join(f"{cell(f'budget_{e}_{name}'):>12s}" for e in ests))
    lines.append(f"{'sum of the shares':40s} " + " ".join(f"{cell(f'budget_{e}_sum'):>12s}" for e in ests))
    lines.append(f"{'total (measured)':40s} " + " ".join(f"{cell(f'budget_{e}_total'):>12s}" for e in ests))
    if "budget_note_opamp" in m:
        lines.append(m["budget_note_opamp"])
    if m.get("budget_left_out"):
        lines.append(str(m["budget_left_out"]))
    return "\n".join(lines)


BUDGET_PLOT_NAME = "budget.png"


def plot_budget(out_dir: str | Path) -> list[Path]:
    """budget.png from metrics.json: per estimate, a bar per cause and the measured total (log scale)."""
    out = Path(out_dir)
    m = json.loads((out / METRICS_NAME).read_text(encoding="utf-8"))
    fig = budget_figure(m)
    if fig is None:
        return []
    path = out / BUDGET_PLOT_NAME
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return [path]


def budget_figure(m: dict[str, Any]):
    """The figure of budget.png (None without a budget): each bar carries its value, since the shares often lie
    within one decade, where a log axis has no labelled tick."""
    ests = [e for e in BUDGET_ESTIMATES if f"budget_{e}_total" in m]
    if not ests:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(ests), figsize=(max(6.5, 4.5 * len(ests)), 4.0), squeeze=False)
    for ax, e in zip(axes[0], ests):
        rows = [(label, m[f"budget_{e}_{n}"]) for n, label in budget_causes() if f"budget_{e}_{n}" in m]
        rows += [("sum of shares", m[f"budget_{e}_sum"]), ("total", m[f"budget_{e}_total"])]
        vals = [max(v, 1e-16) for _, v in rows]
        ax.barh(range(len(rows)), vals, color=["C0"] * (len(rows) - 2) + ["C7", "C3"])
        ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
        ax.set_xscale("log")
        ax.tick_params(axis="x", which="minor", labelbottom=False)
        lo, hi = min(vals), max(vals)
        ax.set_xlim(lo / 3.0, hi * 6.0)          # room for the value beside the longest bar
        for k, v in enumerate(vals):
            ax.text(v * 1.1, k, f"{v:.3g}", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("relative error")
        ax.set_ylabel("cause")
        ax.set_title({"op": ".op", "mean": "time average", "cov": "covariance"}[e])
    fig.suptitle(f"error budget by cause\n({m.get('engine', '?')} run; shares measured on the linear engine)")
    fig.tight_layout()
    return fig


def _unmeasured_realised(design, m: dict[str, Any]) -> dict[str, Any]:
    """With a subcircuit op-amp (circuit.opamp.model: subckt or a shipped cell) the realised matrix and process are
    not known (spu-sim does not model the subcircuit's gain): matrix_rel_err and the *_vs_realized errors are left
    out, not computed from ideal op-amps, and ``realized_note`` says so. A design whose judge leaves a noise source
    out (``judge_leaves_out``: opamp_sc with op-amp e_n) has its covariance-vs-realised errors left out likewise."""
    m_op = getattr(design, "macro", None)
    left = getattr(design, "judge_leaves_out", None)
    if left:
        out = {k: v for k, v in m.items() if not (k.startswith("cov_rel_err_vs_realized")
                                                  or k.startswith("sc_sampling_cov_rel_err"))}
        out["realized_note"] = (f"covariance vs realised circuit: not judged (the judge leaves out {left}; the error "
                                "against kappa A^-1 includes its effect)")
        return out
    if not is_subckt(m_op):
        return m
    out = {k: v for k, v in m.items() if k != "matrix_rel_err" and not k.endswith("_vs_realized")}
    out["realized_note"] = (f"realised matrix: not measured (circuit.opamp.model {m_op.cell.label} is a subcircuit whose "
                            "gain spu-sim does not model; the errors against A^-1 b and kappa A^-1 include its effect)")
    return out


def format_table(m: dict[str, Any]) -> str:
    """The metrics as an aligned text table (circuit | ideal sampler | expected from theory)."""
    rows = [("equilibrium (.op) vs A^-1 b", "op_rel_err", None, None),
            ("time average vs A^-1 b", "mean_rel_err", "mean_rel_err_ideal_sampler", "mean_rel_err_expected"),
            ("covariance vs kappa A^-1", "cov_rel_err", "cov_rel_err_ideal_sampler", "cov_rel_err_expected"),
            ("time average vs realised circuit", "mean_rel_err_vs_realized", None, None),
            ("covariance vs realised circuit", "cov_rel_err_vs_realized", None, None),
            ("realised matrix vs A", "matrix_rel_err", None, None)]

    def cell(key):
        return f"{m[key]:.3e}" if key and key in m else "-"
    lines = [f"{'relative error':34s} {'circuit':>10s} {'ideal OU':>10s} {'expected':>10s}"]
    for label, a, b, c in rows:
        if a in m:
            lines.append(f"{label:34s} {cell(a):>10s} {cell(b):>10s} {cell(c):>10s}")
    if "realized_note" in m:
        lines.append(m["realized_note"])
    if "window_tau" in m:
        lines.append(f"averaging window {m['window_tau']:.4g} tau ({m['n_samples']} samples), tau = {m['tau_s']:.4g} s")
    return "\n".join(lines)


def check_judged(prep: Prepared) -> None:
    """Refuse (BadInputError, before any engine runs) a compare / posterior run whose judge cannot model what the
    circuit does: the design's ``unjudged_intrinsic`` reason (posterior_logistic with intrinsic noise)."""
    reason = getattr(prep.design, "unjudged_intrinsic", None)
    if reason:
        raise BadInputError(reason)


def compare(config: str | Path | dict | Config, out_dir: str | Path, *, progress: bool = False,
            budget: bool = True) -> dict[str, Any]:
    """simulate + exact reference + metrics.json + reference.npz + PNG plots in out_dir; budget: also the error
    budget (module doc; extra linear-engine runs: one .op per cause present and two transients of the ideal
    circuit) and budget.png. With circuit.opamp.characterised (a transistor-level op-amp): also the same design
    with its characterised macromodel on the run's engine and on the linear engine (macro_gaps), and the error
    budget of that macromodel's design with the macromodel's own error as one more row."""
    prep = prepare(config)
    check_judged(prep)
    oc = getattr(prep.cfg.circuit, "opamp", None)
    characterised = read_characterised(oc, prep.cfg.circuit.temperature.temp_c) if oc is not None else None

    def work(stage: Path) -> dict[str, Any]:
        arrays = simulate_in(prep, stage, Path(out_dir), progress=progress).arrays
        ref = reference_arrays(prep, arrays) if len(arrays["t"]) > 1 else {}
        metrics = compute_metrics(prep, arrays, ref.get("x_ideal"))
        gap: dict[str, float] | None = None
        budget_prep = prep
        if characterised is not None:
            gaps, budget_prep, gap = macro_gaps(prep, arrays, characterised)
            metrics.update(gaps)
        if budget:
            metrics.update(error_budget_or_note(budget_prep, metrics, model_gap=gap))
        if ref:
            io.atomic_save_npz(stage / REFERENCE_NAME, **ref)
        io.atomic_write_json(stage / METRICS_NAME, metrics)
        plots.plot_compare(stage)
        plot_budget(stage)
        return metrics
    return staged(out_dir, work, prep=prep)[0]
