"""The linear engine's structured method (``method="krylov"``): the reduced model as operators, never as matrices.

    om = OperatorModel(circuit)            # MNA + index-1 partition + replayable G22 solve
    dx, y = om.apply(X, U)                 # x' = M X + N U and y = Cx X + Du U, columns at once
    plots["tran"] = tran_krylov(circuit, tran, opts)     # a LinearWaveforms (result.py), method "krylov"
    plots["op"] = op_krylov(circuit, opts)               # method "krylov-gmres"

model.build_model forms x' = M x + N u densely (X = G22^-1 [G21, B2] explicitly): for the factorised TNGD
circuit its integrator-current rows are N x N dense, which costs O(N^2 m) to form and O(N^3) to diagonalise.
Here one application of the reduction

    w2 = G22^-1 (B2 u - G21 x)                   (peel.PeelSolve: replayed peeling rounds + core LU)
    x' = C11^-1 (B1 u - G11 x - G12 w2)           (C11: diagonal or one sparse LU)
    y  = R1 x + R2 w2                              (R = saved-vector rows, split on the partition)

costs O(nnz(G_m)) = O(m N) for the factorised circuit (3 m N resistors), and gives the derivative and the
outputs from the same solve. The partition (dynamic node voltages and inductor currents, floating capacitor
islands relative to a reference node, the algebraic rest) is model.build_model's (same rules, same error
messages). The noise-free transient is the exact solution x(t) = e^{Mt} x0 + t phi1(Mt) N u by Arnoldi on the
augmented operator (expmv.affine_expmv), with its a-posteriori error estimate stated in the result
(``LinearWaveforms.krylov``, a result.KrylovRun). With noise sources (noise_mode samples) the piecewise-linear
samples are integrated exactly by ``tran_noisy``: per output step one Chebyshev polynomial in M (chebyshev.py), the
step's samples folded into its L + 1 coefficient vectors by one GEMM, so K noise steps cost one GEMM of
(L + 1) x K x n_sources and L + 1 operator applications instead of K exponentials (measured at N = 4800, m = 320,
t = 50 tau, 1648 noise steps: 56 applications against the noise-free 29; scripts/bench_factored --linear-step);
the truncation bound is stated as the KrylovRun's error estimate (max_dim: the degree L; substeps: output steps).

.op (``op_krylov``): SuperLU of the whole MNA G_m z = B u (method modal's model.dc_solution) costs 7.4 s at
N = 2.4e3, m = 160 (fill 3.7x, but dense supernodes around the m hub nodes), so the structured method solves the
reduced equilibrium M x = -N u by GMRES on the operator (relative residual DC_RTOL, restart DC_RESTART; the
residual reached is in the result's ``.dc``, a result.DcRun), then reads the outputs from the same solve. A transient without
uic starts there too.

Rule of ``method="auto"`` (engine.py): krylov when the circuit has more than KRYLOV_MIN_STATES capacitors and
inductors (the dense modal form costs O(n^3) there), with or without noise sources unless noise_mode is aggregated
(drawn by the dense model); else modal (or loop).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ...circuit import Capacitor, Circuit, Inductor, NoiseSource, Switch, Tran
from ...errors import BadInputError
from .chebyshev import chebyshev_step, clenshaw, spectral_interval
from .dense import fine_grid
from .expmv import affine_expmv
from .model import (algebraic_labels, assemble, check_programmed_switches, initial_state, island_transform, islands,
                    output_rows)
from .peel import PeelSolve, positions
from .stamp import Block
from .state_blocks import fold_state_blocks, island_blocks, state_aliased
from .result import (NGSPICE_HINT, DcRun, check_start, KrylovInfo, KrylovRun, LinearWaveforms, RunOptions, op_waveforms, output_count,
                     tran_waveforms)

KRYLOV_MIN_STATES = 500
RTOL = 1e-10
DC_RTOL = 1e-13
DC_RESTART = 200


def prefers_krylov(circuit: Circuit, noise_ok: bool = True) -> bool:
    """The auto rule (module doc): many states (noise_ok=False: and no noise source, e.g. for noise_mode
    aggregated, which only the dense model draws)."""
    n_dyn = circuit.count_of_type(Capacitor) + circuit.count_of_type(Inductor)   # counted, no bank expanded
    return n_dyn > KRYLOV_MIN_STATES and (noise_ok or not circuit.count_of_type(NoiseSource))


def _sub(A: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    return A[rows][:, cols].tocsr()


class OperatorModel:
    """The reduced model of a linear circuit as operators (module doc). Attributes: n (states), n_u (inputs),
    outputs (names), x0 (uic state), mna (its dense crossbar blocks handed to the G22 solve, which folds each signed
    crossbar into one of its arrays: ``mna.blocks`` is empty afterwards), peel (the G22 solve), noise (the
    NoiseSources)."""

    def __init__(self, circuit: Circuit, saves: list[str] | None = None, extra: list[str] = ()) -> None:
        mna = assemble(circuit, blocks=True)
        self.mna = mna
        self.noise = mna.noise
        n = mna.G.shape[0]
        dyn_nodes, ref_of = islands(mna)
        ind = np.array([mna.branches[e.name] for e in mna.inductors], dtype=int)
        dyn = np.concatenate([dyn_nodes, ind]).astype(int)
        if len(dyn) == 0:
            raise BadInputError("the circuit has no capacitor or inductor: nothing to integrate in time")
        algebraic = np.ones(n, dtype=bool)   # np.setdiff1d(arange(n), dyn) without its sort of n (1e6 at N = 1e5)
        algebraic[dyn] = False
        alg = np.flatnonzero(algebraic)
        G, B = mna.G.tocsr(), sp.csr_matrix(mna.B)
        alg_pos = positions(alg, n)
        names, R = output_rows(mna, circuit.saves if saves is None else saves, extra)
        blocks: list[Block] = []        # dense crossbar blocks of the G22 solve (algebraic rows and columns)
        state_blocks: list[Block] = []  # dense crossbar blocks of G21 (algebraic rows, state columns)
        if not ref_of:
            # crossbar blocks between algebraic nodes stay dense inside the G22 solve; any other is stamped here
            for blk in mna.blocks:
                if (alg_pos[blk.rows] >= 0).all() and (alg_pos[blk.cols] >= 0).all():
                    blocks.append(blk.relabel(alg_pos))
                else:
                    G = G + blk.csr(n)
        else:   # z = T w: v_n = w_n + w_ref(n) for island nodes (model.build_model); the blocks by island_blocks
            T = island_transform(n, ref_of)
            G, B, R = (T.T @ G @ T).tocsr(), (T.T @ B).tocsr(), (R @ T).tocsr()
            G, blocks, state_blocks = island_blocks(G, B, T, mna.blocks, alg, dyn, ref_of)
        self.G11, self.G12 = _sub(G, dyn, dyn), _sub(G, dyn, alg)
        self.G21, G22 = _sub(G, alg, dyn), _sub(G, alg, alg)
        self.B1, self.B2 = B[dyn].tocsr(), B[alg].tocsr()   # sparse: with N noise sources B has N + 1 columns
        self.R1, self.R2 = _sub(R, np.arange(R.shape[0]), dyn), _sub(R, np.arange(R.shape[0]), alg)
        labels, eq = algebraic_labels(mna, alg, ref_of)
        needed = np.zeros(len(alg), dtype=bool)   # np.union1d of the two column sets, without sorting either
        needed[self.G12.indices] = True
        needed[self.R2.indices] = True
        needed = np.flatnonzero(needed)
        # the rows of the algebraic right-hand side B2 u - G21 x that can be non-zero: the others let PeelSolve fold
        # each signed crossbar into one block (inverter and buffer outputs are exact aliases; peel.fold_aliases)
        rhs_rows = np.union1d(np.flatnonzero(np.diff(self.B2.indptr)), np.flatnonzero(np.diff(self.G21.indptr)))
        # G22 blocks read only through state aliases (an inverter of a state) join the G21 blocks on the states
        blocks, state_blocks = state_aliased(G22, self.G21, self.B2, blocks, state_blocks)
        self.state_blocks = fold_state_blocks(state_blocks)
        if self.state_blocks:
            rhs_rows = np.union1d(rhs_rows, np.concatenate([r for r, _, _ in self.state_blocks]))
        # the blocks' arrays are handed over (the fold may sum a crossbar's two signs into one of them): mna.blocks is
        # emptied, so that nothing reads a block that no longer holds its own conductances
        self.peel = (PeelSolve(G22, labels, eq, needed=needed, blocks=blocks, rhs_rows=rhs_rows, own_blocks=True)
                     if len(alg) else None)
        mna.blocks = []
        # dense crossbar blocks kept dense: those of the G22 solve and those of G21 (before folding)
        self.dense_blocks = (self.peel.dense_blocks if self.peel is not None else 0) + len(state_blocks)
        # C11 with +L for inductors (flip those rows), diagonal or one sparse LU
        self.flip = np.r_[np.ones(len(dyn_nodes)), -np.ones(len(ind))]
        Cp = sp.diags(self.flip) @ mna.C.tocsr()[dyn][:, dyn]
        diag = Cp.diagonal()
        if abs(Cp - sp.diags(diag)).max() == 0:
            self._cdiag, self._clu = diag, None
        else:
            self._cdiag, self._clu = None, spla.splu(sp.csc_matrix(Cp))
        self.n, self.n_u = len(dyn), B.shape[1]
        self.outputs = names
        self.x0 = initial_state(circuit, mna, dyn_nodes, self.csolve)
        self.dyn_index = dyn
        self.ref_index = np.array([ref_of.get(int(i), -1) for i in dyn], dtype=int)

    def csolve(self, rhs: np.ndarray) -> np.ndarray:
        """C_p^-1 rhs (C_p: C11 with the inductor rows' sign flipped, positive definite)."""
        if self._clu is None:
            return rhs / (self._cdiag if rhs.ndim == 1 else self._cdiag[:, None])
        return self._clu.solve(np.ascontiguousarray(rhs))

    def _alg(self, X: np.ndarray, U: np.ndarray) -> np.ndarray:
        rhs = self.B2 @ U - self.G21 @ X
        for rows, cols, g in self.state_blocks:     # the block entries are -g: - G21 x gains + g x
            rhs[rows] += g @ X[cols]
        return self.peel.solve(rhs) if self.peel is not None else rhs[:0]

    def apply(self, X: np.ndarray, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x', y) for states X (n,) or (n, k) and inputs U (n_u,) or (n_u, k)."""
        W2 = self._alg(X, U)
        s = self.B1 @ U - self.G11 @ X - (self.G12 @ W2 if self.peel is not None else 0.0)
        f = self.flip if X.ndim == 1 else self.flip[:, None]
        dx = self.csolve(f * s)
        y = self.R1 @ X + (self.R2 @ W2 if self.peel is not None else 0.0)
        return dx, y

    def apply_M(self, v: np.ndarray) -> np.ndarray:
        """M v (no input)."""
        return self.apply(v, np.zeros(self.n_u) if v.ndim == 1 else np.zeros((self.n_u, v.shape[1])))[0]

    def outputs_of(self, X: np.ndarray, u: np.ndarray) -> np.ndarray:
        """y = Cx X + Du u for the columns of X (k at once; u one input vector)."""
        U = np.repeat(u[:, None], X.shape[1], axis=1)
        return self.apply(X, U)[1]

    def state_of(self, z: np.ndarray) -> np.ndarray:
        """The state of an MNA solution z (as LinearModel.state_of)."""
        ref = np.where(self.ref_index >= 0, z[np.maximum(self.ref_index, 0)], 0.0)
        return z[self.dyn_index] - ref


def _refuse_noise(circuit: Circuit) -> None:
    """The noise-free paths (tran_outputs at arbitrary times) take constant inputs only."""
    srcs = circuit.of_type(NoiseSource)
    if srcs:
        raise BadInputError(f"the noise-free structured transient at arbitrary times takes constant inputs only, but"
                            f" the circuit has {len(srcs)} noise source(s) ({srcs[0].name}, ...); compare on the"
                            f" output grid (LinearEngine.run), or {NGSPICE_HINT}")


def _check_switches(om: OperatorModel, ctl_rows: slice, switches: list[Switch], u: np.ndarray) -> None:
    """Programmed switches only (model.check_programmed_switches): each control voltage independent of the state
    (probed by two random states through the operator)."""
    if not switches:
        return
    models = {s.name: m for s, m in om.mna.switches}
    rng = np.random.default_rng(0)
    X = np.column_stack([np.zeros(om.n), rng.standard_normal(om.n), rng.standard_normal(om.n)])
    Y = om.outputs_of(X, u)[ctl_rows]
    pairs = [(sw, models[sw.name]) for sw in switches]
    v = [float(Y[k, 0]) for k in range(len(switches))]
    varies = [np.abs(Y[k, 1:] - v[k]).max() > 1e-9 * max(abs(v[k]), abs(m.vt_v), 1.0) for k, (_, m) in enumerate(pairs)]
    check_programmed_switches(pairs, v, varies)


def tran_outputs(circuit: Circuit, tran: Tran, times_s: np.ndarray, saves: list[str] | None = None,
                 rtol: float = RTOL, om: OperatorModel | None = None):
    """(saves, Y (len(times), n_saves), KrylovRun): the noise-free transient at the given times (ascending, >= 0;
    e.g. the output grid, or ngspice's own time points for a cross-check). om: the circuit's OperatorModel when the
    caller has built it (with the switches' control voltages as extra outputs, as here)."""
    _refuse_noise(circuit)
    switches = circuit.of_type(Switch)
    ctl = [f"v({sw.c_pos},{sw.c_neg})" for sw in switches]
    om = om if om is not None else OperatorModel(circuit, saves, extra=ctl)
    n_saves = len(om.outputs) - len(ctl)
    u = np.ones(om.n_u)   # u = [1]: every DC value (no noise sources)
    _check_switches(om, slice(n_saves, None), switches, u)
    if tran.uic:
        x0 = om.x0
    else:
        check_start(circuit, tran)
        x0 = dc_state(om, u)[0]
    b = om.apply(np.zeros(om.n), u)[0]     # N u
    # outputs through the operator: y = R1 x + R2 G22^-1 (B2 u a - G21 x) is linear in (x, a)
    Y, info = affine_expmv(om.apply_M, b, x0, np.asarray(times_s, dtype=float), rtol=rtol,
                           observe=lambda X, a: om.apply(X, np.outer(u, a))[1][:n_saves])
    Y = Y.T
    peel = om.peel
    run = KrylovRun(info, rtol, om.n, peel.n_rounds if peel else 0, peel.core_size if peel else 0,
                    peel.nnz_per_solve if peel else 0, om.dense_blocks)
    return om.outputs[:n_saves], Y, run


def tran_krylov(circuit: Circuit, tran: Tran, opts: RunOptions, om: OperatorModel | None = None) -> LinearWaveforms:
    """The ``.tran`` by method krylov: a LinearWaveforms with method "krylov" and ``.krylov`` (a KrylovRun:
    applications, substeps, error estimate). om: the circuit's OperatorModel with the switches' controls as extra
    outputs (``operator_model``), when the caller has built it."""
    n_out = output_count(tran)
    t = np.arange(n_out + 1) * tran.step_s
    if circuit.of_type(NoiseSource):
        if opts.noise_mode != "samples":
            raise BadInputError(f"method krylov integrates the noise samples exactly (noise_mode samples); noise_mode"
                                f" {opts.noise_mode!r} needs the dense model (method modal, moderate size) or"
                                f" {NGSPICE_HINT}")
        saves, Y, run = tran_noisy(circuit, tran, om=om)
    else:
        saves, Y, run = tran_outputs(circuit, tran, t, om=om)
    return tran_waveforms(t, saves, Y, opts, "krylov", krylov=run)


def _knots(omega: np.ndarray, j0: int, p: int, q: int, n_knots: int) -> tuple[int, np.ndarray]:
    """(i0, weights on noise knots i0 ..): omega (L + 1, p + 1) on the fine points j0 .. j0 + p mapped onto the noise
    samples (fine point j sits at knot j / q, linear interpolation between knots)."""
    if q == 1:
        return j0, omega
    j = np.arange(j0, j0 + p + 1)
    idx = np.minimum(j // q, n_knots - 2)
    frac = (j - idx * q) / q
    i0 = int(idx[0])
    P = sp.coo_matrix((np.r_[1.0 - frac, frac], (np.r_[np.arange(p + 1), np.arange(p + 1)],
                                                  np.r_[idx - i0, idx + 1 - i0])),
                      shape=(p + 1, int(idx[-1]) + 2 - i0)).tocsr()
    return i0, np.asarray((P.T @ omega.T).T)


def operator_model(circuit: Circuit) -> OperatorModel:
    """The OperatorModel of a transient: every save, then the switches' control voltages as extra outputs."""
    return OperatorModel(circuit, None, extra=[f"v({sw.c_pos},{sw.c_neg})" for sw in circuit.of_type(Switch)])


def tran_noisy(circuit: Circuit, tran: Tran, rtol: float = RTOL, om: OperatorModel | None = None):
    """(saves, Y (n_out + 1, n_saves), KrylovRun): the transient with the noise sources' piecewise-linear samples
    integrated exactly (chebyshev.py: one Chebyshev polynomial in M per output step, the step's samples folded
    into its L + 1 coefficient vectors by one GEMM, Clenshaw through the operator). om: as operator_model."""
    switches = circuit.of_type(Switch)
    om = om if om is not None else operator_model(circuit)
    ctl = switches
    n_saves = len(om.outputs) - len(ctl)
    srcs = om.noise
    n_out, p, q, h = fine_grid(tran, srcs)
    S = np.column_stack([np.asarray(s.samples_v, dtype=float) for s in srcs])     # (knots, sources)
    n_knots = S.shape[0]

    def u_at(j: int) -> np.ndarray:
        """[1, samples] at fine point j."""
        i = min(j // q, n_knots - 2)
        f = (j - i * q) / q
        return np.r_[1.0, S[i] * (1.0 - f) + S[i + 1] * f]

    u0 = u_at(0)
    _check_switches(om, slice(n_saves, None), switches, u0)
    if tran.uic:
        x = om.x0
    else:
        check_start(circuit, tran)
        x = dc_state(om, u0)[0]
    iv = spectral_interval(om.apply_M, om.n)
    cs = chebyshev_step(iv, p, h, rtol)
    apply = lambda X, U: om.apply(X, U)[0]   # noqa: E731
    dc_w = cs.omega.sum(axis=1)
    Y = np.empty((n_out + 1, n_saves))
    Y[0] = om.apply(x, u0)[1][:n_saves]
    for k in range(n_out):
        i0, w = _knots(cs.omega, k * p, p, q, n_knots)
        Z = np.empty((om.n_u, cs.degree + 1))
        Z[0] = dc_w
        Z[1:] = (w @ S[i0:i0 + w.shape[1]]).T
        x = clenshaw(apply, cs, x, Z)
        Y[k + 1] = om.apply(x, u_at((k + 1) * p))[1][:n_saves]
    apps = iv.applications + n_out * (cs.degree + 2) + 1
    info = KrylovInfo(apps, n_out, cs.degree, n_out * cs.tail)
    peel = om.peel
    run = KrylovRun(info, rtol, om.n, peel.n_rounds if peel else 0, peel.core_size if peel else 0,
                    peel.nnz_per_solve if peel else 0, om.dense_blocks)
    return om.outputs[:n_saves], Y, run


def path_at_krylov(circuit: Circuit, times_s: np.ndarray, saves: list[str] | None = None) -> dict[str, np.ndarray]:
    """The exact noise-free transient at arbitrary times by method krylov (as dense.path_at, for cross-checks
    at ngspice's own time points)."""
    t = np.asarray(times_s, dtype=float)
    order = np.argsort(t, kind="stable")
    names, Y, _ = tran_outputs(circuit, circuit.analysis(Tran), t[order], saves)
    out = np.empty_like(Y)
    out[order] = Y
    return {k: out[:, i] for i, k in enumerate(names)}


def dc_state(om: OperatorModel, u: np.ndarray) -> tuple[np.ndarray, DcRun]:
    """The equilibrium state x (M x + N u = 0) by GMRES on the operator (module doc)."""
    b = om.apply(np.zeros(om.n), u)[0]                 # N u
    nb = float(np.linalg.norm(b))
    if nb == 0.0:
        return np.zeros(om.n), DcRun("gmres", DC_RTOL, 0.0, 0)
    count = [0]

    def mv(v):
        count[0] += 1
        return om.apply_M(np.asarray(v, dtype=float).ravel())

    op = spla.LinearOperator((om.n, om.n), matvec=mv, dtype=float)
    x, info = spla.gmres(op, -b, rtol=DC_RTOL, atol=0.0, restart=min(DC_RESTART, om.n), maxiter=20)
    res = float(np.linalg.norm(om.apply_M(x) + b) / nb)
    if info != 0 and res > 1e3 * DC_RTOL:
        raise BadInputError(f"the DC operating point by GMRES on the reduced circuit did not converge (relative"
                            f" residual {res:.3g} after {count[0]} products): the circuit is nearly singular; use"
                            f" method modal or {NGSPICE_HINT}")
    return x, DcRun("gmres", DC_RTOL, res, count[0])


def op_krylov(circuit: Circuit, opts: RunOptions) -> LinearWaveforms:
    """The ``.op`` by the structured method: a LinearWaveforms with method "krylov-gmres" and ``.dc`` (a DcRun)."""
    om = OperatorModel(circuit)
    u0 = np.array([1.0] + [float(s.samples_v[0]) for s in om.noise])
    x, run = dc_state(om, u0)
    y = om.apply(x, u0)[1]
    return op_waveforms(om.outputs, y, opts, "krylov-gmres", dc=run)
