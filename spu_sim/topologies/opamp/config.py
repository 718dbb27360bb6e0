"""The ``circuit`` section of topology ``opamp``: integrator element ranges and the op-amp model
(spu_sim.parts.config), the wires of its crossbars (``wires``), plus the shared tolerance / quantization / temperature sections
(spu_sim.topologies.elements.CircuitBase)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ...parts.config import IntegratorConfig, OpampConfig, WiresConfig, check_opamp_knobs
from ..elements import CircuitBase


class OpampCircuitConfig(CircuitBase):
    topology: Literal["opamp"] = "opamp"
    integrator: IntegratorConfig = IntegratorConfig()
    opamp: OpampConfig = OpampConfig()
    wires: WiresConfig = WiresConfig()

    @model_validator(mode="after")
    def _knobs(self) -> "OpampCircuitConfig":
        if self.temperature.l_tc1_per_k != 0:
            raise ValueError("temperature.l_tc1_per_k does not apply to topology opamp (no inductors); remove it")
        check_opamp_knobs(self.opamp, "opamp")
        return self
