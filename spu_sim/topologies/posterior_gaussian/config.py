"""The ``circuit`` section of the posterior topologies: opamp's integrator ranges and op-amp model
(spu_sim.topologies.opamp.config) and the shared tolerance / quantization / temperature sections
(posterior_logistic adds its sigmoid element)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ..elements import CircuitBase
from ..opamp.config import IntegratorConfig, OpampConfig


class PosteriorCircuitBase(CircuitBase):
    integrator: IntegratorConfig = IntegratorConfig()
    opamp: OpampConfig = OpampConfig()

    @model_validator(mode="after")
    def _knobs(self) -> "PosteriorCircuitBase":
        if self.temperature.l_tc1_per_k != 0:
            raise ValueError(f"temperature.l_tc1_per_k does not apply to topology {self.topology} (no inductors); "
                             "remove it")
        if self.quantization.c_bits is not None:
            raise ValueError(f"quantization.c_bits does not apply to topology {self.topology} (no programmable "
                             "capacitors); remove it")
        return self


class GaussianCircuitConfig(PosteriorCircuitBase):
    topology: Literal["posterior_gaussian"] = "posterior_gaussian"
