"""Matrix-free propagation of x' = M x + N u(t) with piecewise-linear inputs (the noise DACs) by a Chebyshev
expansion of the exponential in M (the noisy transient of method krylov).

    iv = spectral_interval(apply_M, n)                 # [a, b] enclosing M's spectrum (Arnoldi + margins), rho
    cs = chebyshev_step(iv, p, h, rtol)                # weights of one output step of p fine steps of length h
    x1 = clenshaw(apply, cs, x0, Z)                    # Z = U omega^T: the step's inputs folded into L + 1 columns

Why not Arnoldi per noise step (expmv.py): a PWL input with K knots needs K exponentials in sequence (K = 7500 for a
TNGD step of 50 tau), each several products M v. Here every exponential in one output step of length Delta is
one polynomial in M of a fixed basis, so the K knots fold into L + 1 vectors by one GEMM and L + 1 products M v
(Clenshaw) give the exact response:

    M~ = (M - c I) / r,  c = (a + b) / 2,  r = (b - a) / 2        (spectrum of M inside [a, b])
    e^{M tau} = sum_l f_l(tau) T_l(M~),  f_l(tau) = eps_l e^{b tau} ive(l, r tau)   (eps_0 = 1, eps_l = 2;
        the generating function e^{z x} = I_0(z) + 2 sum_l I_l(z) T_l(x); ive(l, z) = I_l(z) e^{-z})
    x(Delta) = e^{M Delta} x0 + int_0^Delta e^{M (Delta - s)} N u(s) ds
             = sum_l T_l(M~) [alpha_l x0 + N z_l],   alpha_l = f_l(Delta),  z_l = sum_j omega_lj u_j,
    omega_lj = int_0^Delta f_l(Delta - s) hat_j(s) ds   (hat_j: the linear-interpolation hat of fine point j h),

u_j the inputs at the fine points (the DC input 1 and the noise samples; samples between noise knots are the
linear interpolation, so omega maps onto the knots by a sparse matrix). omega is integrated by Gauss-Legendre,
GAUSS_POINTS per piece, each fine step cut into pieces of r h_piece <= MAX_R_SUBSTEP (f_l is entire and varies
on the scale 1/r at most; one piece per fine step when the noise step resolves the fastest mode, many when the
noise enters far from a stiff part of the circuit). The degree L is the smallest with the series' tail sum_{l > L} eps_l ive(l, r Delta) rho^l <=
rtol, rho the Bernstein-ellipse parameter that reaches the farthest Ritz value (1 for a real spectrum inside
[a, b]), so the error relative to e^{b Delta} |x0| (and to the forcing) is at most rtol per output step.

The interval: ARNOLDI_STEPS of Arnoldi on M from a seeded random vector; [a, b] = [min Re theta, max Re theta]
widened by MARGIN_FAST of the width (at least the Ritz pair's residual) at the fast end (extreme Ritz values
converge from inside); the slow end is b = 0 when every Ritz value is stable, else the largest widened by
MARGIN_SLOW of the width (at least its residual). Why 0: a slow end of many closely spaced modes (an RC ladder's
diffusion) converges slowly, and an eigenvalue beyond b by a fraction e of the half-width r multiplies the
truncation error by about (1 + sqrt(2 e))^L; a stable circuit has none beyond 0. Not further: every coefficient
carries e^{b tau}, so a b > 0 of a widened, unconverged Ritz value costs e^{b Delta} in cancellation (measured:
4e-4 relative on a 300-section RC ladder with b Delta = 18).
A spectrum far from real (the farthest Ritz value beyond the ellipse that L_MAX terms cover) is refused.
Cost per output step: L + 1 products M v (L about sqrt(2 r Delta ln(1/rtol))), one GEMM of (L + 1) x K x n_u.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import scipy.linalg as sla
from scipy.special import ive

from ...errors import BadInputError

ARNOLDI_STEPS = 24
MARGIN_FAST = 0.1
MARGIN_SLOW = 1e-3
GAUSS_POINTS = 6
MAX_R_SUBSTEP = 0.25
L_MAX = 5000


class Interval(NamedTuple):
    """[a, b] enclosing M's spectrum (real parts), rho: the Bernstein parameter of the farthest Ritz value,
    applications: products M v spent."""

    a: float
    b: float
    rho: float
    applications: int


class ChebyshevStep(NamedTuple):
    """One output step: c, r (the map), alpha (L + 1,) = f_l(Delta), omega (L + 1, p + 1) the fine-point weights,
    tail: the truncation bound (relative)."""

    c: float
    r: float
    alpha: np.ndarray
    omega: np.ndarray
    tail: float

    @property
    def degree(self) -> int:
        return len(self.alpha) - 1


def spectral_interval(apply_M: Callable[[np.ndarray], np.ndarray], n: int, steps: int = ARNOLDI_STEPS,
                      seed: int = 0) -> Interval:
    """[a, b] of the module doc from ``steps`` Arnoldi steps (fewer on an invariant subspace)."""
    k = min(steps, n)
    v = np.random.default_rng(seed).standard_normal(n)
    V = np.zeros((k + 1, n))
    H = np.zeros((k + 1, k))
    V[0] = v / np.linalg.norm(v)
    apps, h_last = 0, 0.0
    for j in range(k):
        p = apply_M(V[j])
        apps += 1
        c = V[:j + 1] @ p
        p -= c @ V[:j + 1]
        c2 = V[:j + 1] @ p
        p -= c2 @ V[:j + 1]
        H[:j + 1, j] = c + c2
        h = float(np.linalg.norm(p))
        scale = float(np.abs(H[:j + 1, :j + 1]).max()) or 1.0
        if h <= 1e-13 * scale:
            k, h_last = j + 1, 0.0
            break
        H[j + 1, j] = h
        V[j + 1] = p / h
        h_last = h
    theta, Y = sla.eig(H[:k, :k])
    if not np.all(np.isfinite(theta)):
        raise BadInputError("method krylov: the state matrix has non-finite Ritz values (the circuit is singular)")
    resid = h_last * np.abs(Y[-1, :]) / np.linalg.norm(Y, axis=0)
    i_lo, i_hi = int(np.argmin(theta.real)), int(np.argmax(theta.real))
    lo, hi = float(theta.real[i_lo]), float(theta.real[i_hi])
    width = max(hi - lo, 1e-3 * max(abs(lo), abs(hi)), np.finfo(float).tiny)
    a = lo - max(MARGIN_FAST * width, float(resid[i_lo]))
    b = hi + max(MARGIN_SLOW * width, float(resid[i_hi])) if hi >= 0 else 0.0   # the slow end (module doc)
    c, r = 0.5 * (a + b), 0.5 * (b - a)
    x = (theta - c) / r
    s = np.sqrt(x.astype(complex) ** 2 - 1.0)
    rho = float(np.max(np.maximum(np.abs(x + s), np.abs(x - s))))
    return Interval(a, b, max(rho, 1.0), apps)


def _coefficients(z: np.ndarray, n_terms: int) -> np.ndarray:
    """eps_l ive(l, z) for l < n_terms (rows) at the points z (columns)."""
    ell = np.arange(n_terms)[:, None]
    out = ive(ell, np.asarray(z, dtype=float)[None, :])
    out[1:] *= 2.0
    return out


def degree(r_delta: float, rho: float, rtol: float) -> tuple[int, float]:
    """(L, tail): the smallest L with sum_{l > L} eps_l ive(l, r Delta) rho^l <= rtol (module doc)."""
    n_terms = int(min(L_MAX, 64 + 4 * np.sqrt(max(r_delta, 1.0)) * np.sqrt(-np.log(rtol) + 10) + 2 * r_delta)) + 1
    q = _coefficients(np.array([r_delta]), n_terms)[:, 0] * rho ** np.arange(n_terms, dtype=float)
    tail = np.concatenate([np.cumsum(q[::-1])[::-1][1:], [0.0]])     # tail[L] = sum_{l > L} q_l
    ok = np.flatnonzero(tail <= rtol)
    if not np.all(np.isfinite(q)) or len(ok) == 0 or ok[0] >= n_terms - 2:
        raise BadInputError(f"method krylov: the noisy transient needs more than {n_terms} Chebyshev terms (r Delta ="
                            f" {r_delta:.3g}, Ritz values off the real axis: rho = {rho:.4g}); the state matrix is"
                            " too stiff or too far from a real spectrum for the structured noisy method")
    return int(ok[0]), float(tail[ok[0]])


def chebyshev_step(iv: Interval, p: int, h: float, rtol: float) -> ChebyshevStep:
    """alpha and omega (module doc) for an output step of p fine steps of length h."""
    c, r = 0.5 * (iv.a + iv.b), 0.5 * (iv.b - iv.a)
    delta = p * h
    L, tail = degree(r * delta, iv.rho, rtol)
    ns = max(int(np.ceil(r * h / MAX_R_SUBSTEP)), 1)      # quadrature pieces per fine step
    xi, wg = np.polynomial.legendre.leggauss(GAUSS_POINTS)
    theta = ((np.arange(ns)[:, None] + 0.5 * (1.0 + xi)[None, :]) / ns).ravel()   # positions inside a fine step
    wq = np.tile(wg, ns) * (0.5 * h / ns)
    g = len(theta)
    s = (np.arange(p)[:, None] + theta[None, :]) * h      # (p, g) nodes
    tau = (delta - s).ravel()
    F = _coefficients(r * tau, L + 1) * np.exp(iv.b * tau)[None, :]        # (L + 1, p g)
    F = F.reshape(L + 1, p, g) * wq[None, None, :]
    omega = np.zeros((L + 1, p + 1))
    omega[:, :p] += F @ (1.0 - theta)
    omega[:, 1:] += F @ theta
    alpha = _coefficients(np.array([r * delta]), L + 1)[:, 0] * np.exp(iv.b * delta)
    return ChebyshevStep(c, r, alpha, omega, tail)


def clenshaw(apply: Callable[[np.ndarray, np.ndarray], np.ndarray], cs: ChebyshevStep, x0: np.ndarray,
             Z: np.ndarray) -> np.ndarray:
    """sum_l T_l(M~) (alpha_l x0 + N Z[:, l]) by Clenshaw's recurrence, one ``apply(x, u) = M x + N u`` per term:
    b_l = alpha_l x0 + N z_l + 2 M~ b_{l+1} - b_{l+2}, result alpha_0 x0 + N z_0 + M~ b_1 - b_2."""
    c, r = cs.c, cs.r
    b1 = np.zeros_like(x0)
    b2 = np.zeros_like(x0)
    for ell in range(cs.degree, 0, -1):
        mb = apply(b1, (0.5 * r) * Z[:, ell])
        b1, b2 = cs.alpha[ell] * x0 + (2.0 / r) * mb - (2.0 * c / r) * b1 - b2, b1
    mb = apply(b1, r * Z[:, 0])
    return cs.alpha[0] * x0 + mb / r - (c / r) * b1 - b2
