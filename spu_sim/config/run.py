"""The run config of simulate / compare / netlist / noise: problem, circuit, simulation, readout.

``circuit`` is validated by the topology registry: ``circuit.topology`` names a registered topology
(spu_sim.topologies) and the rest of the section is validated by that topology's own config model, so a new
topology brings its section with it and nothing here changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from ..errors import ConfigError
from .base import Strict, finite as _finite
from .problem import ProblemConfig



class SimulationConfig(Strict):
    """What ngspice runs.

    t_stop_tau: transient length in problem time units tau (the tau of dx = -(A x - b) dt/tau).
    burn_in_tau: discarded before averaging; default: 10 relaxation times of the slowest mode, capped
    at half the run. noise_dt_tau: step of the injected noise samples; default 1/(noise_oversample *
    lambda_max). backend: ``ngspice-shared`` (in-process through PySpice) or ``ngspice-subprocess``
    (plain ``ngspice -b -r``). analyses: which of op / tran to run.
    """

    t_stop_tau: float = Field(default=100.0, gt=0)
    burn_in_tau: float | None = Field(default=None, ge=0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    noise_dt_tau: float | None = Field(default=None, gt=0)
    noise_oversample: float = Field(default=50.0, ge=2)
    max_noise_samples: int = Field(default=2_000_000, ge=10)
    backend: str = "ngspice-shared"
    analyses: list[Literal["op", "tran"]] = ["op", "tran"]
    timeout_s: float | None = Field(default=None, gt=0)
    reltol: float = Field(default=1e-4, gt=0, le=1e-2)

    _fin = field_validator("t_stop_tau", "burn_in_tau", "noise_dt_tau")(_finite)

    @field_validator("backend")
    @classmethod
    def _engine(cls, v: str) -> str:
        from .. import engines  # noqa: PLC0415 - the engine registry
        if v not in engines.names():
            raise ValueError(f"{v!r} is not an engine; choose one of: {', '.join(engines.names())}")
        return v

    @model_validator(mode="after")
    def _burn(self) -> "SimulationConfig":
        if self.burn_in_tau is not None and self.burn_in_tau >= self.t_stop_tau:
            raise ValueError(f"burn_in_tau ({self.burn_in_tau:g}) must be below t_stop_tau ({self.t_stop_tau:g})")
        if not self.analyses:
            raise ValueError("analyses: name at least one of op, tran")
        return self


class AdcConfig(Strict):
    """ADC of the readout: ``bits`` null = ideal (no quantisation); range_v: full scale +/- range_v
    (default 1.25 * the design's voltage swing); values beyond it clip."""

    bits: int | None = Field(default=None, ge=1, le=32)
    range_v: float | None = Field(default=None, gt=0)


class ReadoutConfig(Strict):
    """sample_dt_tau: ADC sample period in tau (default: the noise step)."""

    sample_dt_tau: float | None = Field(default=None, gt=0)
    adc: AdcConfig = AdcConfig()


class Config(Strict):
    """The whole run config. ``circuit`` holds an instance of the chosen topology's config model."""

    problem: Any
    circuit: Any = Field(default=None, validate_default=True)
    simulation: SimulationConfig = SimulationConfig()
    readout: ReadoutConfig = ReadoutConfig()
    # folder that relative paths in the config are resolved against (not a YAML key)
    _base_dir: Path = PrivateAttr(default=Path("."))

    @field_validator("problem", mode="before")
    @classmethod
    def _problem(cls, v: Any) -> Any:
        """Validate the section with the config model of the problem kind it names (default linear)."""
        from ..problem import problem_config  # noqa: PLC0415 - the problem-kind registry
        return problem_config(v)

    @field_validator("circuit", mode="before")
    @classmethod
    def _circuit(cls, v: Any) -> Any:
        """Validate the section with the config model of the topology it names (default opamp)."""
        from ..topologies import circuit_config  # noqa: PLC0415 - the topology registry
        return circuit_config(v)

    @model_validator(mode="after")
    def _vector_of_topology(self) -> "Config":
        """A topology without a mean takes no vector (it would be a knob with no element); one with a mean
        needs it."""
        from ..topologies import get_topology  # noqa: PLC0415
        topo = get_topology(self.circuit.topology)
        kind = getattr(self.problem, "kind", "linear")
        if kind not in topo.problem_kinds:
            raise ConfigError(f"problem.kind: {kind!r} does not apply to topology {topo.name} (it takes "
                              f"{', '.join(topo.problem_kinds)}); change problem.kind or circuit.topology")
        if not isinstance(self.problem, ProblemConfig):
            return self
        if not topo.has_mean and self.problem.vector is not None:
            raise ConfigError(f"problem.vector: topology {topo.name} has no mean (it samples N(0, kappa A^-1)), so b "
                              "has no element; remove problem.vector")
        if topo.has_mean and self.problem.vector is None:
            raise ConfigError(f"problem.vector: required key is missing (topology {topo.name} solves A x = b)")
        if not topo.has_mean and self.problem.x0 == "b":
            raise ConfigError(f"problem.x0: 'b' needs a vector, which topology {topo.name} has none of; use 'zero' "
                              "or a list")
        return self

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what results are stored with)."""
        return self.model_dump(mode="json")


