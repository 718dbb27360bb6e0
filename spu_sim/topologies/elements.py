"""What every topology's elements share: tolerance/mismatch, quantisation and temperature knobs, and the
element-level maths that applies them (one copy for all topologies).

``CircuitBase`` is the base of every topology's config model: ``topology`` plus the shared sections
tolerance, quantization and temperature. A topology adds its own sections and refuses, in its own
validator, the shared knobs it has no element for.

Random draws: ``element_errors(seed, group, shape, ...)`` uses numpy PCG64 seeded with (seed, group id), so
every group has its own stream: the draw of one element does not depend on which other elements exist.
"""

from __future__ import annotations

import zlib

import numpy as np
from pydantic import Field, field_validator

from ..config.base import Strict, finite as _finite


class ToleranceConfig(Strict):
    """Component tolerance and mismatch: each element value is multiplied by (1 + g)(1 + l), with g one
    Gaussian draw of rms ``global_rel`` per element kind (process) and l one draw of rms ``local_rel`` per
    element (mismatch). Drawn from ``seed`` (numpy PCG64, one stream per element group, so a draw is
    reproducible and does not depend on which other elements exist). 0 and 0 = exact nominal values."""

    global_rel: float = Field(default=0.0, ge=0, lt=0.5)
    local_rel: float = Field(default=0.0, ge=0, lt=0.5)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    _fin = field_validator("global_rel", "local_rel")(_finite)


class QuantizationConfig(Strict):
    """Programming resolution. r_bits: every programmable conductance (coupling resistors, R_in) is
    rounded to the grid k * G_max / (2^bits - 1), G_max = 1 / circuit.integrator.r_min_ohm (k = 0 removes
    the resistor). c_bits: capacitors on the grid k * C_nom / 2^(bits-1) (C_f itself is on the grid, so this
    only matters with the RLC topology's coupling banks). dac_bits: the b-DAC voltages rounded to
    2 v_dac_max_v / 2^bits steps and clipped to +/- v_dac_max_v. null = exact."""

    r_bits: int | None = Field(default=None, ge=1, le=32)
    c_bits: int | None = Field(default=None, ge=1, le=32)
    dac_bits: int | None = Field(default=None, ge=1, le=32)


class TemperatureConfig(Strict):
    """Operating temperature. Resistors scale by 1 + r_tc1_per_k (temp_c - tnom_c), capacitors by
    1 + c_tc1_per_k (temp_c - tnom_c), inductors (rlc topology only) by 1 + l_tc1_per_k (temp_c - tnom_c)
    (values written into the netlist); temp_c also sets kT of the thermal noise in the ``.noise`` analysis
    (ngspice ``.temp``)."""

    temp_c: float = Field(default=27.0, gt=-273.15)
    tnom_c: float = Field(default=27.0, gt=-273.15)
    r_tc1_per_k: float = 0.0
    c_tc1_per_k: float = 0.0
    l_tc1_per_k: float = 0.0

    _fin = field_validator("temp_c", "tnom_c", "r_tc1_per_k", "c_tc1_per_k", "l_tc1_per_k")(_finite)



class CircuitBase(Strict):
    """The shared part of every topology's ``circuit`` section."""

    topology: str
    tolerance: ToleranceConfig = ToleranceConfig()
    quantization: QuantizationConfig = QuantizationConfig()
    temperature: TemperatureConfig = TemperatureConfig()

    def temperature_changes_values(self) -> bool:
        t = self.temperature
        return t.temp_c != t.tnom_c and (t.r_tc1_per_k != 0 or t.c_tc1_per_k != 0 or t.l_tc1_per_k != 0)


# ---------------------------------------------------------------- element-level maths


def group_rng(seed: int, group: str) -> np.random.Generator:
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


def check_tolerance_draw(tol: "ToleranceConfig", **values: np.ndarray) -> None:
    """DesignError naming the tolerance knobs when a drawn element value (inf = no element) is <= 0: the factor
    (1 + g)(1 + l) of a large global_rel / local_rel can be negative, a non-physical element."""
    from ..errors import DesignError  # noqa: PLC0415
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
    from ..errors import DesignError  # noqa: PLC0415
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
        from ..errors import DesignError  # noqa: PLC0415
        raise DesignError(f"circuit.temperature: a tc1 of {tc1_per_k:g} /K at temp_c = {temp_c:g} (tnom_c = {tnom_c:g}) "
                          f"scales element values by {f:.3g} <= 0 (not physical); use a temperature or coefficient with "
                          "|tc1 (temp_c - tnom_c)| < 1")
    return f


def notes_lines(notes: dict) -> list[str]:
    """The netlist-header line naming every non-ideality applied (none for a nominal design)."""
    if not notes:
        return []
    return ["Non-idealities (values below are realised element values): " + "; ".join(f"{k} = {v}" for k, v in notes.items())]


def header_tail(design, extra: list[str] = (), units: str = "ohm, farad, volt, second") -> list[str]:
    """The closing lines of every topology's netlist header: the pruned entries (when the design pruned any), the
    topology's ``extra`` lines (non-idealities), the units and how to run the netlist on its own."""
    pruned = getattr(design, "pruned", None)
    lines = [f"Pruned (no resistor, below prune_below_relative): {len(pruned)} entries"] if pruned else []
    return lines + list(extra) + [f"Units: {units}. Run: ngspice -b -r out.raw netlist.cir"]
