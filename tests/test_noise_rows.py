"""The streamed noise reader (spu_sim.parts.noise_dacs.noise_rows): the draws run ahead in a producer thread, and the
rows it yields are those of noise_samples() bit for bit, whatever the block and slice sizes; the producer's failure
reaches the reader, closing the reader stops the producer, and it never draws more than DRAW_BUFFERS blocks ahead."""

import threading
import time

import numpy as np
import pytest

import spu_sim.parts.noise_dacs as nd
import spu_sim.pipeline as pipeline
from spu_sim.circuit import Tran
from spu_sim.engines.linear.lowrank import tran_lowrank
from spu_sim.engines.linear.result import RunOptions
from spu_sim.parts.noise_dacs import PRE_EMPHASIS, noise_rows, noise_sample_block, noise_samples

from test_engine_linear_krylov import factored_circuit
from test_engine_linear_lowrank import _vectors

THREAD = "spu-sim-noise-draws"


def _producers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


def _read(d, n_steps, seed, chunk, scale=1.0):
    return np.vstack([b.copy() for b in noise_rows(d, n_steps, seed, chunk, scale)])


@pytest.mark.parametrize("block_bytes", [nd.SAMPLE_BLOCK_BYTES, 8, 8 * 6 * 5])
def test_noise_samples_is_the_stated_formula(monkeypatch, block_bytes):
    """The reference itself: u_k = w_k + c (w_k - w_{k-1}), u_0 = 0, w one draw of numpy's PCG64 (whatever blocks
    noise_samples draws it in)."""
    monkeypatch.setattr(nd, "SAMPLE_BLOCK_BYTES", block_bytes)
    w = np.random.default_rng(4).standard_normal((53, 6))
    ref = w[1:] + PRE_EMPHASIS * (w[1:] - w[:-1])
    ref[0] = 0.0
    u = noise_samples(6, 50, 4)
    assert u.shape == (52, 6)
    assert np.array_equal(u, ref)


@pytest.mark.parametrize("slice_bytes", [nd.SLICE_BYTES, 8, 8 * 5, 8 * 7 * 2, 8 * 7 * 3 + 8])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1000])
def test_threaded_reader_gives_noise_samples_bit_for_bit(monkeypatch, chunk, slice_bytes):
    """Blocks of 1 .. 1000 rows, pre-emphasis slices of 1 .. all rows, scale 1, negative, and tiny runs."""
    monkeypatch.setattr(nd, "SLICE_BYTES", slice_bytes)
    for d, n_steps, seed in [(7, 50, 3), (7, 1, 0), (7, 0, 1), (1, 20, 9)]:
        ref = noise_samples(d, n_steps, seed)
        for scale in (1.0, -0.37):
            got = _read(d, n_steps, seed, chunk, scale)
            assert got.shape == ref.shape
            assert np.array_equal(got, scale * ref), (d, n_steps, chunk, scale)
            assert np.array_equal(np.signbit(got), np.signbit(scale * ref))      # -0.0 at t = 0 too


def test_streamed_block_reads_and_materialises_the_same_numbers():
    """SampleBlock.chunks (what lowrank reads) and np.asarray of the scaled block equal 2.5 x noise_samples()."""
    ref = 2.5 * noise_samples(9, 300, 11)
    block = 2.5 * noise_sample_block(9, 300, 11)
    rows = []
    for k, b in block.chunks(16):
        assert k == sum(len(r) for r in rows)
        rows.append(b.copy())
    assert np.array_equal(np.vstack(rows), ref)
    assert np.array_equal(np.asarray(block), ref)
    assert np.array_equal(np.asarray(block[:, 4]), ref[:, 4])


def test_a_block_stays_valid_while_the_next_is_read():
    """The stream's buffer contract (SampleBlock doc): block j is unchanged after block j + 1 is yielded."""
    ref = noise_samples(5, 40, 2)
    it = noise_rows(5, 40, 2, 4)
    prev = next(it)
    k = len(prev)
    for b in it:
        assert np.array_equal(prev, ref[k - len(prev):k])
        prev, k = b, k + len(b)
    assert k == len(ref)


class _Failing:
    """A generator whose third fill raises (and counts the fills)."""

    def __init__(self, rng, fail_at=None):
        self.rng, self.fail_at, self.fills = rng, fail_at, 0

    def standard_normal(self, *a, **k):
        self.fills += 1
        if self.fills == self.fail_at:
            raise FloatingPointError("draw 3 failed")
        return self.rng.standard_normal(*a, **k)


def test_a_generator_failure_is_raised_in_the_reader(monkeypatch):
    real = np.random.default_rng
    monkeypatch.setattr(np.random, "default_rng", lambda seed: _Failing(real(seed), fail_at=3))
    it = noise_rows(4, 100, 0, 10)
    next(it), next(it)                                  # blocks 1 and 2 drawn before the failure
    raised = []

    def read_on():                                      # in a thread: a lost failure would block the reader forever
        try:
            next(it)
        except FloatingPointError as e:
            raised.append(e)

    reader = threading.Thread(target=read_on, daemon=True)
    reader.start()
    reader.join(30.0)
    assert not reader.is_alive(), "the reader still waits for a block the failed producer never drew"
    assert len(raised) == 1 and "draw 3 failed" in str(raised[0])
    assert not _producers()


def test_closing_the_reader_stops_the_producer_and_it_stays_bounded(monkeypatch):
    """The producer draws ahead (it uses the second core) but never more than DRAW_BUFFERS blocks beyond what the
    reader has taken; closing the reader ends the thread."""
    real = np.random.default_rng
    made = []

    def counting(seed):
        made.append(_Failing(real(seed)))
        return made[-1]

    monkeypatch.setattr(np.random, "default_rng", counting)
    it = noise_rows(3, 1000, 0, 5)
    next(it)
    deadline = time.monotonic() + 10.0
    while made[0].fills < 1 + nd.DRAW_BUFFERS and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert made[0].fills == 1 + nd.DRAW_BUFFERS    # ran ahead (block 0's buffer is free once it is pre-emphasised)
    assert len(_producers()) == 1
    it.close()
    assert not _producers()


def test_lowrank_closes_the_stream_it_read(monkeypatch):
    """The linear engine's method lowrank reads a streamed block (pipeline.STREAM_NOISE_BYTES 0) and leaves no
    producer thread behind, with the same result as the one array."""
    ref = factored_circuit(30, 6, kappa=0.05, noise_dt_tau=0.025)
    monkeypatch.setattr(pipeline, "STREAM_NOISE_BYTES", 0.0)
    c = factored_circuit(30, 6, kappa=0.05, noise_dt_tau=0.025)
    tran = c.analysis(Tran)
    got = _vectors(tran_lowrank(c, tran, RunOptions(method="lowrank", chunk_knots=4)))
    assert not _producers()
    assert np.array_equal(got, _vectors(tran_lowrank(ref, tran, RunOptions(method="lowrank", chunk_knots=4))))
