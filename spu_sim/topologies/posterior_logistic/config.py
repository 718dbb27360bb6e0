"""The ``circuit`` section of topology ``posterior_logistic``: the posterior_gaussian section plus the
sigmoid element."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ...config.base import Strict, finite as _finite
from ..posterior_gaussian.config import PosteriorCircuitBase


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
