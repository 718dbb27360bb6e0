"""Exact time stepping of x' = M x + N u (the linear engine's transient; physics.md section 6).

Inputs are piecewise linear in time (first-order hold between grid points j h): over one step
    x_{j+1} = Phi x_j + G0 u_j + G1 u_{j+1},   Phi = e^{M h},
    G0 = (P1 - P2/h) N,  G1 = (P2/h) N,  P1 = int_0^h e^{M s} ds,  P2 = int_0^h e^{M (h - s)} s ds,
exact for any h. Two evaluations of that recursion:

- ``modal`` (default when M is diagonalisable with a well-conditioned eigenbasis, cond(V) <= 1e6):
  M = V diag(lam) V^-1; in modal coordinates y = V^-1 x every mode is a scalar first-order recursion
  y_{j+1} = e^{lam h} y_j + f_j, f_j = h(phi1 - phi2)(lam h) (V^-1 N u_j) + h phi2(lam h) (V^-1 N u_{j+1}),
  phi1(z) = (e^z - 1)/z, phi2(z) = (e^z - 1 - z)/z^2. The forcing of a block of steps is one GEMM, the
  recursion a C loop per mode (scipy.signal.lfilter), outputs one GEMM: cost per step O(n n_u + n n_out),
  no Python loop over time points. Rounding error about cond(V) * eps relative (symmetric M: eigh, cond 1).
- ``loop``: the dense Phi, G0, G1 from one block exponential expm([[M, I, 0], [0, 0, I], [0, 0, 0]] h) and
  a Python loop x <- Phi x + f_j (the reference the tests compare the modal form with, and the fallback
  for defective or badly conditioned M).

Aggregated noise (white noise of two-sided intensities q_i in place of the piecewise-linear samples):
over one output step the transition is x_{k+1} = Phi x_k + P1 N_dc + xi_k, xi_k ~ N(0, Q),
Q = int_0^h e^{M s} N_n diag(q) N_n^T e^{M^T s} ds (modal: (V^-1 N_n diag(q) N_n^H V^-H)_{ij} h phi1((lam_i +
conj lam_j) h), then V . V^H; loop: Van Loan, expm([[-M, N_n diag(q) N_n^T], [0, M^T]] h)).
Statistically exact at the readout times; not path-identical to any sample file.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import scipy.linalg as sla
from scipy.signal import lfilter

COND_MAX = 1e6
CHUNK_ELEMENTS = 2 ** 22  # rows x states of one block of steps (complex: 64 MB)


def phi1(z: np.ndarray) -> np.ndarray:
    """(e^z - 1)/z, series near 0."""
    z = np.asarray(z, dtype=complex)
    small = np.abs(z) < 0.5
    out = np.empty_like(z)
    zs = z[small]
    term, acc = np.ones_like(zs), np.zeros_like(zs)
    for k in range(1, 20):
        acc = acc + term
        term = term * zs / (k + 1)
    out[small] = acc
    zb = z[~small]
    out[~small] = np.expm1(zb) / zb
    return out


def phi2(z: np.ndarray) -> np.ndarray:
    """(e^z - 1 - z)/z^2, series near 0."""
    z = np.asarray(z, dtype=complex)
    small = np.abs(z) < 0.5
    out = np.empty_like(z)
    zs = z[small]
    term, acc = np.full_like(zs, 0.5), np.zeros_like(zs)
    for k in range(1, 20):
        acc = acc + term
        term = term * zs / (k + 2)
    out[small] = acc
    zb = z[~small]
    out[~small] = (np.expm1(zb) - zb) / zb ** 2
    return out


class Modal(NamedTuple):
    """M = V diag(lam) V^-1; cond: the 2-norm condition number of V (1 for symmetric M, then all real)."""

    lam: np.ndarray
    V: np.ndarray
    Vinv: np.ndarray
    cond: float


def modal_form(M: np.ndarray) -> Modal:
    """Eigen decomposition of M (eigh when M is symmetric to rounding)."""
    scale = np.abs(M).max() if M.size else 1.0
    if np.abs(M - M.T).max() <= 1e-13 * scale:
        lam, V = np.linalg.eigh(0.5 * (M + M.T))
        return Modal(lam, V, V.T.copy(), 1.0)  # real: every product below stays real
    lam, V = np.linalg.eig(M)
    V = V.astype(complex)
    s = np.linalg.svd(V, compute_uv=False)
    cond = float(s[0] / s[-1]) if s[-1] > 0 else np.inf
    Vinv = np.linalg.inv(V) if np.isfinite(cond) else V * np.nan
    return Modal(lam.astype(complex), V, Vinv, cond)


def foh_dense(M: np.ndarray, N: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phi, G0, G1 of one first-order-hold step of length h (one block exponential of size 3n)."""
    n = M.shape[0]
    F = np.zeros((3 * n, 3 * n))
    F[:n, :n] = M * h
    F[:n, n:2 * n] = np.eye(n) * h
    F[n:2 * n, 2 * n:] = np.eye(n) * h
    E = sla.expm(F)  # E12 = int_0^h e^{M(h-s)} ds = P1, E13 = int_0^h e^{M(h-s)} s ds = P2
    Phi, P1, P2 = E[:n, :n], E[:n, n:2 * n], E[:n, 2 * n:]
    G1 = (P2 / h) @ N
    G0 = P1 @ N - G1
    return Phi, G0, G1


def q_dense(M: np.ndarray, Nq: np.ndarray, h: float) -> np.ndarray:
    """Van Loan: Q = int_0^h e^{M s} Nq Nq^T e^{M^T s} ds."""
    n = M.shape[0]
    F = np.zeros((2 * n, 2 * n))
    F[:n, :n] = -M * h
    F[:n, n:] = Nq @ Nq.T * h
    F[n:, n:] = M.T * h
    E = sla.expm(F)
    Q = E[n:, n:].T @ E[:n, n:]
    return 0.5 * (Q + Q.T)


def q_modal(mf: Modal, Nq: np.ndarray, h: float) -> np.ndarray:
    """Q in the modal form (real, symmetrised)."""
    Nt = mf.Vinv @ Nq
    K = Nt @ Nt.conj().T
    Z = (mf.lam[:, None] + mf.lam.conj()[None, :]) * h
    Qm = K * (h * phi1(Z))
    Q = (mf.V @ Qm @ mf.V.conj().T).real
    return 0.5 * (Q + Q.T)


def modal_noise_factor(mf: Modal, Nq: np.ndarray, h: float) -> np.ndarray:
    """W with V^-1 xi = W z, z ~ N(0, I) real, for the transition noise xi ~ N(0, Q) of one step h.

    Real (symmetric M) modes: the modal covariance K o E itself, factored by Cholesky (eigen square root when
    it is only semi-definite). Complex modes: V^-1 times a real square root of Q (V^-1 xi is not circular)."""
    if np.isrealobj(mf.lam):
        Nt = mf.Vinv @ Nq
        Z = (mf.lam[:, None] + mf.lam[None, :]) * h
        Qm = (Nt @ Nt.T) * (h * phi1(Z)).real
        Qm = 0.5 * (Qm + Qm.T)
        try:
            return np.linalg.cholesky(Qm)
        except np.linalg.LinAlgError:
            return sqrt_psd(Qm)
    return mf.Vinv @ sqrt_psd(q_modal(mf, Nq, h))


def sqrt_psd(Q: np.ndarray) -> np.ndarray:
    """L with L L^T = Q for a positive semi-definite Q (eigen square root: Q may be singular)."""
    s, U = np.linalg.eigh(Q)
    return U * np.sqrt(np.clip(s, 0.0, None))


InputBlock = Callable[[int, int], np.ndarray]   # (j0, j1) -> inputs at fine steps j0..j1 inclusive, (j1-j0+1, n_u)


def _chunk(n_states: int, p: int) -> int:
    rows = max(p, (CHUNK_ELEMENTS // max(n_states, 1)) // p * p)
    return rows


def run_modal(mf: Modal, N: np.ndarray, Cx: np.ndarray, Du: np.ndarray, x0: np.ndarray, h: float, n_fine: int,
              p: int, inputs: InputBlock, noise: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
    """Outputs (n_fine / p + 1, n_out) at fine steps 0, p, 2p, ... (modal recursion, see module doc).

    noise: optional (rows) -> (rows, n) additive forcing in modal coordinates (aggregated mode: V^-1 xi_k),
    added to the FOH forcing of ``inputs`` (there the DC column only)."""
    lam = mf.lam
    real = np.isrealobj(lam)
    a = np.exp(lam * h)
    g1 = h * phi2(lam * h)
    g0 = h * phi1(lam * h) - g1
    if real:
        g0, g1 = g0.real, g1.real
    Nt = mf.Vinv @ N
    CV = Cx @ mf.V
    y = mf.Vinv @ x0.astype(mf.V.dtype)
    n_out = n_fine // p
    out = np.empty((n_out + 1, Cx.shape[0]))
    out[0] = (CV @ y).real + Du @ inputs(0, 0)[0]
    L = _chunk(len(lam), p)
    j0 = 0
    while j0 < n_fine:
        j1 = min(n_fine, j0 + L)
        U = inputs(j0, j1)
        P = U @ Nt.T
        F = P[:-1] * g0 + P[1:] * g1
        if noise is not None:
            F += noise(j1 - j0)
        Y = np.empty_like(F)
        for i in range(len(lam)):
            Y[:, i], _ = lfilter([1.0], [1.0, -a[i]], F[:, i], zi=[a[i] * y[i]])
        y = Y[-1]
        sel = np.arange(p - 1, j1 - j0, p)  # rows l whose step j0 + l + 1 is a multiple of p (j0 is one)
        k0 = j0 // p
        out[k0 + 1:k0 + 1 + len(sel)] = (Y[sel] @ CV.T).real + U[sel + 1] @ Du.T
        j0 = j1
    return out


def run_loop(M: np.ndarray, N: np.ndarray, Cx: np.ndarray, Du: np.ndarray, x0: np.ndarray, h: float, n_fine: int,
             p: int, inputs: InputBlock, noise: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
    """The same outputs by the straightforward dense recursion x <- Phi x + G0 u_j + G1 u_{j+1} (+ noise)."""
    Phi, G0, G1 = foh_dense(M, N, h)
    x = x0.astype(float).copy()
    n_out = n_fine // p
    out = np.empty((n_out + 1, Cx.shape[0]))
    out[0] = Cx @ x + Du @ inputs(0, 0)[0]
    L = _chunk(M.shape[0], p)
    j0 = 0
    while j0 < n_fine:
        j1 = min(n_fine, j0 + L)
        U = inputs(j0, j1)
        F = U[:-1] @ G0.T + U[1:] @ G1.T
        if noise is not None:
            F += noise(j1 - j0)
        for l in range(j1 - j0):
            x = Phi @ x + F[l]
            j = j0 + l + 1
            if j % p == 0:
                out[j // p] = Cx @ x + Du @ U[l + 1]
        j0 = j1
    return out
