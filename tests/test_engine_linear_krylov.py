"""The linear engine's structured method (``method="krylov"``: engines/linear/krylov.py, peel.py,
expmv.py) against the dense modal method on the same Circuit and against ngspice.

Tolerances: the Arnoldi exponential stops when its a-posteriori estimate is below rtol = 1e-10 of |[x; eta]|
over the whole run (the estimate is the leading term of the error series, so it is checked, with a factor 100
of slack for that, at 1e-8 of the largest output); the dense modal form is exact to cond(V) eps (< 1e-6 relative
by its own rule, measured far smaller). Against ngspice the path difference is ngspice's truncation error: it
must be small at reltol 1e-4 and shrink as reltol tightens (tests/test_engine_linear.py's rule).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from spu_sim.circuit import Op, Tran
from spu_sim.engines import get_engine
from spu_sim.engines.linear import LinearEngine, krylov
from spu_sim.engines.linear.krylov import OperatorModel, path_at_krylov
from spu_sim.engines.linear.model import build_model
from spu_sim.engines.linear.peel import PeelSolve
from spu_sim.engines.linear.stamp import Block
from spu_sim.errors import BadInputError
from spu_sim.pipeline import build_circuit, prepare


def factored_circuit(n, m, *, circuit=None, kappa=0.0, t_stop_tau=5.0, step_tau=0.25, seed=0, analyses=("tran",),
                     noise_dt_tau=None):
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((m, n)) / np.sqrt(n)
    B = rng.standard_normal((m, m))
    H = B @ B.T / m + 0.1 * np.eye(m)
    cfg = {"problem": {"factors": {"J": J.tolist(), "H": H.tolist(), "damping": 0.3},
                       "vector": rng.standard_normal(n).tolist(), "kappa": kappa,
                       "x0": (0.5 * rng.standard_normal(n)).tolist()},
           "circuit": {"topology": "opamp_factored", "integrator": {"r_max_ohm": 1e10, "prune_below_relative": 1e-5},
                       **(circuit or {})},
           "simulation": {"t_stop_tau": t_stop_tau, "burn_in_tau": 0.0 if "tran" in analyses else None,
                          "analyses": list(analyses), "backend": "linear", "noise_dt_tau": noise_dt_tau},
           "readout": {"sample_dt_tau": step_tau if "tran" in analyses else None}}
    return build_circuit(prepare(cfg))


def dense_circuit(d, *, circuit=None, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((d, d))
    A = B @ B.T / d + 0.5 * np.eye(d)
    cfg = {"problem": {"matrix": A.tolist(), "vector": rng.standard_normal(d).tolist(), "kappa": 0.0},
           "circuit": {"topology": "opamp", **(circuit or {})},
           "simulation": {"t_stop_tau": 5.0, "burn_in_tau": 0.0, "analyses": ["tran"], "backend": "linear"},
           "readout": {"sample_dt_tau": 0.25}}
    return build_circuit(prepare(cfg))


def _both(c):
    e = LinearEngine()
    dense = e.run(c, method="modal")["tran"]
    kry = e.run(c, method="krylov")["tran"]
    assert kry.method == "krylov" and kry.engine == "linear"
    keys = [k for k in dense.vectors if k != "time"]
    D = np.array([dense.vectors[k] for k in keys])
    K = np.array([kry.vectors[k] for k in keys])
    assert np.array_equal(dense.vectors["time"], kry.vectors["time"])
    return D, K, kry.krylov


MACRO = {"opamp": {"model": "macro", "gain": 1e5, "gbw_hz": 1e7, "offset_sigma_v": 1e-4}}
TOL = {"tolerance": {"local_rel": 0.01, "seed": 2}}


@pytest.mark.parametrize("n,m,extra", [(60, 12, {}), (160, 12, {}), (24, 6, MACRO | TOL)],
                         ids=["ideal", "ideal-split-layout", "macro-tolerance"])
def test_krylov_equals_modal_factored(n, m, extra):
    D, K, run = _both(factored_circuit(n, m, circuit=extra))
    assert run.info.error_estimate <= 1e-9, run
    assert np.abs(K - D).max() <= 1e-8 * np.abs(D).max(), (np.abs(K - D).max(), run)
    assert run.peel_rounds > 0 and run.n_states >= n


def test_krylov_equals_modal_dense_topology_macro():
    """The method is generic: the dense all-to-all op-amp network with macromodel op-amps and tolerances."""
    D, K, run = _both(dense_circuit(8, circuit=MACRO | TOL))
    assert np.abs(K - D).max() <= 1e-8 * np.abs(D).max(), (np.abs(K - D).max(), run)


def test_dc_start_stays_at_the_operating_point():
    """Without uic the transient starts at the DC solution (a sparse LU of the whole MNA): it must stay there."""
    c = factored_circuit(30, 8, analyses=("op", "tran"))
    c = replace(c, analyses=[Op(), replace(c.analysis(Tran), uic=False)])
    out = LinearEngine().run(c, method="krylov")
    op, tr = out["op"], out["tran"]
    for k, v in op.vectors.items():
        assert np.abs(tr.vectors[k] - v[0]).max() <= 1e-9 * max(abs(v[0]), 1.0), k


@pytest.mark.ngspice
def test_krylov_vs_ngspice_factored(tmp_path):
    """Noise-free factorised netlist (N = 16, m = 5, x0 != 0): ngspice's path at its own time points against the
    Krylov path at the same times; the difference is ngspice's truncation error (shrinks with reltol)."""
    c = factored_circuit(16, 5, t_stop_tau=4.0, step_tau=0.1)
    errs = []
    for reltol in (1e-4, 1e-6):
        cr = replace(c, options={"reltol": reltol})
        ng = get_engine("ngspice-subprocess").run(cr, tmp_path / f"ng_{reltol:g}")["tran"]
        nodes = [s for s in c.saves]
        ex = path_at_krylov(cr, ng.axis, nodes)
        scale = max(np.abs(ex[k]).max() for k in ex)
        errs.append(max(np.abs(np.real(ng.vectors[k]) - ex[k]).max() for k in ex) / scale)
    print("ngspice vs krylov, relative max difference at reltol 1e-4 / 1e-6:", errs)
    assert errs[0] < 1e-2, errs
    assert errs[1] < 0.5 * errs[0], errs


@pytest.mark.ngspice
def test_op_vs_ngspice_factored(tmp_path):
    c = factored_circuit(16, 5, analyses=("op",))
    ng = get_engine("ngspice-subprocess").run(c, tmp_path / "op")["op"].vectors
    lin = LinearEngine().run(c, method="krylov")["op"]
    for k, v in lin.vectors.items():
        ref = float(np.real(ng[k])[0])
        assert abs(v[0] - ref) <= 1e-10 * max(abs(ref), 1e-300) + 1e-15, (k, v[0], ref)


@pytest.mark.parametrize("n,m,extra,step_tau,noise_dt_tau", [
    (60, 12, {}, 0.25, 0.0125),            # 20 noise steps per output step
    (40, 6, {}, 5.0, 0.01),                # one output step of 500 noise steps (a TNGD readout)
    (30, 6, {}, 0.25, 0.1),                # output step / noise step = 5/2: the fine grid between the knots
    (24, 6, MACRO | TOL, 0.25, 0.0125)],   # macromodel op-amps: a non-symmetric state matrix
    ids=["ideal", "one-readout", "fractional", "macro-tolerance"])
def test_krylov_integrates_the_noise_samples_as_modal(n, m, extra, step_tau, noise_dt_tau):
    """The noise DACs' piecewise-linear samples, path-wise: the Chebyshev propagation (chebyshev.py, truncation
    bound rtol = 1e-10 per output step) against the exact modal recursion on the same samples."""
    D, K, run = _both(factored_circuit(n, m, circuit=extra, kappa=0.05, step_tau=step_tau,
                                       noise_dt_tau=noise_dt_tau))
    assert run.info.error_estimate <= 1e-9 * run.info.substeps, run
    assert np.abs(K - D).max() <= 1e-8 * np.abs(D).max(), (np.abs(K - D).max(), run)


def test_krylov_refuses_aggregated_noise():
    c = factored_circuit(12, 4, kappa=0.01, noise_dt_tau=0.025)
    with pytest.raises(BadInputError, match="noise_mode samples"):
        LinearEngine().run(c, method="krylov", noise_mode="aggregated")


def test_auto_rule_picks_krylov_for_many_states(monkeypatch):
    c = factored_circuit(20, 4)
    assert LinearEngine().run(c)["tran"].method == "modal"
    monkeypatch.setattr(krylov, "KRYLOV_MIN_STATES", 10)
    assert LinearEngine().run(c)["tran"].method == "lowrank"            # the circuit states its factors: lowrank
    c = replace(c, drift_factors=None)
    assert LinearEngine().run(c)["tran"].method == "krylov"
    noisy = replace(factored_circuit(20, 4, kappa=0.01, noise_dt_tau=0.025), drift_factors=None)
    assert LinearEngine().run(noisy)["tran"].method == "krylov"                      # noise samples: krylov too
    assert LinearEngine().run(noisy, noise_mode="aggregated")["tran"].method == "modal"   # drawn by the dense model


def test_peel_solve_with_coupled_core_equals_spsolve():
    """Rows peeled in rounds, then a coupled 3 x 3 core (every core row also reads peeled unknowns)."""
    rng = np.random.default_rng(3)
    n = 12
    G = np.tril(rng.standard_normal((n, n)), -1) * (rng.random((n, n)) < 0.4) + np.diag(2 + rng.random(n))
    G[-3:, -3:] = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    Gs = sp.csr_matrix(G)
    labels = [f"u{i}" for i in range(n)]
    ps = PeelSolve(Gs, labels, labels)
    assert ps.core_size == 3 and ps.n_rounds >= 1
    R = rng.standard_normal((n, 4))
    assert np.allclose(ps.solve(R), spla.spsolve(Gs.tocsc(), R), rtol=1e-12, atol=1e-12)
    part = PeelSolve(Gs, labels, labels, needed=np.array([0, 1]))
    assert np.allclose(part.solve(R)[:2], spla.spsolve(Gs.tocsc(), R)[:2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [40, 140])     # 140: the split layout (8 summing-node parts, 8 z buffers)
def test_signed_crossbars_fold_into_one_block(n):
    """Each signed crossbar (G_pos fed by x, G_neg by the inverter's xn = -x, the J^T array by the z buffers) is
    applied as one block G_pos - G_neg (peel.fold_aliases / fold_blocks): fewer dense parts than blocks, every J and
    J^T entry read once per solve, and the operator equals the dense model's M (formed independently, without the
    peeling's blocks) to rounding."""
    c = factored_circuit(n, 4)
    om = OperatorModel(c)
    ps = om.peel
    assert ps.folded_blocks < ps.dense_blocks, (ps.folded_blocks, ps.dense_blocks)
    per_round = [D.size for *_, parts in ps._rounds for _, D, _ in parts]
    assert sum(per_round) <= 2 * n * 4 + 4 * 4, per_round      # J and J^T (m N each) and H once, not per sign
    M = build_model(c).M
    X = np.random.default_rng(1).standard_normal((om.n, 3))
    assert np.allclose(om.apply_M(X), M @ X, rtol=1e-12, atol=1e-12 * np.abs(M).max() * np.abs(X).max())
    # a saved current whose KCL row reads a crossbar's transposed block (which shares the array the fold writes
    # into): the fold then sums into a new array, and the outputs still equal the dense model's
    saves = ["v(x1)", "i(eout1)", "i(eout2)"]
    om2, ref = OperatorModel(c, saves), build_model(c, saves)
    U = np.zeros((om2.n_u, 3))
    U[0] = 1.0
    dx, y = om2.apply(X, U)
    assert np.allclose(dx, ref.M @ X + ref.N @ U, rtol=1e-12, atol=1e-12 * np.abs(dx).max())
    assert np.allclose(y, ref.Cx @ X + ref.Du @ U, rtol=1e-12, atol=1e-12 * np.abs(y).max())


def test_fold_never_writes_an_array_another_block_reads():
    """PeelSolve(own_blocks=True) folds G_pos (rows w, col a) and G_neg (rows w, col an = -a, an alias: a row of two
    entries with a zero right-hand side) into one block; G_pos's array is also the transposed block of row v, which
    the solve reads, so the sum goes into a new array. Every solve equals spsolve of the whole matrix."""
    n = 5                          # unknowns a, an, w1, w2, v
    G = np.zeros((n, n))
    G[0, 0] = 1.0                  # a = r0
    G[1, 1], G[1, 0] = 1.0, 1.0    # an + a = 0: an = -a (right-hand side structurally zero)
    G[2, 2], G[3, 3], G[4, 4] = 2.0, 3.0, 1.5
    gp, gn = np.array([[0.7], [0.0]]), np.array([[0.0], [0.4]])
    pos = Block(np.array([2, 3]), np.array([0]), gp, gp > 0)
    neg = Block(np.array([2, 3]), np.array([1]), gn, gn > 0)
    blocks = [pos, neg, pos.transposed().relabel(np.array([4, 1, 2, 3, 0]))]   # rows [4], cols [2, 3]: gp's array
    full = G.copy()
    for b in blocks:
        full[np.ix_(b.rows, b.cols)] -= b.g
    labels = [f"u{i}" for i in range(n)]
    ps = PeelSolve(sp.csr_matrix(G), labels, labels, blocks=blocks, rhs_rows=np.array([0, 2, 3, 4]), own_blocks=True)
    assert ps.folded_blocks == 2 and np.array_equal(gp, [[0.7], [0.0]])      # folded, gp untouched
    R = np.random.default_rng(2).standard_normal((n, 2))
    R[1] = 0.0
    assert np.allclose(ps.solve(R), spla.spsolve(sp.csc_matrix(full), R), rtol=1e-13, atol=1e-13)


def _carve(G: np.ndarray, rows, cols, share: float = 1.0) -> Block:
    """Move `share` of G's entries at (rows, cols) into a dense Block (entries -g), leaving the rest in G."""
    rows, cols = np.asarray(rows), np.asarray(cols)
    sub = G[np.ix_(rows, cols)].copy()
    G[np.ix_(rows, cols)] = sub * (1.0 - share)
    return Block(rows, cols, -share * sub, sub != 0)


def test_peel_solve_with_dense_blocks_equals_spsolve():
    """G22 = sparse part + dense Blocks: a peelable permuted triangle with a coupled 3 x 3 core. One block holds
    pivots (its rows' last unknown), one a row with no sparse entry at all, one takes part in the core; a block
    sharing positions with the sparse part and one overlapping an earlier block are stamped sparse. Every solve
    equals spsolve of the whole matrix."""
    rng = np.random.default_rng(5)
    n = 40
    L = np.tril(rng.standard_normal((n, n)), -1) * (rng.random((n, n)) < 0.5) + np.diag(2 + rng.random(n))
    L[-3:, -3:] = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    p = rng.permutation(n)
    full = L[:, p]                           # still peelable, in another order: row k's pivot is column col[k]
    col = np.argsort(p)
    G = full.copy()
    blocks = [_carve(G, [20, 21, 22], col[[20, 21, 22, 0, 1, 2, 3, 4]]),   # the rows' pivots inside the block
              _carve(G, [30], np.arange(n)),                               # row 30 lives in the block only
              _carve(G, [37, 38, 39], col[[0, 1, 2, 37, 38]]),             # core rows
              _carve(G, [10, 11, 12], col[:8], share=0.5)]                 # shares positions with G: stamped
    over = Block(np.array([20, 21]), col[:5], -rng.standard_normal((2, 5)), np.ones((2, 5), bool))
    blocks.append(over)                                                    # overlaps block 0: stamped
    full[np.ix_(over.rows, over.cols)] -= over.g
    labels = [f"u{i}" for i in range(n)]
    ps = PeelSolve(sp.csr_matrix(G), labels, labels, blocks=blocks)
    assert ps.dense_blocks == 3 and ps.core_size == 3, (ps.dense_blocks, ps.core_size)
    R = rng.standard_normal((n, 3))
    ref = spla.spsolve(sp.csc_matrix(full), R)
    assert np.allclose(ps.solve(R), ref, rtol=1e-11, atol=1e-11)
    assert np.allclose(ps.solve(R[:, 0]), ref[:, 0], rtol=1e-11, atol=1e-11)
    part = PeelSolve(sp.csr_matrix(G), labels, labels, needed=np.array([col[3]]), blocks=blocks)
    assert np.allclose(part.solve(R)[col[3]], ref[col[3]], rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("kind,dense,state_arrays", [("mixed", 2, 1), ("m-matrix", 1, 0)])
def test_all_to_all_network_matches_modal(kind, dense, state_arrays):
    """The ideal all-to-all network under krylov, including a variable with no negative coupling (an unused
    inverted line) and a network whose off-diagonal entries are all negative, equals the dense modal method, which
    stamps every resistor. With the ideal op-amp subcircuit SPU_OPAMP_IDEAL, C_f runs from x<i> to the virtual
    ground sum<i> (held at 0 by the nullator): the crossbars are fed by the states, and run as dense Blocks
    (state_blocks.py): the x crossbar in G21, the xn crossbar through the inverters' exact aliases xn = -x folded
    with it into one array G_pos - G_neg (one GEMV of d x d per application); their transposes read only the held
    virtual grounds and are dropped. With every off-diagonal entry negative the x crossbar holds only the diagonal
    (stamped sparse) and the xn crossbar stays a dense block of the G22 solve."""
    rng = np.random.default_rng(4)
    d = 30
    if kind == "mixed":
        B = rng.standard_normal((d, d))
        A = B @ B.T / d + 0.5 * np.eye(d)
        A[0, 1:] = A[1:, 0] = np.abs(A[0, 1:]) * 0.1   # x1 feeds only positive couplings: no xn1
        A[0, 0] += 2.0
    else:
        W = rng.random((d, d))
        A = -(W + W.T) / d
        np.fill_diagonal(A, 0.0)
        A += np.diag(-A.sum(axis=1) + 0.3)             # diagonally dominant M-matrix: SPD
    cfg = {"problem": {"matrix": A.tolist(), "vector": rng.standard_normal(d).tolist(), "kappa": 0.0,
                       "x0": rng.standard_normal(d).tolist()},
           "circuit": {"topology": "opamp"},
           "simulation": {"t_stop_tau": 5.0, "burn_in_tau": 0.0, "analyses": ["tran"], "backend": "linear"},
           "readout": {"sample_dt_tau": 0.25}}
    c = build_circuit(prepare(cfg))
    D, K, run = _both(c)
    assert run.dense_blocks == dense, run
    om = OperatorModel(c)
    assert len(om.state_blocks) == state_arrays, om.state_blocks
    assert sum(g.size for _, _, g in om.state_blocks) == state_arrays * d * d   # each crossbar entry read once
    assert np.abs(K - D).max() <= 1e-8 * np.abs(D).max(), (np.abs(K - D).max(), run)


def test_arnoldi_substeps_on_a_stiff_operator_match_the_closed_form():
    """A stiff non-normal operator (eigenvalues -1 ... -1e3 and a coupling) with a small basis (k_max = 12)
    forces substeps; the result equals e^{Mt} x0 + M^-1 (e^{Mt} - I) b (scipy expm) within the estimate."""
    from scipy.linalg import expm  # noqa: PLC0415

    from spu_sim.engines.linear.expmv import affine_expmv  # noqa: PLC0415
    rng = np.random.default_rng(1)
    n = 60
    M = np.diag(-np.logspace(0, 3, n)) + np.triu(rng.standard_normal((n, n)) * 0.5, 1)
    x0, b = rng.standard_normal(n), rng.standard_normal(n)
    times = np.linspace(0.0, 2.0, 9)
    X, info = affine_expmv(lambda v: M @ v, b, x0, times, rtol=1e-10, k_max=12)
    assert info.substeps > 1, info
    for k, t in enumerate(times):
        E = expm(M * t)
        ref = E @ x0 + np.linalg.solve(M, (E - np.eye(n)) @ b)
        assert np.linalg.norm(X[:, k] - ref) <= 1e-8 * np.linalg.norm(ref), (t, info)


@pytest.mark.parametrize("order", ["C", "F"])
def test_crossbar_stamp_blocks_equal_the_resistors_it_expands_to(order):
    """stamp_resistors with blocks: a crossbar whose every line is a node (one pass: g, sums, counts), one with a
    column on a line that is no node and carries no resistor (kept out of the block without a copy of the whole),
    and one with a column on ground carrying resistors (the general path: the ground line leaves the block, its
    conductances stay on the diagonal) give the conductance matrix of their
    Resistor elements, blocks included, and each Block's counts are its structure's."""
    from spu_sim.circuit import ResistorArray
    from spu_sim.engines.linear.stamp import stamp_resistors
    rng = np.random.default_rng(7)
    nodes = {f"r{i}": i for i in range(4)} | {f"c{j}": 4 + j for j in range(5)}
    r = np.asarray(rng.uniform(1e3, 1e5, (4, 6)), order=order)
    r[rng.random((4, 6)) < 0.3] = np.inf
    r[:, 5] = np.inf                                    # column on "nowhere": no resistor in it
    rows = [f"r{i}" for i in range(4)]
    arrays = [ResistorArray("RA", rows, [f"c{j}" for j in range(5)], r[:, :5]),
              ResistorArray("RB", rows, [f"c{j}" for j in range(4)] + ["nowhere", "c4"], r[:, [0, 1, 2, 3, 5, 4]]),
              ResistorArray("RC", rows[:2], ["c0", "0"], np.array([[2e3, 4e3], [np.inf, 5e3]]))]
    n = len(nodes)
    for arr in arrays:
        res = arr.resistors()
        ref = stamp_resistors(res, [e.n_pos for e in res], [e.n_neg for e in res], [e.r_ohm for e in res], [], nodes, n)
        blocks = []
        G = stamp_resistors([], [], [], [], [arr], nodes, n, blocks=blocks)
        for b in blocks:
            G = G + b.csr(n)
            assert np.array_equal(b.row_count, np.count_nonzero(b.mask(), axis=1))
            assert np.array_equal(b.col_count, np.count_nonzero(b.mask(), axis=0))
        assert len(blocks) == 2
        np.testing.assert_allclose(G.toarray(), ref.toarray(), rtol=1e-14, atol=0)
