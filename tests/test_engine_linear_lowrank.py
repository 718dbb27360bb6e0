"""The linear engine's method lowrank (engines/linear/lowrank.py): exact transients through the m x m core of the
factorised circuit's state matrix M = -(d I + U W V^T), against the dense modal method and the krylov method on the
same Circuit and the same noise samples.

Tolerances: the dense modal form is exact to cond(V) eps (cond about 2 here), the low-rank method to its stated
error estimate (the factors' mismatch with the operator times the largest rate times the run, plus the rounding of
the core's exponentials: below 1e-11 on these circuits); both are checked at 1e-10 of the largest output.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.linalg as sla

import spu_sim.circuit as circuit_mod
import spu_sim.pipeline as pipeline
from spu_sim.circuit import DriftFactors, Op, SampleColumn, Tran
from spu_sim.engines.base import Workload
from spu_sim.engines.linear import LinearEngine
from spu_sim.engines.linear import engine as eng, krylov, lowrank
from spu_sim.engines.linear.lowrank import LowRank, core_modes, noise_free_path, tran_lowrank
from spu_sim.engines.linear.result import RunOptions
from spu_sim.errors import BadInputError

from test_engine_linear_krylov import factored_circuit

TOL = 1e-10


def _vectors(w):
    keys = [k for k in w.vectors if k != "time"]
    return np.array([w.vectors[k] for k in keys])


def _run(c, method, **kw):
    return LinearEngine().run(c, method=method, **kw)["tran"]


@pytest.mark.parametrize("n,m,kappa", [(60, 12, 0.0), (160, 12, 0.0), (60, 12, 0.01), (40, 8, 0.05)],
                         ids=["noise-free", "noise-free-split-layout", "noisy", "noisy-2"])
def test_lowrank_equals_modal_and_krylov(n, m, kappa):
    """Same circuit, same samples: lowrank within 1e-10 of the dense modal method (and of krylov, whose own
    tolerance is 1e-8); the result names the method and states its check."""
    c = factored_circuit(n, m, kappa=kappa, noise_dt_tau=0.025 if kappa else None)
    lr = _run(c, "lowrank")
    assert lr.method == "lowrank" and lr.engine == "linear" and lr.krylov is None
    run = lr.lowrank
    assert run.rank == m and run.n_states == n and run.mismatch <= 1e-13 and run.error_estimate <= 1e-10, run
    assert (run.knots > 0) == (kappa > 0), run
    D, K, L = _vectors(_run(c, "modal")), _vectors(_run(c, "krylov")), _vectors(lr)
    scale = np.abs(D).max()
    print(f"lowrank vs modal {np.abs(L - D).max() / scale:.3g}, vs krylov {np.abs(L - K).max() / scale:.3g}, {run}")
    assert np.abs(L - D).max() <= TOL * scale
    assert np.abs(L - K).max() <= 1e-8 * scale


def test_auto_picks_lowrank_and_falls_back_when_the_leak_is_not_uniform(monkeypatch):
    """auto (above krylov.KRYLOV_MIN_STATES states, here lowered to 10; below, the dense modal method): lowrank on
    the ideal factorised circuit, noisy or not; with 1 % component tolerances the state matrix's diagonal is no longer
    one number, so auto runs krylov (same OperatorModel) and a forced lowrank is refused naming the cause."""
    assert _run(factored_circuit(30, 6), "auto").method == "modal"
    monkeypatch.setattr(krylov, "KRYLOV_MIN_STATES", 10)
    assert _run(factored_circuit(30, 6), "auto").method == "lowrank"
    assert _run(factored_circuit(30, 6, kappa=0.01, noise_dt_tau=0.025), "auto").method == "lowrank"
    assert _run(factored_circuit(30, 6, kappa=0.01, noise_dt_tau=0.025), "auto", noise_mode="aggregated").method == "modal"
    c = factored_circuit(30, 6, circuit={"tolerance": {"local_rel": 0.01, "seed": 2}})
    assert c.drift_factors is not None
    with pytest.raises(BadInputError, match="not one number"):
        _run(c, "lowrank")
    assert eng.tran_method(c, "auto") is tran_lowrank
    fell = _run(c, "auto")
    assert fell.method == "krylov" and fell.lowrank is None
    D = _vectors(_run(c, "modal"))
    assert np.abs(_vectors(fell) - D).max() <= 1e-8 * np.abs(D).max()


def test_a_wrong_statement_is_caught_by_the_probe():
    """The factors are checked against the circuit's operator: a statement off by 1e-6 in one entry is refused
    (forced) or replaced by krylov (auto), so it costs time, never accuracy."""
    c = factored_circuit(30, 6)
    good = c.drift_factors()
    U = good.U.copy()
    U[3, 2] *= 1.0 + 1e-6
    bad = replace(c, drift_factors=lambda: DriftFactors(good.nodes, U, good.W, good.VT, good.d_per_s))
    with pytest.raises(BadInputError, match="differ from the circuit's operator"):
        _run(bad, "lowrank")
    w = tran_lowrank(bad, bad.analysis(Tran), RunOptions(method="auto"))
    assert w.method == "krylov"


def test_chunked_noise_gives_the_same_numbers():
    """The samples read 3 knots at a time equal the one-chunk run (only the summation order differs)."""
    c = factored_circuit(40, 8, kappa=0.05, noise_dt_tau=0.025)
    tran = c.analysis(Tran)
    whole = tran_lowrank(c, tran, RunOptions(method="lowrank"))
    small = tran_lowrank(c, tran, RunOptions(method="lowrank", chunk_knots=3))
    assert small.lowrank.chunk_knots == 3 and whole.lowrank.chunk_knots > 3
    A, B = _vectors(whole), _vectors(small)
    assert np.abs(A - B).max() <= 1e-13 * np.abs(A).max()


def test_dc_start_stays_at_the_operating_point():
    """Without uic the transient starts at the equilibrium through the core (Woodbury): it stays at the .op."""
    c = factored_circuit(30, 8, analyses=("op", "tran"))
    c = replace(c, analyses=[Op(), replace(c.analysis(Tran), uic=False)])
    out = LinearEngine().run(c, method="lowrank")
    op, tr = out["op"], out["tran"]
    assert tr.method == "lowrank"
    for k in tr.vectors:
        if k != "time":
            assert np.abs(tr.vectors[k] - op.vectors[k][0]).max() <= 1e-9 * max(abs(op.vectors[k][0]), 1.0), k


def test_defective_singular_core_by_the_augmented_exponential():
    """A core C = V^T U that is a Jordan block (singular, defective: no eigenbasis) goes through the (2m+1)
    exponential; the path equals the dense solution x(t) = e^{Mt} x0 + int_0^t e^{M s} ds w."""
    rng = np.random.default_rng(3)
    n = 12
    U = rng.standard_normal((n, 2))
    VT = np.linalg.pinv(U)[::-1].copy()          # VT U = [[0, 1], [1, 0]]: then make it a Jordan block
    VT[1] = 0.0
    lr = LowRank(0.7, U, None, VT, VT @ U, 0.0)
    assert np.allclose(lr.C, [[0.0, 1.0], [0.0, 0.0]], atol=1e-12)
    assert core_modes(lr) is None
    x0, w = rng.standard_normal(n), rng.standard_normal(n)
    t = np.array([0.0, 0.3, 1.1, 2.5])
    X, n_exp = noise_free_path(lr, x0, w, t, None)
    M = -(0.7 * np.eye(n) + U @ VT)
    for k, tk in enumerate(t):
        E = sla.expm(np.block([[M, w[:, None]], [np.zeros((1, n)), np.zeros((1, 1))]]) * tk)
        ref = E[:n, :n] @ x0 + E[:n, n]
        assert np.abs(X[:, k] - ref).max() <= 1e-12 * np.abs(ref).max(), (k, np.abs(X[:, k] - ref).max())


def test_streamed_noise_block_gives_the_same_numbers(monkeypatch):
    """Above pipeline.STREAM_NOISE_BYTES (here 0) the noise DACs' samples are a streamed SampleBlock: generated in
    row order as lowrank reads them (3 knots at a time: the generator's blocks and the reads do not align), with the
    same numbers, bit for bit, as the one array; the dense method materialises the block and agrees too; the
    engine's estimate counts one chunk instead of the samples."""
    c_arr = factored_circuit(40, 8, kappa=0.05, noise_dt_tau=0.025)
    monkeypatch.setattr(pipeline, "STREAM_NOISE_BYTES", 0.0)
    c_str = factored_circuit(40, 8, kappa=0.05, noise_dt_tau=0.025)
    col = c_str.noise_sources[0].samples_v
    assert isinstance(col, SampleColumn)
    assert np.array_equal(np.asarray(col), c_arr.noise_sources[0].samples_v)
    tran = c_arr.analysis(Tran)
    ref = _vectors(tran_lowrank(c_arr, tran, RunOptions(method="lowrank", chunk_knots=3)))
    col.block._array = None
    got = tran_lowrank(c_str, tran, RunOptions(method="lowrank", chunk_knots=3))
    assert col.block._array is None                  # never materialised
    assert np.array_equal(_vectors(got), ref)
    dense = _vectors(_run(c_str, "modal"))
    assert np.abs(dense - ref).max() <= TOL * np.abs(ref).max()


def test_streamed_estimate_and_refusal(monkeypatch):
    """The linear engine's estimate counts a streamed run's noise as one chunk; a method that must hold the samples
    whole refuses by name when they do not fit (here: a machine with 1 kB free)."""
    w = Workload(n_sources=10 ** 5, n_noise_steps=20898, noise_dt_tau=1e-3, step_tau=50.0, n_out_points=2,
                 n_outputs=10 ** 5, n_elements=10, keep_files=False, result_matrices=False)
    full = LinearEngine().estimate(w).memory_mb
    streamed = LinearEngine().estimate(w._replace(noise_streamed=True)).memory_mb
    assert full > 16e3 and streamed < 1e3, (full, streamed)
    monkeypatch.setattr(pipeline, "STREAM_NOISE_BYTES", 0.0)
    c = factored_circuit(12, 4, kappa=0.05, noise_dt_tau=0.025)
    monkeypatch.setattr(circuit_mod, "_available_bytes", lambda: 1e3)
    with pytest.raises(BadInputError, match="only the linear engine's method lowrank reads them in chunks"):
        _run(c, "modal")


def test_compressed_knot_weights_equal_the_knot_by_knot_projections(monkeypatch):
    """100 knots per output step, m = 40 (81 weight columns): the weights compress to a rank below the columns
    (exponentials in the knot index) and the folded run equals the knot-by-knot projections to 1e-11; both equal
    the dense modal method to 1e-10."""
    c = factored_circuit(60, 40, kappa=0.05, step_tau=0.25, t_stop_tau=1.0, noise_dt_tau=0.0025)
    tran = c.analysis(Tran)
    folded = tran_lowrank(c, tran, RunOptions(method="lowrank", chunk_knots=17))
    assert 0 < folded.lowrank.weight_rank < 81 and folded.lowrank.weight_residual <= 1e-12, folded.lowrank
    monkeypatch.setattr(lowrank, "COMPRESS_WEIGHTS", False)
    each = tran_lowrank(c, tran, RunOptions(method="lowrank", chunk_knots=17))
    assert each.lowrank.weight_rank == 0
    A, B, D = _vectors(folded), _vectors(each), _vectors(_run(c, "modal"))
    print("folded vs each", np.abs(A - B).max() / np.abs(B).max(), "vs modal", np.abs(A - D).max() / np.abs(D).max(),
          folded.lowrank)
    assert np.abs(A - B).max() <= 1e-11 * np.abs(B).max()
    assert np.abs(A - D).max() <= TOL * np.abs(D).max()
