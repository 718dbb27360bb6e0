"""Exact reference for linear stochastic dynamics: the judge of every circuit result.

Depends on nothing in the circuit path (only NumPy/SciPy), so it can judge it.

General linear SDE (time measured in units of tau, so tau does not appear):

    dz = -(K z - f) dt + B dW,        D = B B^T  (diffusion matrix)

- stationary mean   z* = K^-1 f
- stationary cov    S solves  K S + S K^T = D          (Lyapunov; valid for non-symmetric K)
- transient mean    E[z(t)] = z* + expm(-K t) (z0 - z*)
- transient cov     S(t) = S - expm(-K t) S expm(-K t)^T            (z0 deterministic)
- exact sampler     z_{k+1} = z* + Phi (z_k - z*) + L xi_k,  Phi = expm(-K h),  L L^T = S - Phi S Phi^T

The overdamped OU process of the thermodynamic SPU is the case K = A, f = b, D = 2 kappa I:

    dx = -(A x - b) dt / tau + sqrt(2 kappa / tau) dW     ->   x ~ N(A^-1 b, kappa A^-1)  (A symmetric)

``ou_*`` functions are thin wrappers that build (K, f, D) for it; the underdamped RLC reference builds its
own (K, f, D) and uses the same general functions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg as sla


class LinearSDE(NamedTuple):
    """dz = -(K z - f) dt + B dW with D = B B^T; time in units of tau. Shapes (n, n), (n,), (n, n)."""

    K: np.ndarray
    f: np.ndarray
    D: np.ndarray


def ou_sde(A: np.ndarray, b: np.ndarray, kappa: float) -> LinearSDE:
    """The overdamped OU process dx = -(A x - b) dt + sqrt(2 kappa) dW (t in tau)."""
    A = np.asarray(A, dtype=float)
    d = A.shape[0]
    return LinearSDE(A, np.asarray(b, dtype=float), 2.0 * float(kappa) * np.eye(d))


def stationary_mean(sde: LinearSDE) -> np.ndarray:
    """z* = K^-1 f, shape (n,)."""
    return np.linalg.solve(sde.K, sde.f)


def quasi_static(sde: LinearSDE, d: int) -> LinearSDE:
    """The process of the first d states with the others eliminated quasi-statically (their time derivative set to
    0: K' = K11 - K12 K22^-1 K21, f' = f1 - K12 K22^-1 f2, D' = D11): the same stationary mean, the slow dynamics of
    a circuit whose extra states (op-amp poles) are fast. The process itself when it has d states."""
    if sde.K.shape[0] == d:
        return sde
    K, f = sde.K, sde.f
    X = np.linalg.solve(K[d:, d:], np.column_stack([K[d:, :d], f[d:]]))
    return LinearSDE(K[:d, :d] - K[:d, d:] @ X[:, :d], f[:d] - K[:d, d:] @ X[:, d], sde.D[:d, :d])


def stationary_cov(sde: LinearSDE) -> np.ndarray:
    """S solving K S + S K^T = D (scipy.linalg.solve_continuous_lyapunov), symmetrised, shape (n, n)."""
    S = sla.solve_continuous_lyapunov(sde.K, sde.D)
    return 0.5 * (S + S.T)


def _propagators(K: np.ndarray, t: np.ndarray) -> np.ndarray:
    """expm(-K t) for each t, shape (len(t), n, n). Uses the eigendecomposition when K is diagonalisable
    and well conditioned, else scipy.linalg.expm per time."""
    t = np.atleast_1d(np.asarray(t, dtype=float))
    w, V = np.linalg.eig(K)
    if np.linalg.cond(V) < 1e8:
        Vinv = np.linalg.inv(V)
        P = (V[None, :, :] * np.exp(-np.outer(t, w))[:, None, :]) @ Vinv
        return P.real if np.isrealobj(K) else P
    return np.stack([sla.expm(-K * ti) for ti in t])


def transient_mean(sde: LinearSDE, z0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """E[z(t)] = z* + expm(-K t)(z0 - z*), shape (len(t), n)."""
    zs = stationary_mean(sde)
    P = _propagators(sde.K, t)
    return zs + np.einsum("tij,j->ti", P, np.asarray(z0, dtype=float) - zs)


def transient_cov(sde: LinearSDE, t: np.ndarray) -> np.ndarray:
    """Cov[z(t)] for a deterministic z0: S - expm(-K t) S expm(-K t)^T, shape (len(t), n, n)."""
    S = stationary_cov(sde)
    P = _propagators(sde.K, t)
    return S - P @ S @ np.swapaxes(P, 1, 2)


def sample(sde: LinearSDE, z0: np.ndarray, t: np.ndarray, seed: int) -> np.ndarray:
    """Exact samples of the SDE at times t (t[0] is the start, z(t[0]) = z0), shape (len(t), n).

    Exact for any step: each increment uses Phi = expm(-K h) and the exact conditional covariance
    S - Phi S Phi^T (S from the Lyapunov equation). Uniform steps reuse one factorisation.
    Cost O(len(t) n^2) after an O(n^3) set-up per distinct step.
    """
    t = np.asarray(t, dtype=float)
    rng = np.random.default_rng(seed)
    n = sde.K.shape[0]
    zs = stationary_mean(sde)
    S = stationary_cov(sde)
    out = np.empty((len(t), n))
    out[0] = z0
    steps = np.diff(t)
    cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    noise = rng.standard_normal((len(steps), n))
    for k, h in enumerate(steps):
        key = round(float(h), 15)
        if key not in cache:
            Phi = sla.expm(-sde.K * h)
            Q = S - Phi @ S @ Phi.T
            cache[key] = (Phi, _psd_sqrt(0.5 * (Q + Q.T)))
        Phi, L = cache[key]
        out[k + 1] = zs + Phi @ (out[k] - zs) + L @ noise[k]
    return out


def _psd_sqrt(Q: np.ndarray) -> np.ndarray:
    """A square root L with L L^T = Q for a (numerically) positive semi-definite Q."""
    w, V = np.linalg.eigh(Q)
    return V * np.sqrt(np.clip(w, 0.0, None))


def time_average_cov(sde: LinearSDE, T: float) -> np.ndarray:
    """Covariance of the time average zbar_T = (1/T) int_0^T z dt in stationarity, large-T form.

    Var(zbar_T) ~ (1/T) int_{-inf}^{inf} C(s) ds = (K^-1 S + S K^-T) / T, with C(s) = expm(-K s) S.
    For the OU process with symmetric A this is 2 kappa A^-2 / T (time in tau).
    """
    S = stationary_cov(sde)
    KiS = np.linalg.solve(sde.K, S)
    return (KiS + KiS.T) / float(T)


def sample_cov_var(sde: LinearSDE, T: float) -> np.ndarray:
    """Variance of each entry of the sample covariance of a stationary path of length T, large-T form.

    For a Gaussian process, Var(Shat_ij) ~ (1/T) int_{-inf}^{inf} [C_ii(s) C_jj(s) + C_ij(s) C_ji(s)] ds,
    with C(s) = expm(-K s) S for s >= 0 and C(-s) = C(s)^T. The integral of C(s) (x) C(s) over s >= 0 is
    (K (+) K)^-1 (S (x) S) (Kronecker sum), so the whole is exact algebra; cost O(n^6), fine for n <= 20.
    Returns an (n, n) array.
    """
    S = stationary_cov(sde)
    n = S.shape[0]
    K = sde.K
    ksum = np.kron(K, np.eye(n)) + np.kron(np.eye(n), K)
    # I4[(i,k),(j,l)] = int_0^inf C_ij(s) C_kl(s) ds with C = expm(-K s) S
    I4 = np.linalg.solve(ksum, np.kron(S, S)).reshape(n, n, n, n)  # indices i,k,j,l
    pos = np.einsum("ikjl->ijkl", I4)  # int_0^inf C_ij C_kl
    var = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            # s >= 0: C_ii C_jj + C_ij C_ji ; s < 0: C(-s) = C(s)^T gives the same entries transposed
            plus = pos[i, i, j, j] + pos[i, j, j, i]
            minus = pos[i, i, j, j] + pos[j, i, i, j]
            var[i, j] = (plus + minus) / float(T)
    return var
