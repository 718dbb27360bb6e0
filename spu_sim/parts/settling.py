"""Settling time of a linear network, from the result arrays and its linear model (no simulation here).

Problem time unit tau; tol = SETTLE_TOL of the initial distance e0 = max_i |x0_i - x_eq,i|:

- measured: the first readout time after which every |x_i(t) - x_eq,i| stays <= tol e0 + n_sigma sqrt(S_ii)
  for the rest of the run (x_eq: the .op equilibrium, else the time average; S: the stationary covariance of
  the realised process -- the noise band, 0 without noise). NaN if the run never settles.
- predicted_exact: the same criterion (without the noise band) on the exact mean trajectory
  E[x(t)] = x* + expm(-A t)(x0 - x*) of the realised / effective drift.
- predicted_slowest: ln(1 / tol) / Re(lambda_min), the slowest eigenvalue of that drift: the usual
  single-mode estimate (exact when x0 - x* lies along the slowest eigenvector).
"""

from __future__ import annotations

import numpy as np

from ..ideal import LinearSDE, quasi_static, stationary_cov, stationary_mean, transient_mean

SETTLE_TOL = 1e-2
N_SIGMA = 4.0


def settling_time_measured(t_tau: np.ndarray, x: np.ndarray, x0: np.ndarray, x_eq: np.ndarray,
                           band: np.ndarray, tol: float = SETTLE_TOL) -> float:
    """First time after which |x(t) - x_eq| <= tol * max|x0 - x_eq| + band (per coordinate) for good."""
    e0 = float(np.max(np.abs(x0 - x_eq)))
    if t_tau.size == 0:
        return float("nan")
    if e0 == 0:
        return 0.0
    ok = np.all(np.abs(x - x_eq) <= tol * e0 + band, axis=1)
    if not ok[-1]:
        return float("nan")
    bad = np.flatnonzero(~ok)
    return float(t_tau[0]) if bad.size == 0 else float(t_tau[min(bad[-1] + 1, len(t_tau) - 1)])


def settling_time_predicted(sde: LinearSDE, x0: np.ndarray, tol: float = SETTLE_TOL,
                            n_grid: int = 4000) -> tuple[float, float]:
    """(exact-mean criterion, ln(1/tol) / Re lambda_min) in tau for dx = -(K x - f) dt."""
    lam = np.linalg.eigvals(sde.K)
    rmin = float(np.min(lam.real))
    slow = float(np.log(1.0 / tol) / rmin)
    xs = stationary_mean(sde)
    e0 = float(np.max(np.abs(x0 - xs)))
    if e0 == 0:
        return 0.0, slow
    t = np.linspace(0.0, 3.0 * slow, n_grid)
    m = transient_mean(sde, x0, t)
    ok = np.all(np.abs(m - xs) <= tol * e0, axis=1)
    bad = np.flatnonzero(~ok)
    exact = 0.0 if bad.size == 0 else float(t[min(bad[-1] + 1, n_grid - 1)])
    return exact, slow


def settling_metrics(design, problem, arrays: dict) -> dict[str, float]:
    """Settling time, measured and predicted (module doc), of a design's effective process: settle_tol_relative,
    settle_predicted_{exact,slowest}_tau, settle_predicted_exact_s, settle_measured_{tau,s} (arrays: result.npz
    contents; t in seconds, x in problem units, x_op the .op equilibrium when there is one)."""
    full = design.effective_sde()     # its first d states are the variables (more: a macromodel's op-amp poles)
    sde = quasi_static(full, design.d)
    x0 = np.asarray(arrays.get("x0", problem.x0), dtype=float)
    exact, slow = settling_time_predicted(sde, x0)
    out = {"settle_tol_relative": SETTLE_TOL, "settle_predicted_exact_tau": exact,
           "settle_predicted_slowest_tau": slow, "settle_predicted_exact_s": exact * design.tau_s}
    t = np.asarray(arrays.get("t", np.zeros(0)), dtype=float)
    meas = float("nan")
    if t.size:
        x_eq = np.asarray(arrays.get("x_op", np.full(design.d, np.nan)), dtype=float)
        if not np.all(np.isfinite(x_eq)):
            x_eq = stationary_mean(sde)
        band = (N_SIGMA * np.sqrt(np.clip(np.diag(stationary_cov(full))[:design.d], 0, None))
                if np.any(np.diag(full.D) > 0) else 0.0)
        meas = settling_time_measured(t / design.tau_s, np.asarray(arrays["x"]), x0, x_eq, band)
    out.update(settle_measured_tau=meas, settle_measured_s=meas * design.tau_s)
    return out
