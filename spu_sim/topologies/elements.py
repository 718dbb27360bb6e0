"""What every topology shares at the topology level: the base of its ``circuit`` section and the closing lines
of its netlist header. The parts themselves (element-value maths, op-amps, DACs, noise DACs) are spu_sim.parts.

``CircuitBase`` is the base of every topology's config model: ``topology`` plus the shared sections
tolerance, quantization and temperature (spu_sim.parts.config). A topology adds its own sections and refuses,
in its own validator, the shared knobs it has no element for.
"""

from __future__ import annotations

from ..config.base import Strict
from ..parts.config import QuantizationConfig, TemperatureConfig, ToleranceConfig
from ..parts.opamp import header_line


class CircuitBase(Strict):
    """The shared part of every topology's ``circuit`` section. thermal_noise: the 4kT/R current noise of every
    resistor at temperature.temp_c in the transient (spu_sim.parts.intrinsic_noise; default off)."""

    topology: str
    tolerance: ToleranceConfig = ToleranceConfig()
    quantization: QuantizationConfig = QuantizationConfig()
    temperature: TemperatureConfig = TemperatureConfig()
    thermal_noise: bool = False


def notes_lines(notes: dict) -> list[str]:
    """The netlist-header line naming every non-ideality applied (none for a nominal design)."""
    if not notes:
        return []
    return ["Non-idealities (values below are realised element values): " + "; ".join(f"{k} = {v}" for k, v in notes.items())]


def nonideal_header(design) -> list[str]:
    """notes_lines of the design's notes and, with an op-amp macromodel (design.macro), the line naming its
    parameters (none for a nominal design)."""
    out = notes_lines(design.notes)
    if out and design.macro is not None:
        out.append(header_line(design.macro))
    return out


def header_tail(design, extra: list[str] = (), units: str = "ohm, farad, volt, second") -> list[str]:
    """The closing lines of every topology's netlist header: the pruned entries (when the design pruned any), the
    topology's ``extra`` lines (non-idealities) and the units (spu_sim.spice adds how to run the file)."""
    pruned = getattr(design, "pruned", None)
    lines = [f"Pruned (no resistor, below prune_below_relative): {len(pruned)} entries"] if pruned else []
    return lines + list(extra) + [f"Units: {units}."]
