"""The ``circuit`` sections of the posterior topologies: the integrator ranges and op-amp model of
spu_sim.parts.config and the shared tolerance / quantization / temperature sections; posterior_logistic adds
its sigmoid element."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...config.base import Strict, finite as _finite
from ...parts.config import IntegratorConfig, OpampConfig, WiresConfig, check_opamp_knobs
from ..elements import CircuitBase


class PosteriorCircuitBase(CircuitBase):
    integrator: IntegratorConfig = IntegratorConfig()
    opamp: OpampConfig = OpampConfig()
    wires: WiresConfig = WiresConfig()

    @model_validator(mode="after")
    def _knobs(self) -> "PosteriorCircuitBase":
        if self.temperature.l_tc1_per_k != 0:
            raise ValueError(f"temperature.l_tc1_per_k does not apply to topology {self.topology} (no inductors); "
                             "remove it")
        if self.quantization.c_bits is not None:
            raise ValueError(f"quantization.c_bits does not apply to topology {self.topology} (no programmable "
                             "capacitors); remove it")
        check_opamp_knobs(self.opamp, self.topology, ideal_uses=("supply_v", "i_quiescent_a"))
        return self


class GaussianCircuitConfig(PosteriorCircuitBase):
    topology: Literal["posterior_gaussian"] = "posterior_gaussian"


class SigmoidConfig(Strict):
    """The sigmoid element on each residual line. ``logistic``: a behavioural source (ngspice B source)
    computing v_out_v / (1 + exp(-z)) exactly; ``hard``: the piecewise-linear v_out_v clip(1/2 + z/4, 0, 1)
    of a clipped (diode-limited) amplifier, the cheapest circuit with the logistic's value and slope at 0.
    v_out_v: the element's full-scale output (default: circuit.integrator.v_swing_v)."""

    model: Literal["logistic", "hard"] = "logistic"
    v_out_v: float | None = Field(default=None, gt=0)

    _fin = field_validator("v_out_v")(_finite)


class LogisticCircuitConfig(PosteriorCircuitBase):
    topology: Literal["posterior_logistic"] = "posterior_logistic"
    sigmoid: SigmoidConfig = SigmoidConfig()
