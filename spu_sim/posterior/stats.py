"""Sample statistics of a sampler's path: autocorrelation, integrated autocorrelation time, effective
sample size, mixing time; and the exact autocorrelation of an OU process to judge them.

    rho = autocorrelation(theta)               # (n_lags, d), FFT, normalised to rho(0) = 1
    tau_int = integrated_time(rho)             # (d,), in samples; Sokal's window M >= c tau_int (c = 5)
    ess = n / max(tau_int)                     # effective sample size of the whole path
    t_mix = mixing_time(rho, dt)               # first lag where the slowest coordinate's rho < 1/e

For an OU process with one mode of rate r, rho(s) = exp(-r s): tau_int = 2 / (r dt) samples (= 2 / r in
time) and the 1/e mixing time is 1 / r; for several modes the slowest one dominates both.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

WINDOW_C = 5.0
E_FOLD = float(np.exp(-1.0))


def autocorrelation(x: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """Normalised autocorrelation of each column of x (n, d) for lags 0..max_lag (FFT, biased estimator)."""
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    max_lag = n - 1 if max_lag is None else min(int(max_lag), n - 1)
    xc = x - x.mean(0)
    m = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(xc, n=m, axis=0)
    acf = np.fft.irfft(f * np.conj(f), n=m, axis=0)[: max_lag + 1] / n
    var = acf[0]
    return acf / np.where(var > 0, var, 1.0)


def integrated_time(rho: np.ndarray, c: float = WINDOW_C) -> np.ndarray:
    """tau_int = 1 + 2 sum_{k=1}^{M} rho_k per column, M the smallest lag with M >= c tau_int(M) (Sokal)."""
    rho = np.atleast_2d(np.asarray(rho, dtype=float).T).T
    taus = 2.0 * np.cumsum(rho, axis=0) - 1.0
    out = np.empty(rho.shape[1])
    for j in range(rho.shape[1]):
        ok = np.arange(len(taus)) >= c * taus[:, j]
        out[j] = taus[np.argmax(ok), j] if ok.any() else taus[-1, j]
    return out


def mixing_time(rho: np.ndarray, dt: float) -> float:
    """The first lag (times dt) at which every column's autocorrelation has fallen below 1/e (linear
    interpolation between samples); NaN when it never does."""
    worst = np.max(np.atleast_2d(np.asarray(rho).T).T, axis=1)
    below = np.flatnonzero(worst < E_FOLD)
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    if k == 0:
        return 0.0
    a, b = worst[k - 1], worst[k]
    return float((k - 1 + (a - E_FOLD) / (a - b)) * dt)


def ou_autocorrelation(A: np.ndarray, lags_tau: np.ndarray) -> np.ndarray:
    """Exact normalised autocorrelation of dx = -A x dt + sqrt(2) dW per coordinate, (len(lags), d):
    [expm(-A s) S]_ii / S_ii with S = A^-1 (symmetric A) from the Lyapunov equation."""
    S = sla.solve_continuous_lyapunov(A, 2.0 * np.eye(A.shape[0]))
    w, V = np.linalg.eig(A)
    Vi = np.linalg.inv(V)
    P = np.einsum("ij,tj,jk->tik", V, np.exp(-np.outer(lags_tau, w)), Vi).real
    C = np.einsum("tij,jk->tik", P, S)
    return np.diagonal(C, axis1=1, axis2=2) / np.diag(S)


def summary(theta: np.ndarray, dt_tau: float) -> dict[str, object]:
    """ESS, integrated autocorrelation time and 1/e mixing time (tau) of a path sampled every dt_tau."""
    n = theta.shape[0]
    rho = autocorrelation(theta, max_lag=min(n - 1, max(100, n // 4)))
    tau_int = integrated_time(rho)
    return {"n_samples": int(n), "tau_int_samples": tau_int.tolist(), "tau_int_tau": (tau_int * dt_tau).tolist(),
            "ess": float(n / np.max(tau_int)), "ess_each": (n / tau_int).tolist(),
            "mixing_time_tau": mixing_time(rho, dt_tau)}
