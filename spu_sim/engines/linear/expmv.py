"""Matrix-free exponential of an affine linear ODE (the Arnoldi behind method krylov): x' = M x + b (constant b), x(0) = x0, at given times.

    X, info = affine_expmv(apply_M, b, x0, times_s, rtol=1e-10)   # X (n, len(times)); info: applications, substeps

Only products M v are used (``apply_M``: (n,) -> (n,)). The constant input rides on the augmented operator
A = [[M, b / eta], [0, 0]] acting on w = [x; eta]: e^{A t} w = [e^{M t} x + t phi1(M t) b; eta], so one
exponential gives the forced response (eta scales the extra coordinate to the size of the response,
eta = |b| / |M b|, so the basis is not dominated by either part).

Arnoldi (Saad 1992, Expokit's time stepping): k steps of Arnoldi (classical Gram-Schmidt twice, so the basis is
orthonormal to rounding) give A V_k = V_k H_k + h_{k+1,k} v_{k+1} e_k^T and e^{A s} w ~ beta V_k e^{s H_k} e_1.
Its error is estimated a posteriori by err(s) = beta h_{k+1,k} |e_k^T s phi1(s H_k) e_1| (the leading term of
the error expansion; read off one exponential of the (k+1)-augmented Hessenberg matrix). The basis grows until
err over the remaining horizon H is below tol H / T (tol = rtol * beta, shared in proportion to time: the
substeps' errors add up to at most rtol |w| over the whole run T), at most k_max vectors; if it is not reached,
the substep s is halved until err(s) <= tol s / T, the outputs inside the substep are read from the same basis, and a new
basis starts at w(s). A happy breakdown (h_{k+1,k} ~ 0: the Krylov space is invariant) is exact.

Cost: per Arnoldi step one M v plus O(k n) orthogonalisation, and every CHECK_EVERY steps one exponential of the
small (k+1) x (k+1) Hessenberg matrix, run on one BLAS thread (``_expm``: with OpenBLAS' two threads a 41 x 41 expm
took 1.0 ms instead of 0.11 ms, and at d = 1000 these dominated the transient); the number of steps grows like sqrt(rho t)
(rho the spectral radius of M t) for normal M, so stiff circuits (fast op-amp poles next to a slow tau) need
many substeps: the engine picks this method only for large state counts (krylov.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.linalg as sla
from threadpoolctl import ThreadpoolController

from .result import KrylovInfo

K_MAX = 80
CHECK_EVERY = 4
BREAKDOWN = 1e-13


_POOL: list[ThreadpoolController] = []


def _expm(H: np.ndarray) -> np.ndarray:
    """e^H of a small matrix on one BLAS thread (module doc: thread start-up costs more than the work)."""
    if not _POOL:
        _POOL.append(ThreadpoolController())
    with _POOL[0].limit(limits=1, user_api="blas"):
        return sla.expm(H)


def _exp_e1(H: np.ndarray, s: float) -> np.ndarray:
    """e^{s H} e_1 (first column)."""
    return _expm(s * H)[:, 0]


def affine_expmv(apply_M: Callable[[np.ndarray], np.ndarray], b: np.ndarray, x0: np.ndarray, times: np.ndarray,
                 rtol: float = 1e-10, k_max: int = K_MAX,
                 observe: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, KrylovInfo]:
    """x(t) for every t in times (ascending, >= 0) of x' = M x + b, x(0) = x0 (module doc), as columns.

    observe: optional linear map (X (n, j), a (j,)) -> (n_obs, j) of states and input multipliers (the
    outputs Cx x + Du u a of the engine); then the result is observe's values at the times, and a substep with
    more output times than basis vectors observes the basis once instead of every time's state."""
    times = np.asarray(times, dtype=float)
    n = len(x0)
    X = np.empty((n, len(times))) if observe is None else None
    b = np.asarray(b, dtype=float)
    nb = float(np.linalg.norm(b))
    if nb > 0:
        mb = float(np.linalg.norm(apply_M(b)))
        eta = nb / mb if mb > 0 else 1.0
    else:
        eta = 1.0
    apps = 1 if nb > 0 else 0

    def A(v: np.ndarray) -> np.ndarray:
        out = np.empty(n + 1)
        out[:n] = apply_M(v[:n]) + b * (v[n] / eta)
        out[n] = 0.0
        return out

    w = np.concatenate([np.asarray(x0, dtype=float), [eta]])
    t, T = 0.0, float(times[-1]) if len(times) else 0.0

    def obs(W: np.ndarray) -> np.ndarray:    # W (n + 1, j): augmented states
        return observe(W[:n], W[n] / eta)

    def store(idx: np.ndarray, C: np.ndarray, Vk: np.ndarray) -> None:
        """States C @ Vk (rows) at the outputs idx."""
        nonlocal X
        if observe is None:
            X[:, idx] = (C @ Vk)[:, :n].T
            return
        Y = obs(Vk.T) @ C.T if len(idx) > Vk.shape[0] else obs((C @ Vk).T)
        if X is None:
            X = np.empty((Y.shape[0], len(times)))
        X[:, idx] = Y

    i_out = 0
    while i_out < len(times) and times[i_out] <= 0.0:
        i_out += 1
    if i_out:
        store(np.arange(i_out), np.ones((i_out, 1)), w[None, :])
    substeps, max_dim, err_total = 0, 0, 0.0
    while i_out < len(times):
        beta = float(np.linalg.norm(w))
        horizon = T - t
        if beta == 0.0:     # x = 0 and no input: stays 0
            store(np.arange(i_out, len(times)), np.zeros((len(times) - i_out, 1)), w[None, :])
            break
        tol = rtol * beta
        V = np.zeros((k_max + 1, n + 1))
        Hm = np.zeros((k_max + 2, k_max + 2))
        V[0] = w / beta
        k, exact, err = 0, False, np.inf
        for j in range(k_max):
            p = A(V[j])
            apps += 1
            c = V[:j + 1] @ p
            p -= c @ V[:j + 1]
            c2 = V[:j + 1] @ p
            p -= c2 @ V[:j + 1]
            Hm[:j + 1, j] = c + c2
            h = float(np.linalg.norm(p))
            k = j + 1
            scale = float(np.abs(Hm[:k, :k]).max()) or 1.0
            if h <= BREAKDOWN * scale:
                exact = True
                break
            Hm[j + 1, j] = h
            V[j + 1] = p / h
            # error estimate over the whole remaining horizon: beta |[e^{s Hbar}]_{k, 0}|, Hbar (k+1)x(k+1);
            # checked every CHECK_EVERY steps (each check is one small expm)
            if k % CHECK_EVERY == 0 or k == k_max:
                err = beta * abs(_expm(horizon * Hm[:k + 1, :k + 1])[k, 0])
                if err <= tol * horizon / T:
                    break
        Hk = Hm[:k, :k]
        if exact or err <= tol * horizon / T:
            s = horizon
            err_s = 0.0 if exact else err
        else:
            s = horizon
            while True:
                s *= 0.5
                err_s = beta * abs(_expm(s * Hm[:k + 1, :k + 1])[k, 0])
                if err_s <= tol * s / T or s < 1e-12 * horizon:
                    break
        t_end = t + s
        Vk = V[:k]
        i0 = i_out
        while i_out < len(times) and times[i_out] <= t_end * (1 + 1e-14):
            i_out += 1
        if i_out > i0:
            store(np.arange(i0, i_out), beta * np.array([_exp_e1(Hk, tt - t) for tt in times[i0:i_out]]), Vk)
        w = beta * (_exp_e1(Hk, s) @ Vk)
        w[n] = eta    # the augmented coordinate is constant (exactly)
        t = t_end
        substeps += 1
        max_dim = max(max_dim, k)
        err_total += err_s / beta
    return X, KrylovInfo(apps, substeps, max_dim, err_total)
