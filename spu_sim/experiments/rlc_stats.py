"""Estimators and exact references of the RLC experiments (no circuit, no files): error curves of the
inverse estimate, the known-zero-mean autocovariance and its Bartlett standard error, the exact
autocovariance of a linear SDE, a damped-cosine fit, and the stationary covariance under the filesource's
interpolated noise (the bias the finite noise step adds to an ngspice run)."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.optimize import curve_fit

from .. import ideal
from ..parts.noise_dacs import PRE_EMPHASIS


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """||a - ref||_F / ||ref||_F."""
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def error_curve(x: np.ndarray, target_inv: np.ndarray, kappa: float, dt_tau: float,
                n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative Frobenius error of Shat_k / kappa against target_inv for prefixes of k samples (geometric k).
    Returns (T_tau (m,), err (m,)). Cost O(n d^2)."""
    n = len(x)
    ks = np.unique(np.geomspace(min(20, n), n, n_points).astype(int))
    err = np.empty(len(ks))
    acc = np.zeros((x.shape[1], x.shape[1]))
    prev = 0
    for m, k in enumerate(ks):
        acc += x[prev:k].T @ x[prev:k]
        prev = k
        err[m] = rel_err(acc / k / kappa, target_inv)
    return ks * dt_tau, err


def autocovariance(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Known-zero-mean autocovariance chat(m) = sum_k x_k x_{k+m} / (n - m), m = 0..max_lag (FFT)."""
    n = len(x)
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    fx = np.fft.rfft(x, nfft)
    c = np.fft.irfft(fx * np.conj(fx), nfft)[:max_lag + 1]
    return c / (n - np.arange(max_lag + 1))


def exact_autocovariance(sde: ideal.LinearSDE, i: int, lags: np.ndarray) -> np.ndarray:
    """c_ii(s) = [expm(-K s) S]_ii, s >= 0."""
    S = ideal.stationary_cov(sde)
    P = ideal._propagators(sde.K, lags)
    return np.einsum("tj,j->t", P[:, i, :], S[:, i])


def bartlett_se(c_fn, lags: np.ndarray, T: float, dt: float, u_max: float) -> np.ndarray:
    """Standard error of chat(s) over a window T (Bartlett): var = (1/T) int [c(u)^2 + c(u+s) c(u-s)] du."""
    u = np.arange(-u_max, u_max + dt / 2, dt)
    c_abs = c_fn(np.abs(u))
    out = np.empty(len(lags))
    for m, s in enumerate(lags):
        out[m] = np.sum(c_abs ** 2 + c_fn(np.abs(u + s)) * c_fn(np.abs(u - s))) * dt / T
    return np.sqrt(np.clip(out, 0, None))


def fit_damped_cosine(lags: np.ndarray, c: np.ndarray) -> dict[str, float]:
    """Least-squares fit c(s) ~ a exp(-r s) cos(w s + phi): the dominant oscillation and its decay."""
    def model(s, a, r, w, phi):
        return a * np.exp(-r * s) * np.cos(w * s + phi)
    spec = np.abs(np.fft.rfft(c - c.mean(), 8 * len(c)))
    freqs = np.fft.rfftfreq(8 * len(c), lags[1] - lags[0]) * 2 * np.pi
    w0 = float(freqs[np.argmax(spec[1:]) + 1])
    try:
        p, _ = curve_fit(model, lags, c, p0=[c[0], 0.2, w0, 0.0], maxfev=20000)
        return {"amplitude": float(p[0]), "decay_per_tau": float(abs(p[1])), "omega_per_tau": float(abs(p[2])),
                "phase": float(p[3])}
    except RuntimeError:
        return {"amplitude": float("nan"), "decay_per_tau": float("nan"), "omega_per_tau": w0, "phase": float("nan")}


def interpolated_noise_cov(sde: ideal.LinearSDE, h: float, pre_emphasis: float | None = None) -> np.ndarray:
    """Exact stationary covariance, at the sample instants k h, of dz = -K z ds + G e(s) ds when e is not
    white but the filesource's noise: samples u_k every h (time in tau), linearly interpolated, with
    u_k = (w_k + c (w_k - w_{k-1})) / sqrt(h) (c: spu_sim.parts.noise_dacs.PRE_EMPHASIS, 0 if absent), w iid N(0, 1),
    so that the low-frequency intensity is that of the white noise (G G^T = D).

    Over one step z_{k+1} = Phi z_k + Gam0 u_k + Gam1 u_{k+1}, Gam0 = int_0^h e^{-K(h-s)} (1 - s/h) ds G,
    Gam1 = int_0^h e^{-K(h-s)} (s/h) ds G (Gauss-Legendre, 24 nodes); the state (z_k, w_k, w_{k-1}) is then a
    discrete linear system driven by white noise: discrete Lyapunov equation. What it differs from
    ideal.stationary_cov(sde) by is the bias the finite noise step adds to an ngspice run.
    """
    if pre_emphasis is None:
        pre_emphasis = PRE_EMPHASIS
    c = pre_emphasis
    n = sde.K.shape[0]
    w_, V = np.linalg.eigh(0.5 * (sde.D + sde.D.T))
    keep = w_ > 1e-14 * max(w_.max(), 1e-300)
    G = V[:, keep] * np.sqrt(w_[keep])
    m = G.shape[1]
    xg, wg = np.polynomial.legendre.leggauss(24)
    s = 0.5 * h * (xg + 1.0)
    wg = 0.5 * h * wg
    Gam0 = np.zeros((n, m))
    Gam1 = np.zeros((n, m))
    for sk, wk in zip(s, wg):
        E = sla.expm(-sde.K * (h - sk)) @ G
        Gam0 += wk * (1 - sk / h) * E
        Gam1 += wk * (sk / h) * E
    a = 1.0 / np.sqrt(h)
    Phi = sla.expm(-sde.K * h)
    F = np.zeros((n + 2 * m, n + 2 * m))
    F[:n, :n] = Phi
    F[:n, n:n + m] = a * ((1 + c) * Gam0 - c * Gam1)
    F[:n, n + m:] = -a * c * Gam0
    F[n + m:, n:n + m] = np.eye(m)
    H = np.zeros((n + 2 * m, m))
    H[:n] = a * (1 + c) * Gam1
    H[n:n + m] = np.eye(m)
    P = sla.solve_discrete_lyapunov(F, H @ H.T)
    return 0.5 * (P + P.T)[:n, :n]
