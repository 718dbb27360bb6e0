"""The noise DACs every topology injects: one XSPICE filesource per variable, playing seeded samples.

    u = noise_samples(d, n_steps, seed)                       # unit intensity, reproducible
    u = noise_sample_block(d, n_steps, seed)                  # the same numbers, generated when read (streamed)
    for rows in noise_rows(d, n_steps, seed, chunk_rows): ...  # what the block's reader iterates
    elements = noise_dacs(noise_v_rms * u, dt_s)              # ANOISE<i> drives node nz<i>

The topology connects node nz<i> to its circuit (through R_noise into a summing node: ``noise_dacs_into_sums``;
in series with a cell resistor, ...).

Both noise_samples and noise_rows draw the Gaussians in a producer thread (``_drawn_blocks``: numpy's fills release
the GIL) while the caller's thread pre-emphasises the block before (``_pre_emphasised``), so the drawing, the cost
(about 12 ns a Gaussian on the development machine), overlaps the rest on a second core; the numbers are those of one
draw in row order, bit for bit. The draws themselves stay one sequential stream (one PCG64, its normals drawn in
order), so they cost the same CPU as before and take at least that much wall time; with no free core (a shared
machine) the two threads take turns and nothing is gained, nor lost.
"""

from __future__ import annotations

import queue
import threading
from functools import partial

import numpy as np

from ..circuit import Columns, ElementBank, NoiseSource, Resistor, SampleBlock

NOISE_FILE = "noise_{}.txt"  # one file per noise output, 1-based index


PRE_EMPHASIS = 1.0 / 3.0


def noise_samples(d: int, n_steps: int, seed: int) -> np.ndarray:
    """Unit-intensity noise samples, (n_steps + 2, d), reproducible from the seed.

    u_k = w_k + c (w_k - w_{k-1}), w_k iid N(0, 1) from numpy's PCG64 seeded with `seed`, c = 1/3.

    Why the pre-emphasis: the filesource interpolates linearly between samples, which removes power
    above 1/h and lowers a mode's stationary variance by about r h / 2 (r: its decay rate, h: the
    sample step; physics.md measured 0.95 at r h = 0.1). The first difference adds back high-frequency
    power with DC gain 1, so the low-frequency intensity (what kappa is defined by) is unchanged and
    the loss falls to about 0.06 r h (exact single-mode calculation: -0.0081 at r h = 0.1,
    -0.0012 at r h = 0.02; tests/test_noise_math.py checks it).
    One extra sample past the stop time keeps the interpolation defined at the last point. The sample
    at t = 0 is zero, so that ``.op`` (which sees the filesource's value at t = 0) is noise-free.

    Computed as noise_rows does (w drawn in row order in blocks of about SAMPLE_BLOCK_BYTES by a producer thread, the
    pre-emphasis written straight into u meanwhile): the numbers of one draw of (n_steps + 3, d), bit for bit.
    """
    u = np.empty((n_steps + 2, d))
    _fill_samples(u, seed)
    return u


def _fill_samples(u: np.ndarray, seed: int, stop: threading.Event | None = None) -> None:
    """noise_samples' work: u (n_steps + 2, d) filled with the samples of `seed`; stops between blocks (u then only
    partly written) once `stop` is set."""
    d = u.shape[1]
    rows = max(1, int(SAMPLE_BLOCK_BYTES // (8 * max(d, 1))))
    blocks = _drawn_blocks(seed, d, _block_sizes(u.shape[0] + 1, rows))
    try:
        for _ in _pre_emphasised(blocks, _consecutive(u), 1.0):
            if stop is not None and stop.is_set():
                return
    finally:
        blocks.close()


class EarlyNoiseSamples:
    """noise_samples(d, n_steps, seed) computed in a background thread started here, so that the draws (a floor of
    about 12 ns a Gaussian, one sequential stream) run on a second core while the caller designs and builds the
    circuit; ``result()`` waits for them. The same function fills the same array: the numbers are those of
    noise_samples, bit for bit, and the memory is that of its array (allocated here rather than at the build).

    result() raises the draw's exception in the caller (then and at every later call); close() stops the draw (it
    finishes the block under way) and joins the thread: call it (or use ``with``) on every path that may not reach
    result(), so that no thread outlives the step. A handle is read once: ``take`` hands its array over and forgets it.
    """

    def __init__(self, d: int, n_steps: int, seed: int) -> None:
        self.key = (int(d), int(n_steps), int(seed))
        self._u: np.ndarray | None = np.empty((int(n_steps) + 2, int(d)))
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw, name="spu-sim-early-noise", daemon=True)
        self._thread.start()

    def _draw(self) -> None:
        try:
            _fill_samples(self._u, self.key[2], self._stop)
        except BaseException as e:       # raised in the caller by result()
            self._error = e

    def matches(self, d: int, n_steps: int, seed: int) -> bool:
        """Whether this is the draw of noise_samples(d, n_steps, seed) and its array has not been taken."""
        return self._u is not None and self.key == (int(d), int(n_steps), int(seed))

    def result(self) -> np.ndarray:
        """The samples (waits for the thread); the draw's exception if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._stop.is_set() or self._u is None:
            raise RuntimeError("EarlyNoiseSamples: the draw was closed or taken before its result was read")
        return self._u

    def take(self) -> np.ndarray:
        """result(), after which the handle holds no array (the caller's is the only reference)."""
        u = self.result()
        self._u = None
        return u

    def close(self) -> None:
        """Stop the draw and join its thread (nothing to do once it is done); the array is dropped."""
        self._stop.set()
        self._thread.join()
        self._u = None

    def __enter__(self) -> "EarlyNoiseSamples":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: noise_samples draws in blocks of about this many bytes (the producer thread draws the next one meanwhile)
SAMPLE_BLOCK_BYTES = 2 ** 23


def _block_sizes(total: int, chunk_rows: int) -> list[int]:
    """Rows of w per drawn block: chunk_rows + 1 in the first (its first u row needs the w row before it), then
    chunk_rows, so that every block but the last gives chunk_rows rows of u."""
    first = min(chunk_rows + 1, total)
    return [first] + [min(chunk_rows, total - k) for k in range(first, total, chunk_rows)]


def _consecutive(u: np.ndarray):
    """Where the pre-emphasised blocks go: consecutive rows of u (send the row count, receive the rows)."""
    k = 0
    n = yield u[:0]
    while True:
        rows = u[k:k + n]
        k += n
        n = yield rows


def noise_rows(d: int, n_steps: int, seed: int, chunk_rows: int, scale: float = 1.0):
    """The rows of scale * noise_samples(d, n_steps, seed) in order, at most chunk_rows at a time: the same numbers
    (the generator is drawn in row order; the pre-emphasis carries the last w row from one block to the next, and the
    scale multiplies the finished value, as ``scale * noise_samples(...)`` does).

    The draws run ahead in a producer thread (``_drawn_blocks``: numpy's fills release the GIL, so the Gaussians of
    the next block are drawn on another core while the reader works on this one), into DRAW_BUFFERS reused buffers;
    the pre-emphasis and the scale are done here, in the reader's thread, in slices of about SLICE_BYTES (one pass
    through the cache instead of four through memory). The blocks yielded live in two buffers used in turn: a block
    stays valid while the next one is read (what a reader that keeps the previous block's last rows needs), and the
    reader may scale it in place. A failure of the generator is raised here; closing this generator stops the
    producer."""
    blocks = _drawn_blocks(seed, d, _block_sizes(n_steps + 3, chunk_rows))
    try:
        yield from _pre_emphasised(blocks, _in_turn(np.empty((2, chunk_rows, d))), scale)
    finally:
        blocks.close()


def _in_turn(bufs: np.ndarray):
    """Where the pre-emphasised blocks go: bufs[0] and bufs[1] in turn (send the row count, receive the rows)."""
    turn = 0
    n = yield bufs[0][:0]
    while True:
        rows = bufs[turn][:n]
        turn = 1 - turn
        n = yield rows


def _pre_emphasised(blocks, outs, scale: float):
    """The blocks of u = scale (w_k + c (w_k - w_{k-1})) (u_0 = 0: noise_samples doc) from the drawn blocks of w
    (_drawn_blocks), each written to outs.send(rows) and yielded. Per value the operations are d = w_k - w_{k-1},
    d *= c, d += w_k, d *= scale, on the flattened rows in slices of SLICE_BYTES (u_i = w_{i + d} - w_i in block 0,
    u_i = w_i - w_{i - d} after it, with w_{i - d} = prev, the last row of the block before, for the first row)."""
    next(outs)
    step = max(1, int(SLICE_BYTES // 8))
    prev = None
    for j, (w, release) in enumerate(blocks):
        first = j == 0
        d = w.shape[1]
        if first:
            prev = np.empty(d)
        u = outs.send(len(w) - first)
        wf, uf = w.reshape(-1), u.reshape(-1)
        off = d if first else 0                      # u's value i is w's value i + off minus the one a row before
        for a in range(0, uf.size, step):
            b = min(a + step, uf.size)
            cur, out = wf[a + off:b + off], uf[a:b]
            pa, pb = a + off - d, b + off - d
            if pa >= 0:
                np.subtract(cur, wf[pa:pb], out=out)
            elif pb <= 0:
                np.subtract(cur, prev[pa + d:pb + d], out=out)
            else:
                np.subtract(cur[:-pa], prev[pa + d:], out=out[:-pa])
                np.subtract(cur[-pa:], wf[:pb], out=out[-pa:])
            out *= PRE_EMPHASIS
            out += cur
            if scale != 1.0:
                out *= scale
        if first and len(u):
            u[0] = 0.0 * scale                       # what scale * (u with u[0] = 0) holds
        prev[:] = w[-1]
        release()
        if len(u):
            yield u


#: buffers of Gaussians the producer thread of noise_rows draws ahead into (one being read, the others filled)
DRAW_BUFFERS = 3
#: a block is pre-emphasised and scaled in slices of this many bytes of values (in cache between the passes)
SLICE_BYTES = 2 ** 18


def _drawn_blocks(seed: int, d: int, sizes: list[int]):
    """(w, release) for blocks of sizes[j] rows x d columns of numpy's PCG64 seeded with `seed`, drawn in order
    (the same numbers as one draw of sum(sizes) rows) by a producer thread into DRAW_BUFFERS buffers; w stays valid
    until release() is called, which hands its buffer back. An exception of the producer is raised in the reader;
    closing the generator stops the producer (it finishes the draw under way) and joins it."""
    rows = max(sizes, default=0)
    bufs = [np.empty((rows, d)) for _ in range(min(DRAW_BUFFERS, len(sizes)))]
    free: queue.SimpleQueue = queue.SimpleQueue()
    ready: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    for i in range(len(bufs)):
        free.put(i)

    def produce() -> None:
        try:
            rng = np.random.default_rng(seed)
            for n in sizes:
                i = free.get()
                if i is None or stop.is_set():
                    return
                rng.standard_normal(out=bufs[i][:n])
                ready.put((i, n))
        except BaseException as e:       # handed to the reader, which raises it
            ready.put(e)

    thread = threading.Thread(target=produce, name="spu-sim-noise-draws", daemon=True)
    thread.start()
    try:
        for _ in sizes:
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            i, n = item
            yield bufs[i][:n], partial(free.put, i)
    finally:
        stop.set()
        free.put(None)
        thread.join()


def noise_sample_block(d: int, n_steps: int, seed: int) -> SampleBlock:
    """noise_samples(d, n_steps, seed) as a SampleBlock (circuit.py): generated chunk by chunk when read, never held
    whole unless an engine materialises it (the same numbers, bit for bit)."""
    return SampleBlock((n_steps + 2, d), partial(noise_rows, d, n_steps, seed), what=f"noise samples (seed {seed})")


def noise_dacs(values_v, dt_s: float, held: bool = False) -> list[NoiseSource]:
    """(n, d) sample values in volts (an array or a SampleBlock) -> d NoiseSource elements ANOISE<i> on node nz<i>
    (file noise_<i>.txt); held=True: each sample is held for dt_s (a clocked DAC) instead of linearly interpolated.
    Element i plays column i - 1: a SampleColumn of a SampleBlock, a view of an array's column."""
    return noise_dac_bank(values_v, dt_s, held).elements()


def noise_dac_bank(values_v, dt_s: float, held: bool = False) -> ElementBank:
    """noise_dacs as one ElementBank (spu_sim.circuit; the samples its columns: circuit.Columns)."""
    d = values_v.shape[1]
    return ElementBank.of(NoiseSource, np.arange(1, d + 1), name="ANOISE{}", node="nz{}", model="noisesrc{}",
                          file_name=NOISE_FILE, samples_v=Columns(values_v), dt_s=float(dt_s), held=held)


def noise_dacs_into_sums(values_v: np.ndarray, dt_s: float, r_noise_ohm: np.ndarray) -> list:
    """The noise DACs (noise_dacs) and RN<i> from nz<i> into the summing node sum<i> (r_noise_ohm (d,)): the
    current noise of an integrator network."""
    return [x for bank in noise_dac_banks_into_sums(values_v, dt_s, r_noise_ohm) for x in bank.elements()]


def noise_dac_banks_into_sums(values_v, dt_s: float, r_noise_ohm: np.ndarray) -> list[ElementBank]:
    """noise_dacs_into_sums as two ElementBanks: the DACs, then the RN<i>."""
    d = values_v.shape[1]
    return [noise_dac_bank(values_v, dt_s),
            ElementBank.of(Resistor, np.arange(1, d + 1), name="RN{}", n_pos="nz{}", n_neg="sum{}",
                           r_ohm=np.asarray(r_noise_ohm, dtype=float)[:d])]
