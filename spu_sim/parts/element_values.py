"""What the fab delivers: the element-level maths of tolerance / mismatch, quantisation and temperature (one copy
for every topology; the knobs are the sections of spu_sim.parts.config).

Random draws: ``element_errors(seed, group, shape, ...)`` uses numpy PCG64 seeded with (seed, group id), so
every group has its own stream: the draw of one element does not depend on which other elements exist.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..errors import DesignError
from .config import ToleranceConfig


def is_default(c) -> bool:
    """True when no non-ideality knob of a ``circuit`` section (tolerance, quantization, temperature, opamp) is set:
    the nominal design is then used unchanged (bit-for-bit the default run)."""
    q, tol, tmp = c.quantization, c.tolerance, c.temperature
    return (c.opamp.model == "ideal" and tol.global_rel == 0 and tol.local_rel == 0 and q.r_bits is None
            and q.c_bits is None and q.dac_bits is None
            and (tmp.r_tc1_per_k == 0 and tmp.c_tc1_per_k == 0 or tmp.temp_c == tmp.tnom_c))


def group_rng(seed: int, group: str) -> np.random.Generator:
    """The random stream of one element group: numpy PCG64 seeded with (seed, crc32 of the group name)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(group.encode())])


def element_errors(seed: int, group: str, shape: tuple[int, ...], global_rel: float, local_rel: float,
                   kind: str | None = None) -> np.ndarray:
    """Multiplicative factors (1 + g)(1 + l) of shape ``shape``, reproducible from (seed, group).

    g: one draw per element *kind* (``kind``, default the group's first letter: R, C, L), shared by every
    group of that kind, from the stream (seed, "global:" + kind); l: one draw per element from the stream
    (seed, group), drawn for the full shape so that element [i, j] gets the same error whatever else exists.
    """
    kind = kind or group[0]
    g = group_rng(seed, "global:" + kind).standard_normal() * global_rel if global_rel else 0.0
    l = group_rng(seed, group).standard_normal(shape) * local_rel if local_rel else np.zeros(shape)
    return (1.0 + g) * (1.0 + l)


def check_tolerance_draw(tol: ToleranceConfig, **values: np.ndarray) -> None:
    """DesignError naming the tolerance knobs when a drawn element value (inf = no element) is <= 0: the factor
    (1 + g)(1 + l) of a large global_rel / local_rel can be negative, a non-physical element."""
    for what, v in values.items():
        v = np.asarray(v, dtype=float)
        bad = np.isfinite(v) & ~(v > 0)
        if np.any(bad):
            raise DesignError(f"circuit.tolerance: global_rel = {tol.global_rel:g}, local_rel = {tol.local_rel:g} (seed "
                              f"{tol.seed}) draws {what} = {float(v[bad].min()):.3g} <= 0, not physical; lower the "
                              "tolerance (factors (1 + g)(1 + l) turn negative at draws near -1) or change the seed")


def quantize_grid(values: np.ndarray, lsb: float, max_value: float | None = None) -> np.ndarray:
    """Round to the grid k * lsb (k integer), optionally clipped to +/- max_value."""
    v = np.asarray(values, dtype=float)
    if max_value is not None:
        v = np.clip(v, -max_value, max_value)
    return np.round(v / lsb) * lsb


def grid_codes(values: np.ndarray, lsb: float, max_value: float | None = None) -> np.ndarray:
    """The integer codes k of quantize_grid (values clipped to +/- max_value, then k = round(v / lsb))."""
    v = np.asarray(values, dtype=float)
    if max_value is not None:
        v = np.clip(v, -max_value, max_value)
    return np.round(v / lsb).astype(np.int64)


def conductance_codes(r_ohm: np.ndarray, r_min_ohm: float, bits: int) -> np.ndarray:
    """The integer codes k of quantize_conductance (conductance k G_max / (2^bits - 1), k <= 2^bits - 1; k = 0:
    no resistor); a resistor that does not exist (inf) has code 0."""
    g = np.where(np.isfinite(r_ohm), 1.0 / np.asarray(r_ohm, dtype=float), 0.0)
    lsb = (1.0 / r_min_ohm) / (2 ** bits - 1)
    return np.minimum(np.round(g / lsb), 2 ** bits - 1).astype(np.int64)


def quantize_conductance(r_ohm: np.ndarray, r_min_ohm: float, bits: int) -> np.ndarray:
    """Resistors (inf = none) -> resistors whose conductance lies on k G_max / (2^bits - 1); k = 0 -> inf."""
    g = np.where(np.isfinite(r_ohm), 1.0 / np.asarray(r_ohm, dtype=float), 0.0)
    lsb = (1.0 / r_min_ohm) / (2 ** bits - 1)
    gq = np.minimum(quantize_grid(g, lsb), 1.0 / r_min_ohm)
    with np.errstate(divide="ignore"):
        return np.where(gq > 0, 1.0 / np.where(gq > 0, gq, 1.0), np.inf)


def quantize_resistor_groups(values: dict[str, np.ndarray], keys, r_min_ohm: float, bits: int,
                             keep: tuple[str, ...] = ()) -> None:
    """Quantise the programmable resistor arrays values[k] (inf = none) for k in keys, in place
    (quantize_conductance); a resistor of a group in ``keep`` (one that must exist, e.g. an input resistor)
    rounding to none is a DesignError naming r_bits."""
    for k in keys:
        had = np.isfinite(values[k])
        values[k] = quantize_conductance(values[k], r_min_ohm, bits)
        if k in keep and np.any(had & ~np.isfinite(values[k])):
            raise DesignError(f"circuit.quantization.r_bits = {bits}: a resistor of group {k} rounds to no "
                              "resistor; add bits")


def temperature_factor(tc1_per_k: float, temp_c: float, tnom_c: float) -> float:
    """Linear temperature coefficient: value(T) = value(Tnom) (1 + tc1 (T - Tnom)); a factor <= 0 (a negative
    element value) is a DesignError naming the knobs."""
    f = 1.0 + tc1_per_k * (temp_c - tnom_c)
    if not f > 0:
        raise DesignError(f"circuit.temperature: a tc1 of {tc1_per_k:g} /K at temp_c = {temp_c:g} (tnom_c = {tnom_c:g}) "
                          f"scales element values by {f:.3g} <= 0 (not physical); use a temperature or coefficient with "
                          "|tc1 (temp_c - tnom_c)| < 1")
    return f
