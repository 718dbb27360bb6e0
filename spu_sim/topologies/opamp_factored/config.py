"""The ``circuit`` section of topology ``opamp_factored``: the same integrator element ranges and op-amp model
as ``opamp`` (spu_sim.parts.config, shared, not copied), the wires of the J / H / J^T arrays (``wires``), plus the shared tolerance / quantization /
temperature sections. The integrator ranges apply to every resistor array (J, H, J^T, leak, R_in, R_noise);
prune_below_relative drops J and H entries below that fraction of the array's largest entry."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ...parts.config import IntegratorConfig, OpampConfig, WiresConfig, check_opamp_knobs
from ..elements import CircuitBase


class FactoredCircuitConfig(CircuitBase):
    topology: Literal["opamp_factored"] = "opamp_factored"
    integrator: IntegratorConfig = IntegratorConfig()
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
