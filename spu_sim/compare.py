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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import ideal, io, plots
from .run_config import Config
from .pipeline import TIMING_NAMES, Prepared, prepare, simulate_in, staged

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
    if "window_tau" in m:
        lines.append(f"averaging window {m['window_tau']:.4g} tau ({m['n_samples']} samples), tau = {m['tau_s']:.4g} s")
    return "\n".join(lines)


def compare(config: str | Path | dict | Config, out_dir: str | Path, *, progress: bool = False) -> dict[str, Any]:
    """simulate + exact reference + metrics.json + reference.npz + PNG plots in out_dir."""
    prep = prepare(config)

    def work(stage: Path) -> dict[str, Any]:
        arrays = simulate_in(prep, stage, Path(out_dir), progress=progress).arrays
        ref = reference_arrays(prep, arrays) if len(arrays["t"]) > 1 else {}
        metrics = compute_metrics(prep, arrays, ref.get("x_ideal"))
        if ref:
            io.atomic_save_npz(stage / REFERENCE_NAME, **ref)
        io.atomic_write_json(stage / METRICS_NAME, metrics)
        plots.plot_compare(stage)
        return metrics
    return staged(out_dir, work, prep=prep)[0]
