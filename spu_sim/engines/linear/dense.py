"""The dense methods of the linear engine (``modal`` and ``loop``): exact time stepping of the dense model
x' = M x + N u (model.build_model; physics.md section 6).

    w = tran_dense(circuit, tran, opts)      # LinearWaveforms, method "modal" or "loop"
    w = op_dense(circuit, opts)              # the .op: G_m z = B u(0), method "dc"
    y = path_at(circuit, times_s)            # the exact noise-free or sampled path at arbitrary times

Output grid and fine grid: outputs on t_k = k step_s (result.output_count). The piecewise-linear noise samples
are integrated exactly: the method steps a common fine grid h = step_s / p = dt_s / q where step_s / dt_s = p / q
(q <= MAX_DENOMINATOR; p any integer, e.g. an output step of 7500 noise steps); output and noise steps that are
not commensurate that way are refused (``fine_grid``).
The start is the model's uic state, else the DC operating point (``start_state``). Switches must be programmed
(constant control on the right side of the threshold: model.check_programmed_switches).

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
Statistically exact at the readout times; not path-identical to any sample file. The intensities q_i and the
default seed: noise.py.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Callable, NamedTuple

import numpy as np
import scipy.linalg as sla
from scipy.signal import lfilter

from ...circuit import Circuit, NoiseSource, Switch, Tran
from ...errors import BadInputError
from .model import MAX_DENSE_STATES, LinearModel, assemble, build_model, check_programmed_switches, dc_solution, output_rows
from .noise import noise_intensity_v2_s, seed_of
from .result import NGSPICE_HINT, LinearWaveforms, check_start, RunOptions, op_waveforms, output_count, tran_waveforms
from .switched import needs_switched

COND_MAX = 1e6
MAX_DENOMINATOR = 1000
#: a step ratio this close to p/q counts as p/q (the engine's estimate refuses the others before any work)
RATIO_RTOL = 1e-9
CHUNK_ELEMENTS = 2 ** 22  # rows x states of one block of steps (complex: 64 MB)


def step_ratio(r: float) -> Fraction | None:
    """The output step / noise step ratio ``r`` as p/q with q <= MAX_DENOMINATOR (any integer p: a long output
    step over many noise steps is fine), or None when no such fraction is within RATIO_RTOL."""
    f = Fraction(r).limit_denominator(MAX_DENOMINATOR)
    return f if abs(float(f) - r) <= RATIO_RTOL * r else None


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


def fine_grid(tran: Tran, srcs: list[NoiseSource], samples: bool = True) -> tuple[int, int, int, float]:
    """n_out (output steps), p, q, fine step h: step = p h, noise dt = q h (samples=False: the output grid)."""
    n_out = output_count(tran)
    if not srcs or not samples:
        return n_out, 1, 1, tran.step_s
    dts = {s.dt_s for s in srcs}
    if len(dts) > 1:
        raise BadInputError(f"noise sources with different sample steps {sorted(dts)} s: the linear engine needs one;"
                            f" {NGSPICE_HINT}")
    dt = dts.pop()
    r = tran.step_s / dt
    f = step_ratio(r)
    if f is None:
        raise BadInputError(f"output step {tran.step_s:g} s and noise step {dt:g} s are not commensurate (ratio"
                            f" {r:.12g} is no p/q with q <= {MAX_DENOMINATOR}); choose readout.sample_dt_tau as a"
                            f" simple multiple or fraction of the noise step, or {NGSPICE_HINT}")
    p, q = f.numerator, f.denominator
    for s in srcs:
        if (len(s.samples_v) - 1) * q < n_out * p:
            raise BadInputError(f"noise source {s.name} has samples up to {(len(s.samples_v) - 1) * dt:g} s but the"
                                f" transient runs to {n_out * tran.step_s:g} s")
    return n_out, p, q, tran.step_s / p


def pwl_inputs(srcs: list[NoiseSource], q: int, dc_only: bool = False) -> InputBlock:
    """(j0, j1) -> u at fine steps j0..j1: [1, samples linearly interpolated at j / q] (dc_only: [1])."""
    if not srcs or dc_only:
        return lambda j0, j1: np.ones((j1 - j0 + 1, 1))
    n_s = min(len(s.samples_v) for s in srcs)
    S = np.column_stack([np.asarray(s.samples_v[:n_s], dtype=float) for s in srcs])
    S1 = np.hstack([np.ones((n_s, 1)), S]) if q == 1 else None   # fine grid = sample grid: u_j is row j itself

    def block(j0: int, j1: int) -> np.ndarray:
        if S1 is not None and j1 < n_s:
            return S1[j0:j1 + 1]      # a read-only view: the interpolation below gives the same rows (frac = 0)
        j = np.arange(j0, j1 + 1)
        idx = np.minimum(j // q, n_s - 2)
        frac = ((j - idx * q) / q)[:, None]
        return np.hstack([np.ones((len(j), 1)), S[idx] * (1 - frac) + S[idx + 1] * frac])

    return block


def _check_switches(model_full: LinearModel, n_saved: int) -> None:
    """Programmed switches only (model.check_programmed_switches): each control's output row (after the saved
    vectors) must not depend on the state or on a noise source."""
    v_ctl, varies = [], []
    for k, (sw, m) in enumerate(model_full.mna.switches):
        r = n_saved + k
        cx, du = model_full.Cx[r], model_full.Du[r]
        v = float(du[0])
        scale = max(abs(v), abs(m.vt_v), 1e-30)
        v_ctl.append(v)
        varies.append(np.abs(cx).max(initial=0) > 1e-9 * max(scale, 1.0)
                      or np.abs(du[1:]).max(initial=0) > 1e-12 * scale)
    check_programmed_switches(model_full.mna.switches, v_ctl, varies)


def start_state(circuit: Circuit, tran: Tran, model: LinearModel) -> np.ndarray:
    """uic: the model's initial state; otherwise the state of the DC operating point."""
    if tran.uic:
        return model.x0
    check_start(circuit, tran)
    mna = model.mna
    return model.state_of(dc_solution(mna, np.array([1.0] + [float(s.samples_v[0]) for s in mna.noise])))


def op_dense(circuit: Circuit, opts: RunOptions) -> LinearWaveforms:
    """The ``.op``: G_m z = B u(0) by one sparse LU of the whole MNA (method "dc")."""
    mna = assemble(circuit)
    u0 = np.array([1.0] + [float(s.samples_v[0]) for s in mna.noise])
    z = dc_solution(mna, u0)
    names, R = output_rows(mna, circuit.saves)
    y = R @ z
    return op_waveforms(names, y, opts, "dc")


def tran_dense(circuit: Circuit, tran: Tran, opts: RunOptions) -> LinearWaveforms:
    """The ``.tran`` by the dense model: method "modal" (opts.method auto or modal, when the eigenbasis is well
    conditioned or modal is asked for) else "loop"; noise_mode samples (exact FOH inputs on the fine grid) or
    aggregated (white noise drawn per output step)."""
    method = opts.method
    ctl = [f"v({sw.c_pos},{sw.c_neg})" for sw in circuit.of_type(Switch)]
    model = build_model(circuit, extra=ctl)
    saves = model.outputs[:len(model.outputs) - len(ctl)]
    _check_switches(model, len(saves))
    srcs = model.noise
    n_out, p, q, h = fine_grid(tran, srcs, samples=opts.noise_mode == "samples")
    x0 = start_state(circuit, tran, model)
    Cx, Du = model.Cx[:len(saves)], model.Du[:len(saves)]
    if opts.noise_mode != "samples":
        Y, used, saves = _aggregated(model, saves, Cx, Du, x0, tran.step_s, n_out, method, opts.seed,
                                     opts.noise_intensity_v2_s, circuit.optional_saves)
        return tran_waveforms(np.arange(n_out + 1) * tran.step_s, saves, Y, opts, used)
    mf = _modal_or_none(model.M, method)
    inputs = pwl_inputs(srcs, q)
    if mf is not None:
        Y = run_modal(mf, model.N, Cx, Du, x0, h, n_out * p, p, inputs)
    else:
        Y = run_loop(model.M, model.N, Cx, Du, x0, h, n_out * p, p, inputs)
    t = np.arange(n_out + 1) * tran.step_s
    return tran_waveforms(t, saves, Y, opts, "modal" if mf is not None else "loop")


def _modal_or_none(M: np.ndarray, method: str) -> Modal | None:
    """The modal form of M for method auto (when its eigenbasis is well conditioned) or modal, else None (loop)."""
    mf = modal_form(M) if method in ("auto", "modal") else None
    return mf if mf is not None and (method == "modal" or (np.isfinite(mf.cond) and mf.cond <= COND_MAX)) else None


def white_intensity_v2_s(src: NoiseSource, intensity: dict | None) -> float:
    """The aggregated mode's white-noise intensity of one source: the override ``intensity[name]``, else its law's
    white part (NoiseLaw), else the samples' low-frequency intensity (noise.noise_intensity_v2_s)."""
    given = (intensity or {}).get(src.name, None)
    if given:
        return float(given)
    if src.law is not None:
        return src.law.q_white_v2_s
    return noise_intensity_v2_s(src.samples_v, src.dt_s)


def ou_augmented(M: np.ndarray, N: np.ndarray, Nq: np.ndarray, Cx: np.ndarray, Du: np.ndarray, x0: np.ndarray,
                 srcs: list[NoiseSource], rng: np.random.Generator):
    """(M, N_dc, Nq, Cx, x0) with one state per OU part of the sources' laws appended (NoiseLaw; the 1/f
    construction): source i's value is its white part plus sum_k z_k, dz_k = -l_k z_k dt + sqrt(2 l_k var_k) dW,
    l_k = 2 pi f_k, so z_k enters the circuit through the source's input column N[:, 1 + i] (drift block M_xz) and
    the outputs through Du[:, 1 + i]; z_k(0) ~ N(0, var_k) drawn from rng (the samples start stationary too). The
    augmented system is exact: the transition of (x, z) over a step is drawn as for any white-noise input."""
    parts = [(1 + i, f, v) for i, s in enumerate(srcs) if s.law is not None
             for f, v in zip(s.law.ou_poles_hz, s.law.ou_var_v2) if v > 0]
    if not parts:
        return M, N[:, :1], Nq, Cx, x0
    col = np.array([c for c, _, _ in parts])
    lam = 2.0 * np.pi * np.array([f for _, f, _ in parts])
    var = np.array([v for _, _, v in parts])
    n, k, m = M.shape[0], len(parts), Nq.shape[1]
    if n + k > MAX_DENSE_STATES:
        raise BadInputError(f"the aggregated noise mode draws the 1/f noise as {k} OU states (one per pole and source) "
                            f"beside the circuit's {n}: {n + k} states exceed the dense model's {MAX_DENSE_STATES}; use "
                            "simulation.backend linear (the samples) or set circuit.opamp.flicker_corner_hz to 0")
    Ma = np.zeros((n + k, n + k))
    Ma[:n, :n], Ma[:n, n:], Ma[n:, n:] = M, N[:, col], -np.diag(lam)
    Nqa = np.zeros((n + k, m + k))
    Nqa[:n, :m], Nqa[n:, m:] = Nq, np.diag(np.sqrt(2.0 * lam * var))
    N_dc = np.vstack([N[:, :1], np.zeros((k, 1))])
    return Ma, N_dc, Nqa, np.hstack([Cx, Du[:, col]]), np.concatenate([x0, rng.standard_normal(k) * np.sqrt(var)])


def _aggregated(model, saves, Cx, Du, x0, h, n_out, method, seed, intensity,
                optional: list[str]) -> tuple[np.ndarray, str, list[str]]:
    """(outputs, method used, the saves kept) of noise_mode aggregated (module doc): the exact transition over each
    output step h with its noise xi_k ~ N(0, Q) drawn from a generator seeded by ``seed`` (None: noise.seed_of the
    samples); sources with an OU part in their law (1/f) get its states appended (ou_augmented). The optional saves
    (Circuit.optional_saves) that white noise reaches directly are left out (white noise gives them no value at a
    time point); any other such save is refused."""
    srcs = model.noise
    qs = np.array([white_intensity_v2_s(s, intensity) for s in srcs])
    # direct feed-through of white noise (not rounding: relative to the output's state gain); an OU part has a value
    white = 1 + np.flatnonzero(qs > 0)
    feed = np.abs(Du[:, white]).max(axis=1, initial=0) > 1e-12 * np.abs(Cx).max(axis=1, initial=0)
    drop = {v.lower() for v in optional}
    keep = [i for i, name in enumerate(saves) if not (feed[i] and name.lower() in drop)]
    saves, Cx, Du, feed = [saves[i] for i in keep], Cx[keep], Du[keep], feed[keep]
    if feed.any():
        names = [saves[i] for i in np.flatnonzero(feed)][:5]
        raise BadInputError(f"saved vector(s) {', '.join(names)} follow the noise sources directly: white noise"
                            " has no value at a time point, so the aggregated noise mode cannot give them; save"
                            " node voltages only (simulation.save_nodes), or run noise_mode samples"
                            " (simulation.backend: linear)")
    Nq = model.N[:, 1:] * np.sqrt(qs)[None, :]
    rng = np.random.default_rng(seed_of(srcs) if seed is None else seed)
    M, N_dc, Nq, Cx, x0 = ou_augmented(model.M, model.N, Nq, Cx, Du, x0, srcs, rng)
    mf = _modal_or_none(M, method)
    n = M.shape[0]
    inputs = pwl_inputs(srcs, 1, dc_only=True)
    Du_dc = Du[:, :1]
    used = "modal" if mf is not None else "loop"
    if mf is not None:
        W = modal_noise_factor(mf, Nq, h)
        w_diag = np.diag(W).copy()
        if np.abs(W - np.diag(w_diag)).max() <= 1e-12 * np.abs(w_diag).max():
            # isotropic noise into a symmetric M: the modes' noises are independent (O(n) per step)
            def noise(rows):
                return rng.standard_normal((rows, n)) * w_diag
        else:
            def noise(rows):
                return rng.standard_normal((rows, n)) @ W.T
        return run_modal(mf, N_dc, Cx, Du_dc, x0, h, n_out, 1, inputs, noise=noise), used, saves
    Lq = sqrt_psd(q_dense(M, Nq, h))
    return run_loop(M, N_dc, Cx, Du_dc, x0, h, n_out, 1, inputs,
                    noise=lambda rows: rng.standard_normal((rows, n)) @ Lq.T), used, saves


def path_at(circuit: Circuit, times_s: np.ndarray, saves: list[str] | None = None) -> dict[str, np.ndarray]:
    """The exact transient (noise_mode samples) at arbitrary times, e.g. ngspice's adaptive time points, for
    cross-checks: the state on the fine grid j h, then one exact partial step of length tau = t - j h to each
    time (modal: x(t) = V [e^{lam tau} y_j + tau phi1(lam tau) Nt u_j + tau phi2(lam tau) Nt (u(t) - u_j)]).
    Clocked and held-source circuits are refused (switched.needs_switched: compare them on the output grid)."""
    tran = circuit.analysis(Tran)
    if needs_switched(circuit):
        raise BadInputError("path_at: clocked or held-source circuits are compared on the output grid"
                            " (LinearEngine.run), not at arbitrary times")
    model = build_model(circuit, saves)
    n_out, p, q, h = fine_grid(tran, model.noise)
    n = model.M.shape[0]
    inputs = pwl_inputs(model.noise, q)
    mf = modal_form(model.M)
    if not (np.isfinite(mf.cond) and mf.cond <= COND_MAX):
        raise BadInputError(f"path_at needs a diagonalisable state matrix (cond(V) = {mf.cond:.3g})")
    X = run_modal(mf, model.N, np.eye(n), np.zeros((n, model.N.shape[1])), start_state(circuit, tran, model), h,
                  n_out * p, 1, inputs)
    t = np.asarray(times_s, dtype=float)
    j = np.clip(np.floor(t / h + 1e-9).astype(int), 0, n_out * p)
    tau = np.clip(t - j * h, 0.0, None)
    U = inputs(0, n_out * p)
    ut = np.ones((len(t), U.shape[1]))
    for i, s in enumerate(model.noise):
        ut[:, 1 + i] = np.interp(t, np.arange(len(s.samples_v)) * s.dt_s, s.samples_v)
    Nt = mf.Vinv @ model.N
    z = tau[:, None] * mf.lam[None, :]
    u0 = U[j]
    y = (np.exp(z) * (X[j] @ mf.Vinv.T) + tau[:, None] * phi1(z) * (u0 @ Nt.T)
         + tau[:, None] * phi2(z) * ((ut - u0) @ Nt.T))
    x = (y @ mf.V.T).real
    Y = x @ model.Cx.T + ut @ model.Du.T
    return {k: Y[:, i] for i, k in enumerate(model.outputs)}
