"""The noise DACs every topology injects: one XSPICE filesource per variable, playing seeded samples.

    u = noise_samples(d, n_steps, seed)                       # unit intensity, reproducible
    u = noise_sample_block(d, n_steps, seed)                  # the same numbers, generated when read (streamed)
    elements = noise_dacs(noise_v_rms * u, dt_s)              # ANOISE<i> drives node nz<i>

The topology connects node nz<i> to its circuit (through R_noise into a summing node: ``noise_dacs_into_sums``;
in series with a cell resistor, ...).
"""

from __future__ import annotations

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
    """
    w = np.random.default_rng(seed).standard_normal((n_steps + 3, d))
    u = _pre_emphasis(w)
    u[0] = 0.0
    return u


def _pre_emphasis(w: np.ndarray) -> np.ndarray:
    """w[1:] + c (w[1:] - w[:-1]) with one temporary (the same rounding: d = w1 - w0, d *= c, d += w1)."""
    u = np.subtract(w[1:], w[:-1])
    u *= PRE_EMPHASIS
    u += w[1:]
    return u


def noise_rows(d: int, n_steps: int, seed: int, chunk_rows: int):
    """The rows of noise_samples(d, n_steps, seed) in order, at most chunk_rows at a time: the same numbers (the
    generator is drawn in row order, into a reused buffer; the pre-emphasis carries the last w row from one block to
    the next). The blocks yielded live in two buffers used in turn: a block stays valid while the next one is read
    (what a reader that keeps the previous block's last rows needs), and the reader may scale it in place."""
    rng = np.random.default_rng(seed)
    total, k, prev = n_steps + 3, 0, None
    w_buf = np.empty((chunk_rows + 1, d))
    u_bufs = [np.empty((chunk_rows + 1, d)), np.empty((chunk_rows + 1, d))]
    turn = 0
    while k < total:
        c = min(chunk_rows + (prev is None), total - k)
        w = w_buf[:c]
        rng.standard_normal(out=w)
        u = u_bufs[turn][:c - (prev is None)]
        turn = 1 - turn
        if prev is None:   # the same operations as _pre_emphasis
            np.subtract(w[1:], w[:-1], out=u)
            u *= PRE_EMPHASIS
            u += w[1:]
            if len(u):
                u[0] = 0.0
        else:              # ... on [prev; w], without stacking them
            np.subtract(w[1:], w[:-1], out=u[1:])
            np.subtract(w[0], prev, out=u[0])
            u *= PRE_EMPHASIS
            u += w
        prev, k = w[-1].copy(), k + c
        if len(u):
            yield u


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
