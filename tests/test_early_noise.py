"""The noise samples drawn early (parts/noise_dacs.EarlyNoiseSamples, started by AnalogSolver before the design):
the same numbers as the sequential draw, bit for bit; a failing draw reaches the caller; no thread outlives a step."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from spu_sim import analog, pipeline
from spu_sim.errors import DesignError
from spu_sim.parts import noise_dacs
from spu_sim.parts.noise_dacs import EarlyNoiseSamples, noise_samples

KAPPA = 0.01
EARLY_THREAD = "spu-sim-early-noise"


def _early_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in (EARLY_THREAD, "spu-sim-noise-draws")]


@pytest.mark.parametrize("block_bytes", [2 ** 23, 8 * 7 * 5])     # one block; many blocks of 5 rows
def test_early_draw_is_bit_identical(monkeypatch, block_bytes):
    monkeypatch.setattr(noise_dacs, "SAMPLE_BLOCK_BYTES", block_bytes)
    d, n, seed = 7, 101, 12
    early = EarlyNoiseSamples(d, n, seed)
    assert early.matches(d, n, seed) and not early.matches(d, n + 1, seed) and not early.matches(d, n, seed + 1)
    u = early.take()
    ref = noise_samples(d, n, seed)
    assert u.dtype == ref.dtype and u.shape == ref.shape == (n + 2, d)
    assert np.array_equal(u, ref)
    assert not early.matches(d, n, seed)          # taken: the handle holds no array any more
    early.close()
    assert not _early_threads()


def test_failing_draw_is_raised_in_the_caller():
    early = EarlyNoiseSamples(3, 10, -1)         # numpy refuses a negative seed, in the background thread
    with pytest.raises(ValueError, match="negative"):
        early.result()
    with pytest.raises(ValueError):              # and again at a later call
        early.take()
    early.close()
    assert not _early_threads()


def test_close_stops_the_draw(monkeypatch):
    monkeypatch.setattr(noise_dacs, "SAMPLE_BLOCK_BYTES", 8 * 50 * 10)   # many blocks: closed while under way
    with EarlyNoiseSamples(50, 20000, 3) as early:
        pass
    assert not _early_threads()
    with pytest.raises(RuntimeError, match="closed"):
        early.result()


def _factors(n: int = 12, m: int = 3):
    rng = np.random.default_rng(5)
    J = rng.standard_normal((m, n)) / np.sqrt(n)
    return J, np.eye(m), 0.5, rng.standard_normal(n), np.zeros(n)


class _Recording(EarlyNoiseSamples):
    taken: list = []

    def take(self):
        u = super().take()
        _Recording.taken.append(u.shape)
        return u


def test_solver_early_draw_gives_the_sequential_result(monkeypatch):
    """A noisy solve_factored with the early draw (recorded: the build took its array) and with the draw made at the
    build (no early draw) reads out the same state, bit for bit; no thread is left."""
    J, H, lam, b, x0 = _factors()
    _Recording.taken = []
    monkeypatch.setattr(analog, "EarlyNoiseSamples", _Recording)
    x_early = analog.AnalogSolver(kappa=KAPPA, seed=7, backend="linear").solve_factored(J, H, lam, b, x0, 5.0)
    assert len(_Recording.taken) == 1
    monkeypatch.setattr(analog, "EarlyNoiseSamples", lambda *a: None)
    x_seq = analog.AnalogSolver(kappa=KAPPA, seed=7, backend="linear").solve_factored(J, H, lam, b, x0, 5.0)
    other = analog.AnalogSolver(kappa=KAPPA, seed=8, backend="linear").solve_factored(J, H, lam, b, x0, 5.0)
    assert np.array_equal(x_early, x_seq)
    assert not np.array_equal(x_early, other)      # the noise is in the readout: the comparison can fail
    assert not _early_threads()


def test_solver_reports_a_failing_early_draw(monkeypatch):
    """A draw that fails in the early thread is raised by the solve (from the build, which takes it)."""
    where = []

    def broken(u, seed, stop=None):
        where.append(threading.current_thread().name)
        raise RuntimeError("broken generator")
    monkeypatch.setattr(noise_dacs, "_fill_samples", broken)
    J, H, lam, b, x0 = _factors()
    with pytest.raises(RuntimeError, match="broken generator"):
        analog.AnalogSolver(kappa=KAPPA, backend="linear").solve_factored(J, H, lam, b, x0, 5.0)
    assert where == [EARLY_THREAD]
    assert not _early_threads()


@pytest.mark.parametrize("where", ["design", "build"])
def test_no_thread_outlives_a_failed_step(monkeypatch, where):
    """A step that fails after the draw started, in the design or before the build takes the draw, stops and joins
    it (the draw here waits until it is stopped: a thread left running would still be alive)."""
    started = threading.Event()

    def slow(u, seed, stop=None):
        started.set()
        stop.wait(60)
    monkeypatch.setattr(noise_dacs, "_fill_samples", slow)

    def refuse(*a, **k):
        raise DesignError("refused by the test")
    if where == "design":
        monkeypatch.setattr(analog, "prepare_problem", refuse)
    else:
        monkeypatch.setattr(pipeline, "build_circuit", refuse)
    J, H, lam, b, x0 = _factors()
    with pytest.raises(DesignError, match="refused by the test"):
        analog.AnalogSolver(kappa=KAPPA, backend="linear").solve_factored(J, H, lam, b, x0, 5.0)
    assert started.is_set()
    assert not _early_threads()


def test_design_only_starts_no_draw(monkeypatch):
    started = []
    monkeypatch.setattr(noise_dacs, "_fill_samples", lambda *a, **k: started.append(1))
    J, H, lam, b, x0 = _factors()
    analog.AnalogSolver(kappa=KAPPA, backend="linear").design_factored(J, H, lam, b, x0, 5.0)
    assert not started and not _early_threads()
