"""The linear engine's method lowrank: exact transients through the m x m core of a low-rank state matrix.

    plots["tran"] = tran_lowrank(circuit, tran, opts)     # a LinearWaveforms, method "lowrank" (or krylov's, below)

When the circuit states its state equation in factors (``Circuit.drift_factors``: the factorised TNGD circuit with
ideal op-amps on ideal lines, topologies/opamp_factored/linear.circuit_drift_factors),

    x' = M x + N u,   M = -(d I + U W V^T),   d one number,  U, V (N, m), W (m, m),  m << N,

every function of M acts through the m x m core C = W V^T U: with a = W V^T x (m numbers) and the input w(t) = N u,

    a' = -(d I + C) a + W V^T w,      x(t) = e^{-d t} x(0) + int_0^t e^{-d (t - s)} w(s) ds - U c(t),
    c' = a - d c,  c(0) = 0           (c(t) = int_0^t e^{-d (t - s)} a(s) ds)

(x' = -d x - U a + w, and a' = W V^T x'). So a transient costs the core (one GEMM of m^2 N), a few passes over U and
V, and work of size m; nothing N x N and no polynomial in M.

The statement is checked, not trusted (``low_rank_model``): d must be one number (to 1e-12: uniform leak and
capacitors; component tolerances or a non-uniform leak make it a diagonal, and the method then falls back to
krylov), the states must be the stated nodes, and M X must equal -(d X + U W V^T X) on random probes X through the
circuit's own operator (krylov.OperatorModel, whose assembly and peeling the engine does in any case) to PROBE_RTOL.
The mismatch found is stated in the result (``LinearWaveforms.lowrank``, a result.LowRankRun).

**Noise-free** (constant inputs w = N u): z = [a; c; 1] solves z' = Z z with Z = [[-(d I + C), 0, W V^T w],
[I, -d I, 0], [0, 0, 0]], so z(t + s) = expm(Z s) z(t): one exponential of size 2 m + 1 per distinct output step
(a singular or defective core is fine: no eigenvectors), exact to its rounding; x(t) from one GEMM with U over the
output times. A start without uic is the equilibrium x = (w - U (d I + C)^-1 W V^T w) / d (Woodbury).

**Noise sources** (noise_mode samples, each feeding one state through a gain: found by three probes of the input
columns, ``noise_gains``): the piecewise-linear samples are integrated exactly, knot by knot, with no polynomial
approximation. By superposition x = (the noise-free solution with the DC inputs) + (the response to the samples from
rest). The response's state-wise part int e^{-d (t - s)} g s_i(s) ds is a weighted sum of each source's samples
(weights from phi-functions of -d h, one GEMV per chunk of knots); the rest is -U c(t) with (a, c) driven by the
projections p_k = W V^T N s_k of the knots. In the eigenbasis of the core (C = Q diag(lam) Q^-1, required
well-conditioned: cond(Q) <= COND_MAX, else krylov) each mode j is a 2-state system [[mu_j, 0], [1, -d]]
(mu_j = -(d + lam_j)) whose exact first-order-hold step over h (a 4 x 4 exponential per mode) gives, for knot l of
an output step of p knots, closed-form weights (powers e^{mu h n}, e^{-d h n} and the geometric sum
expm1(-lam h n) / expm1(-lam h): no cancellation at lam = 0). Per chunk of knots: one GEMM (chunk x sources) x
(sources x m) for the projections, O(m) per knot for the weights, one GEMV for the state-wise part. The samples are
read chunk by chunk (``chunk_knots``; default about CHUNK_BYTES of samples), so apart from the samples themselves the
memory is O(chunk N + m N). Cost per knot: 2 m N (the projection) + 2 N + O(m): the projection is the GEMM; the
krylov method's Chebyshev fold costs 2 (L + 1) N per knot with its degree L (tens), plus L + 1 operator
applications per output step.

Needs the output step to be a multiple of the noise step (the knots on the output grid; q = 1 in dense.fine_grid),
no switches, noise_mode samples; any of these missing, or the check failing, ``method="auto"`` runs krylov (with the
same OperatorModel) and a forced ``method="lowrank"`` is refused naming the reason. Rule of ``method="auto"``
(engine.tran_method): lowrank when the circuit states its factors and has more than krylov.KRYLOV_MIN_STATES states
(``prefers_lowrank``); smaller circuits keep the dense modal method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy.linalg.blas import dgemm
from threadpoolctl import threadpool_limits

from ...circuit import Circuit, DriftFactors, NoiseSource, SampleColumn, Switch, Tran
from ...errors import BadInputError
from .dense import fine_grid
from .krylov import OperatorModel, operator_model, prefers_krylov, tran_krylov
from .result import NGSPICE_HINT, LinearWaveforms, check_start, LowRankRun, RunOptions, output_count, tran_waveforms

PROBE_RTOL = 1e-9        # stated factors against the operator on random probes (rounding: about 1e-15)
UNIFORM_RTOL = 1e-12     # d_per_s counts as one number
COND_MAX = 1e6           # the core's eigenbasis, for noisy runs
CHUNK_BYTES = 64e6       # samples held at once by default (the GEMM per chunk stays efficient at 80 rows of 1e5)
EPS = np.finfo(float).eps
WEIGHT_RTOL = 1e-12      # the knot weights' compression: largest column residual, relative
COMPRESS_WEIGHTS = True  # fold the knots through the compressed weights (False: every knot's projection, 2 m N each)


@dataclass
class LowRank:
    """M = -(d I + U W VT) checked against a circuit's operator (module doc); C = W VT U the m x m core."""

    d: float
    U: np.ndarray
    W: np.ndarray | None
    VT: np.ndarray
    C: np.ndarray
    mismatch: float

    @property
    def m(self) -> int:
        return self.U.shape[1]

    def project(self, X: np.ndarray) -> np.ndarray:
        """W VT X."""
        P = self.VT @ X
        return P if self.W is None else self.W @ P


def applicable(circuit: Circuit, noise_mode: str) -> bool:
    """The cheap part of the rule (engine.tran_method): factors stated, noise_mode samples, no switch."""
    return circuit.drift_factors is not None and noise_mode == "samples" and not circuit.of_type(Switch)


def prefers_lowrank(circuit: Circuit, noise_mode: str) -> bool:
    """The auto rule: applicable, and as many states as make auto leave the dense model (krylov.prefers_krylov;
    below that the dense modal method costs little and is the cross-checked reference)."""
    return applicable(circuit, noise_mode) and prefers_krylov(circuit)


def low_rank_model(circuit: Circuit, om: OperatorModel) -> LowRank | str:
    """The stated factors in the operator's state order, checked (module doc); or the reason they do not apply."""
    if circuit.drift_factors is None:
        return "the circuit states no factors of its state matrix (Circuit.drift_factors)"
    if circuit.of_type(Switch):
        return "the circuit has switches"
    f: DriftFactors = circuit.drift_factors()
    d_all = np.asarray(f.d_per_s, dtype=float)
    d = float(np.mean(d_all))
    if np.ptp(d_all) > UNIFORM_RTOL * max(abs(d), np.finfo(float).tiny):
        return (f"the diagonal of the state matrix is not one number (relative spread {np.ptp(d_all) / abs(d):.3g}:"
                " non-uniform leak or capacitors)")
    if om.n != len(f.nodes) or (om.ref_index >= 0).any():
        return f"the circuit has {om.n} states, not the {len(f.nodes)} stated node voltages"
    index = om.mna.nodes.get
    stated = np.fromiter((index(nd, -1) for nd in f.nodes), dtype=np.int64, count=len(f.nodes))
    if (stated < 0).any():
        return f"stated node {f.nodes[int(np.argmax(stated < 0))]!r} is not in the circuit"
    dyn = np.asarray(om.dyn_index, dtype=np.int64)
    pos = np.full(max(int(dyn.max(initial=-1)), int(stated.max(initial=-1))) + 1, -1, dtype=np.int64)
    pos[dyn] = np.arange(len(dyn))
    order = pos[stated]                                       # state k of the operator = stated node inv[k]
    if (order < 0).any():
        return "a stated node is not a state of the circuit"
    if np.array_equal(order, np.arange(om.n)):
        U, VT = f.U, f.VT
    else:
        inv = np.empty_like(order)
        inv[order] = np.arange(om.n)
        U, VT = f.U[inv], f.VT[:, inv]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((om.n, 2))
    MX = om.apply_M(X)
    P = VT @ X
    hat = -(d * X + U @ (P if f.W is None else f.W @ P))
    scale = float(np.linalg.norm(MX))
    mismatch = float(np.linalg.norm(MX - hat)) / scale if scale > 0 else float(np.linalg.norm(hat))
    if not mismatch <= PROBE_RTOL:
        return f"the stated factors differ from the circuit's operator by {mismatch:.3g} (relative, > {PROBE_RTOL:g})"
    core = VT @ U
    C = core if f.W is None else f.W @ core
    return LowRank(d, U, f.W, VT, C, mismatch)


def phi1(z: np.ndarray) -> np.ndarray:
    """(e^z - 1) / z, 1 at z = 0 (real or complex; expm1 keeps it exact near 0)."""
    z = np.asarray(z)
    out = np.ones_like(z, dtype=np.result_type(z, float))
    nz = z != 0
    out[nz] = np.expm1(z[nz]) / z[nz]
    return out


def _augmented(lr: LowRank, w: np.ndarray) -> np.ndarray:
    """Z of the module doc for the constant input w."""
    m = lr.m
    Z = np.zeros((2 * m + 1, 2 * m + 1))
    Z[:m, :m] = -lr.C
    Z[:m, :m][np.diag_indices(m)] -= lr.d
    Z[:m, -1] = lr.project(w)
    Z[m:2 * m, :m] = np.eye(m)
    Z[m:2 * m, m:2 * m] = -lr.d * np.eye(m)
    return Z


@dataclass
class CoreModes:
    """C = Q diag(lam) Q^-1 (np.linalg.eig; real when the spectrum is), Qi = Q^-1, cond = cond(Q)."""

    lam: np.ndarray
    Q: np.ndarray
    Qi: np.ndarray
    cond: float


def core_modes(lr: LowRank) -> CoreModes | None:
    """The core's eigenbasis, or None when it is ill-conditioned (cond(Q) > COND_MAX: defective or strongly
    non-normal core)."""
    with threadpool_limits(limits=1):      # m x m LAPACK: OpenBLAS' two threads made eig 20x slower (m = 320)
        lam, Q = np.linalg.eig(lr.C)
        if np.iscomplexobj(lam) and not np.any(lam.imag):
            lam, Q = lam.real, Q.real
        cond = float(np.linalg.cond(Q)) if lr.m else 1.0
        if not cond <= COND_MAX:
            return None
        return CoreModes(lam, Q, np.linalg.inv(Q), cond)


def noise_free_path(lr: LowRank, x0: np.ndarray, w: np.ndarray, times_s: np.ndarray,
                    modes: CoreModes | None = None) -> tuple[np.ndarray, int]:
    """(X (n, len(times)), exponentials): x(t) for x' = M x + w from x0 at the ascending times >= 0 (module doc).
    With the core's modes each mode j is the 3-state system [alpha_j; gamma_j; 1]' = [[mu_j, 0, beta_j], [1, -d, 0],
    [0, 0, 0]] (a batch of 3 x 3 exponentials per distinct step); without, one exponential of size 2 m + 1."""
    m = lr.m
    if modes is not None:
        a, beta = modes.Qi @ lr.project(x0), modes.Qi @ lr.project(w)
        Z = np.zeros((m, 3, 3), dtype=modes.lam.dtype)
        Z[:, 0, 0] = -(lr.d + modes.lam)
        Z[:, 0, 2] = beta
        Z[:, 1, 0] = 1.0
        Z[:, 1, 1] = -lr.d
        z = np.stack([a, np.zeros_like(a), np.ones_like(a)], axis=1)[:, :, None]    # (m, 3, 1)
    else:
        Z = _augmented(lr, w)
        z = np.r_[lr.project(x0), np.zeros(m), 1.0]
    cache: dict[float, np.ndarray] = {}
    Cs = np.empty((m, len(times_s)), dtype=Z.dtype)
    t_prev = 0.0
    for k, t in enumerate(times_s):
        s = float(t) - t_prev
        if s > 0:
            key = round(s, 11 - int(np.floor(np.log10(s))))   # 12 digits: grid steps that differ by rounding
            E = cache.get(key)
            if E is None:
                with threadpool_limits(limits=1):
                    E = cache[key] = sla.expm(Z * s)
            z = E @ z
            t_prev = float(t)
        Cs[:, k] = z[:, 1, 0] if modes is not None else z[m:2 * m]
    if modes is not None:
        Cs = modes.Q @ Cs
        Cs = Cs.real if np.iscomplexobj(Cs) else Cs
    t = np.asarray(times_s, dtype=float)
    X = np.outer(x0, np.exp(-lr.d * t)) + np.outer(w, t * phi1(-lr.d * t)) - lr.U @ Cs
    return X, len(cache)


def equilibrium(lr: LowRank, w: np.ndarray) -> np.ndarray | None:
    """x with M x + w = 0 (Woodbury through the core), or None when d = 0 or d I + C is singular."""
    if lr.d <= 0:
        return None
    K = lr.C + lr.d * np.eye(lr.m)
    try:
        y = np.linalg.solve(K, lr.project(w))
    except np.linalg.LinAlgError:
        return None
    return (w - lr.U @ y) / lr.d


def noise_gains(om: OperatorModel) -> tuple[np.ndarray, np.ndarray] | str:
    """(source of each state (-1: none), gain g): the noise input columns N_n = [g_i at (i, source_i)], found by
    three random probes of the operator's input columns 1.. (each state fed by at most one source), or the reason
    they are not of that form."""
    n_src = om.n_u - 1
    rng = np.random.default_rng(1)
    R = rng.uniform(1.0, 2.0, size=(n_src, 3)) * rng.choice([-1.0, 1.0], size=(n_src, 3))
    Uin = np.vstack([np.zeros((1, 3)), R])
    Y = om.apply(np.zeros((om.n, 3)), Uin)[0]
    fed = Y[:, 0] != 0
    src = np.full(om.n, -1)
    if fed.any():
        ratio = R[:, 0] / R[:, 1]
        order = np.argsort(ratio)
        r_sorted = ratio[order]
        want = Y[fed, 0] / Y[fed, 1]
        at = np.clip(np.searchsorted(r_sorted, want), 1, n_src - 1) if n_src > 1 else np.zeros(fed.sum(), int)
        lo, hi = order[at - 1] if n_src > 1 else order[at], order[at]
        src[fed] = np.where(np.abs(ratio[lo] - want) < np.abs(ratio[hi] - want), lo, hi)
    g = np.zeros(om.n)
    g[fed] = Y[fed, 0] / R[src[fed], 0]
    pred = np.zeros_like(Y)
    pred[fed] = g[fed, None] * R[src[fed]]
    err = np.abs(Y - pred).max()
    if not err <= 1e-12 * max(np.abs(Y).max(), np.finfo(float).tiny):
        return "the noise sources are not one per state (each feeding its own state through a gain)"
    return src, g


class SampleRows:
    """Rows k0:k1 of the (knots, sources) sample matrix, read in row order: from the generator of a streamed
    SampleBlock whose columns the sources' samples are (a cursor: each request starts at or after the previous one's
    last row, else the stream restarts), from the one array every source's samples are columns of (what noise_dacs
    builds), else stacked per request."""

    def __init__(self, srcs: list[NoiseSource], chunk: int) -> None:
        self.srcs = srcs
        self.knots = len(srcs[0].samples_v)
        self.block = self._common_block(srcs)
        self.base = None if self.block is not None else self._common_base(srcs)
        self.chunk = chunk
        self._it, self._buf, self._b0 = None, np.zeros((0, len(srcs))), 0

    @property
    def streamed(self) -> bool:
        return self.block is not None

    @staticmethod
    def _common_block(srcs):
        b = srcs[0].samples_v
        if not isinstance(b, SampleColumn) or b.block.shape[1] != len(srcs):
            return None
        block = b.block
        ok = all(isinstance(s.samples_v, SampleColumn) and s.samples_v.block is block and s.samples_v.index == i
                 for i, s in enumerate(srcs))
        return block if ok else None

    @staticmethod
    def _common_base(srcs):
        base = srcs[0].samples_v.base if isinstance(srcs[0].samples_v, np.ndarray) else None
        if not isinstance(base, np.ndarray) or base.ndim != 2 or base.shape[1] != len(srcs) or not base.flags.c_contiguous:
            return None
        ptr, step = base.__array_interface__["data"][0], base.strides[1]
        for i, s in enumerate(srcs):
            v = s.samples_v
            if (not isinstance(v, np.ndarray) or v.base is not base or v.shape != (base.shape[0],)
                    or v.strides != (base.strides[0],) or v.__array_interface__["data"][0] != ptr + i * step):
                return None
        return base

    def close(self) -> None:
        """Ends the stream (its producer thread and buffers: parts/noise_dacs.noise_rows) before it is collected."""
        if self._it is not None:
            self._it.close()
            self._it, self._buf = None, np.zeros((0, len(self.srcs)))

    def rows(self, k0: int, k1: int) -> np.ndarray:
        if self.block is not None:
            return self._stream_rows(k0, k1)
        if self.base is not None:
            return self.base[k0:k1]
        return np.column_stack([np.asarray(s.samples_v[k0:k1], dtype=float) for s in self.srcs])

    def _stream_rows(self, k0: int, k1: int) -> np.ndarray:
        if self._it is None or k0 < self._b0:
            self.close()
            self._it = self.block.chunks(self.chunk)
            self._buf, self._b0 = np.zeros((0, len(self.srcs))), 0
        while self._b0 + len(self._buf) < min(k1, self.knots):
            k, b = next(self._it)
            keep = self._buf[max(k0 - self._b0, 0):]
            self._b0 = k - len(keep)
            self._buf = np.vstack([keep, b]) if len(keep) else b
        return self._buf[k0 - self._b0:k1 - self._b0]


def _mode_steps(lr: LowRank, lam: np.ndarray, h: float):
    """Per mode j the exact first-order-hold step over h of [alpha; gamma]' = [[mu_j, 0], [1, -d]] [alpha; gamma] +
    [p; 0]: (eps_j, g0 (2, m), g1 (2, m)), and the scalar rate -d's (g0s, g1s)."""
    m = len(lam)
    A = np.zeros((m, 4, 4), dtype=lam.dtype)
    A[:, 0, 0] = -(lr.d + lam) * h
    A[:, 1, 0] = h
    A[:, 1, 1] = -lr.d * h
    A[:, 0, 2] = h
    A[:, 2, 3] = 1.0
    with threadpool_limits(limits=1):
        R = sla.expm(A)
        S = sla.expm(np.array([[-lr.d * h, h, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    F1, F2 = R[:, :2, 2].T, R[:, :2, 3].T
    return R[:, 1, 0], F1 - F2, F2, S[0, 1] - S[0, 2], S[0, 2]


def _powers(lr: LowRank, lam: np.ndarray, h: float, n: np.ndarray):
    """(e^{mu h n} (len(n), m), e^{-d h n} (len(n),), s_n (len(n), m)) with s_n = sum_{k < n} e^{mu h k} e^{-d h (n-1-k)}
    = e^{-d h (n - 1)} expm1(-lam h n) / expm1(-lam h) (n at lam = 0; 0 at n = 0)."""
    nn = n[:, None].astype(float)
    rho_n = np.exp(-(lr.d + lam)[None, :] * h * nn)
    sig_n = np.exp(-lr.d * h * n.astype(float))
    z = -lam * h
    den = np.expm1(z)
    geo = np.where(den != 0, np.expm1(z[None, :] * nn) / np.where(den != 0, den, 1.0)[None, :], nn)
    s_n = np.exp(-lr.d * h * np.maximum(nn - 1.0, 0.0)) * geo
    return rho_n, sig_n, s_n


def knot_weights(lr: LowRank, lam: np.ndarray, h: float, p: int, rows_per_block: int = 4096) -> tuple[np.ndarray, ...]:
    """(Wt (p + 1, 2 m + 1), eps): the weight of knot l of an output step of p pieces on the step's end value of each
    mode's alpha (columns :m), gamma (m:2m) and of the state-wise scalar rate -d (last column); the same for every
    output step (module doc). Computed in blocks of rows (the temporaries stay small)."""
    eps, g0, g1, g0s, g1s = _mode_steps(lr, lam, h)
    m = lr.m
    Wt = np.empty((p + 1, 2 * m + 1), dtype=np.result_type(lam, float))
    for l0 in range(0, p + 1, rows_per_block):
        ell = np.arange(l0, min(l0 + rows_per_block, p + 1))
        a_on, b_on = ell <= p - 1, ell >= 1          # knot l starts piece l (g0), ends piece l - 1 (g1)
        nA, nB = np.maximum(p - 1 - ell, 0), p - ell
        rA, sA, cA = _powers(lr, lam, h, nA)
        rB, sB, cB = _powers(lr, lam, h, nB)
        blk = Wt[ell[0]:ell[-1] + 1]
        blk[:, :m] = a_on[:, None] * rA * g0[0] + b_on[:, None] * rB * g1[0]
        blk[:, m:2 * m] = (a_on[:, None] * (eps * cA * g0[0] + sA[:, None] * g0[1])
                           + b_on[:, None] * (eps * cB * g1[0] + sB[:, None] * g1[1]))
        blk[:, 2 * m] = a_on * sA * g0s + b_on * sB * g1s
    return Wt, eps


def compress_weights(Wt: np.ndarray, tol: float = WEIGHT_RTOL) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(Qw (p + 1, r), Cw (r, 2 m + 1), residual) with Wt = Qw Cw + E, Qw orthonormal, every column of E below tol of
    its column of Wt (residual: the largest such ratio, computed exactly); the rank r doubles from 16 (a randomised
    range finder on the column-normalised Wt) until it holds. None when it needs half the columns or more (the
    projections are then taken knot by knot). The weights are exponentials in l at the modes' rates, so their
    numerical rank grows like the logarithm of the rates' spread, not with m."""
    n_col = Wt.shape[1]
    norms = np.linalg.norm(Wt, axis=0)
    norms[norms == 0] = 1.0
    rng = np.random.default_rng(2)
    r = min(16, n_col)
    while 2 * r <= n_col:
        with threadpool_limits(limits=1):
            Y = Wt @ (rng.standard_normal((n_col, r)) / norms[:, None])
            Qw = np.linalg.qr(Y)[0]
            Cw = Qw.conj().T @ Wt
            res = float((np.linalg.norm(Wt - Qw @ Cw, axis=0) / norms).max())
        if res <= tol:
            return Qw, Cw, res
        r *= 2
    return None


def _accumulate(F: np.ndarray, A: np.ndarray, S: np.ndarray) -> None:
    """F += A^T S in place for real C-ordered F (r, n), A (c, r) and S (c, n): one dgemm with beta = 1 (as F^T +=
    S^T A in Fortran order, no copy of S and no temporary of F's size; the sum and the product in one pass)."""
    if not (F.flags.c_contiguous and S.flags.c_contiguous):
        F += A.T @ S
        return
    out = dgemm(1.0, S.T, A.T, 1.0, F.T, trans_b=1, overwrite_c=1)
    if not np.shares_memory(out, F):        # f2py copied F (it does not for a C-ordered float64 F): keep the sum
        F[...] = out.T


def _real_matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A @ B for a complex A and a large real B without a complex copy of B."""
    if np.iscomplexobj(A):
        return A.real @ B + 1j * (A.imag @ B)
    return A @ B


def noise_response(lr: LowRank, modes: CoreModes, src: np.ndarray, g: np.ndarray, rows: SampleRows, n_out: int,
                   p: int, h: float, chunk: int, knot_rows: np.ndarray | None = None,
                   compress: bool | None = None) -> tuple[np.ndarray, int, float]:
    """(X (n, n_out + 1), rank r of the weights or 0 when taken knot by knot, their truncation residual): the states
    at the output times t_k = k p h driven from rest by the sample rows (knot j at j h, linear in between): module
    doc. knot_rows (n_out + 1, sources), when given, receives the samples at the output times (read on the way: the
    rows are read once, in order).

    With the weights compressed (compress_weights: W_t = Q_w C_w) each chunk of knots is folded into r vectors,
    F += Q_w[chunk]^T S (one dgemm with beta = 1 per real part of Q_w, _accumulate; 2 r N per knot; the gains g scale F's columns once per output step), and each
    output step ends with (F g) V^T (r m N once): the projections of every knot are never formed. Otherwise each chunk's projections (S g) V^T (2 m N per knot) meet
    the weights directly."""
    n, m = lr.U.shape[0], lr.m
    lam, Q = modes.lam, modes.Q
    T = modes.Qi if lr.W is None else modes.Qi @ lr.W    # modal coordinates of W VT
    fed = src >= 0
    n_src = len(rows.srcs)
    direct = bool(fed.all()) and np.array_equal(src, np.arange(n_src))   # source i feeds state i (noise_dacs' order)
    Wt, eps = knot_weights(lr, lam, h, p)
    packed = compress_weights(Wt) if (COMPRESS_WEIGHTS if compress is None else compress) else None
    rank, residual = (0, 0.0) if packed is None else (packed[0].shape[1], packed[2])
    rho_p, sig_p, s_p = _powers(lr, lam, h, np.array([p]))
    if packed is not None:                                # the weights' real and imaginary parts, C-ordered
        Qw_parts = [np.ascontiguousarray(packed[0].real)] + \
            ([np.ascontiguousarray(packed[0].imag)] if np.iscomplexobj(packed[0]) else [])
    alpha = np.zeros(m, dtype=lam.dtype)
    gamma = np.zeros(m, dtype=lam.dtype)
    xi = np.zeros(n)
    X = np.zeros((n, n_out + 1))
    for k in range(n_out):
        acc = np.zeros(2 * m + 1, dtype=Wt.dtype)
        xi_add = np.zeros(n)
        F_parts = [] if packed is None else [np.zeros((rank, n)) for _ in Qw_parts]
        for l0 in range(0, p + 1, chunk):
            l1 = min(l0 + chunk, p + 1)
            S = rows.rows(k * p + l0, k * p + l1)
            if knot_rows is not None:
                if l0 == 0:
                    knot_rows[k] = S[0]
                if l1 == p + 1:
                    knot_rows[k + 1] = S[-1]
            if packed is not None:                         # the gains g after the fold (one pass over F, not S)
                Ss = S if direct else S[:, src]
                for Fp, Qp in zip(F_parts, Qw_parts):
                    _accumulate(Fp, Qp[l0:l1], Ss)
                continue
            Sx = S * g if direct else S[:, src] * g        # (chunk, n): the knots' inputs N_n s, state-wise
            Pi = (Sx @ lr.VT.T) @ T.T                      # (chunk, m): their projections W VT N_n s, modal
            w = Wt[l0:l1]
            acc[:m] += np.einsum("lm,lm->m", w[:, :m], Pi)
            acc[m:2 * m] += np.einsum("lm,lm->m", w[:, m:2 * m], Pi)
            xi_add += (w[:, 2 * m] @ Sx).real
        if packed is not None:
            Cw = packed[1]
            F = F_parts[0] if len(F_parts) == 1 else F_parts[0] + 1j * F_parts[1]
            F *= g                                           # (r, n): the folded inputs N_n s, state-wise
            P = _real_matmul(F, lr.VT.T) @ T.T               # (r, m): the folded inputs' modal projections
            acc[:m] = np.einsum("qj,qj->j", Cw[:, :m], P)
            acc[m:2 * m] = np.einsum("qj,qj->j", Cw[:, m:2 * m], P)
            xi_add = Cw[:, 2 * m] @ F
        gamma = eps * s_p[0] * alpha + sig_p[0] * gamma + acc[m:2 * m]
        alpha = rho_p[0] * alpha + acc[:m]
        xi = sig_p[0] * xi + (xi_add.real if np.iscomplexobj(xi_add) else xi_add)
        c = Q @ gamma
        X[:, k + 1] = xi - lr.U @ (c.real if np.iscomplexobj(c) else c)
    return X, rank, residual


def _outputs(om: OperatorModel, X: np.ndarray, U_in: np.ndarray, n_saves: int) -> tuple[np.ndarray, int]:
    """(Y (columns, n_saves), applications): the saved vectors of the states X (n, k) with inputs U_in (n_u, k); the
    states' own rows alone when no saved vector reads an algebraic unknown."""
    if om.peel is None or om.R2.nnz == 0:
        return (om.R1 @ X)[:n_saves].T, 0
    return om.apply(X, U_in)[1][:n_saves].T, 1


def tran_lowrank(circuit: Circuit, tran: Tran, opts: RunOptions) -> LinearWaveforms:
    """The ``.tran`` by method lowrank (module doc): a LinearWaveforms with method "lowrank" and ``.lowrank`` (a
    LowRankRun); under method auto a circuit the method does not apply to runs krylov on the same OperatorModel."""
    om = operator_model(circuit)

    def fallback(reason: str) -> LinearWaveforms:
        if opts.method == "lowrank":
            raise BadInputError(f"method lowrank: {reason}; use method krylov (or auto), or {NGSPICE_HINT}")
        return tran_krylov(circuit, tran, opts, om=om)

    if opts.noise_mode != "samples" and circuit.of_type(NoiseSource):
        return fallback(f"noise_mode {opts.noise_mode} needs the dense model")
    lr = low_rank_model(circuit, om)
    if isinstance(lr, str):
        return fallback(lr)
    n_out = output_count(tran)
    t = np.arange(n_out + 1) * tran.step_s
    srcs = om.noise
    n_saves = len(om.outputs)
    apps = 1
    if srcs:
        n_out, p, q, h = fine_grid(tran, srcs)
        if q != 1:
            return fallback("the output step is not a multiple of the noise step")
        gains = noise_gains(om)
        apps += 1
        if isinstance(gains, str):
            return fallback(gains)
        chunk = opts.chunk_knots or max(1, int(CHUNK_BYTES / (8 * len(srcs))))
        chunk = min(chunk, p + 1)
        rows = SampleRows(srcs, chunk)
        U_dc = np.zeros(om.n_u)
        U_dc[0] = 1.0
        u0 = np.r_[1.0, rows.rows(0, 1)[0]]
    else:
        U_dc = u0 = np.ones(om.n_u)
    w_dc = om.apply(np.zeros(om.n), U_dc)[0]
    apps += 1
    if tran.uic:
        x0 = om.x0
    else:
        check_start(circuit, tran)
        w0 = om.apply(np.zeros(om.n), u0)[0] if srcs else w_dc
        x0 = equilibrium(lr, w0)
        if x0 is None:
            return fallback("the circuit has no unique equilibrium through the core (d = 0 or d I + C singular)")
    modes = core_modes(lr)
    if srcs and modes is None:
        return fallback(f"the core's eigenbasis is ill-conditioned (cond > {COND_MAX:g}): the noise needs its modes")
    X, n_exp = noise_free_path(lr, x0, w_dc, t, modes)
    cond = None if modes is None else modes.cond
    w_rank, w_res = 0, 0.0
    U_in = np.repeat(u0[:, None], n_out + 1, axis=1)
    if srcs:
        reads_inputs = om.peel is not None and om.R2.nnz > 0       # a saved vector reads the inputs directly
        knot_rows = np.zeros((n_out + 1, len(srcs))) if reads_inputs else None
        try:
            Xn, w_rank, w_res = noise_response(lr, modes, *gains, rows, n_out, p, h, chunk, knot_rows)
        finally:
            rows.close()
        X += Xn
        if reads_inputs:
            U_in[1:] = knot_rows.T
    Y, a = _outputs(om, X, U_in, n_saves)
    apps += a
    # the expm's rounding grows with the norm of its argument (scaling and squaring); the factors' mismatch scales with
    # the largest rate times the run
    rate = abs(lr.d) + float(np.abs(lr.C).sum(axis=1).max()) if lr.m else abs(lr.d)
    est = lr.mismatch * max(1.0, rate * tran.stop_s) + 1e3 * EPS * max(1.0, rate * tran.step_s) * (cond or 1.0)
    if srcs:   # the weights' truncation: each mode's noise term off by at most that share of its weights' norm
        est += w_res * (cond or 1.0) * np.sqrt(p + 1)
    run = LowRankRun(om.n, lr.m, lr.d, lr.mismatch, est, apps, n_exp, rows.knots if srcs else 0,
                     chunk if srcs else 0, cond, w_rank if srcs else 0, w_res if srcs else 0.0)
    return tran_waveforms(t, om.outputs[:n_saves], Y, opts, "lowrank", lowrank=run)
