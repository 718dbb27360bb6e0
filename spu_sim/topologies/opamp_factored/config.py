"""The ``circuit`` section of topology ``opamp_factored``: the same integrator element ranges and op-amp model
as ``opamp`` (spu_sim.parts.config, shared, not copied), the wires of the J / H / J^T arrays (``wires``), plus the shared tolerance / quantization /
temperature sections. The integrator ranges apply to every resistor array (J, H, J^T, leak, R_in, R_noise);
prune_below_relative drops J and H entries below that fraction of the array's largest entry whose resistor would
exceed r_max_ohm. Its default (null) is derived from the resistor resolution: one step of a ``r_bits`` programmable
conductance relative to the largest, 1 / (2^r_bits - 1), with quantization.r_bits or, when that is null (exact
resistors), DEFAULT_RESISTOR_BITS = 16 (the resolution spu_sim.train.timing programs): an entry below one step of the
largest cannot be programmed anyway, so a realistic GGN factor runs without a hand-set threshold."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ...parts.config import IntegratorConfig, OpampConfig, WiresConfig, check_opamp_knobs
from ..elements import CircuitBase


DEFAULT_RESISTOR_BITS = 16


class FactoredIntegratorConfig(IntegratorConfig):
    """The shared integrator ranges; prune_below_relative null = derived from the resistor resolution (module doc)."""

    prune_below_relative: float | None = Field(default=None, ge=0, lt=1)


class FactoredCircuitConfig(CircuitBase):
    topology: Literal["opamp_factored"] = "opamp_factored"
    integrator: FactoredIntegratorConfig = FactoredIntegratorConfig()
    opamp: OpampConfig = OpampConfig()
    wires: WiresConfig = WiresConfig()

    @model_validator(mode="after")
    def _knobs(self) -> "FactoredCircuitConfig":
        if self.temperature.l_tc1_per_k != 0:
            raise ValueError("temperature.l_tc1_per_k does not apply to topology opamp_factored (no inductors); "
                             "remove it")
        if self.quantization.c_bits is not None:
            raise ValueError("quantization.c_bits does not apply to topology opamp_factored (its only capacitors are"
                             " the fixed integrator capacitors); remove it")
        check_opamp_knobs(self.opamp, "opamp_factored")
        return self

    @property
    def prune_below_relative(self) -> float:
        """The prune threshold in use: integrator.prune_below_relative, or 1 / (2^bits - 1) of the resistor bits."""
        if self.integrator.prune_below_relative is not None:
            return float(self.integrator.prune_below_relative)
        bits = self.quantization.r_bits or DEFAULT_RESISTOR_BITS
        return 1.0 / (2 ** bits - 1)
