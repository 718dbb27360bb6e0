"""The run configuration of simulate / compare / netlist / noise: problem + circuit + simulation + readout.

It sits above the registries and validates its sections through them: ``problem`` by the model of the problem
kind it names (spu_sim.problems), ``circuit`` by the model of the topology it names (spu_sim.topologies),
``simulation.backend`` against the engines (spu_sim.engines); ``simulation`` and ``readout`` are the shared
section models of spu_sim.config. A new topology, problem kind or engine brings its section with it and
nothing here changes.

    cfg = load_run_config("configs/opamp_d8.yaml")     # or a dict with the same sections, or a Config
    problem = build_problem_from(cfg)                  # its Problem, without designing a circuit
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from .config import ReadoutConfig, SimulationConfig, Strict, load_config
from .engines import ENGINES
from .errors import ConfigError
from .problems import Problem, ProblemConfig, build_problem, problem_config
from .topologies import TOPOLOGIES, circuit_config


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
        return problem_config(v)

    @field_validator("circuit", mode="before")
    @classmethod
    def _circuit(cls, v: Any, info: ValidationInfo) -> Any:
        """Validate the section with the config model of the topology it names; without ``circuit.topology`` the one
        topology that takes the problem's kind when exactly one does (posterior_gaussian for gaussian_posterior,
        opamp_factored for factored), else opamp."""
        problem = info.data.get("problem")
        if problem is not None and (v is None or (isinstance(v, dict) and "topology" not in v)):
            kind = getattr(problem, "kind", "linear")
            takes = [name for name, t in TOPOLOGIES.items() if kind in t.problem_kinds]
            if len(takes) == 1:
                v = {**(v or {}), "topology": takes[0]}
        return circuit_config(v, info.context)

    @field_validator("simulation")
    @classmethod
    def _engine(cls, v: SimulationConfig) -> SimulationConfig:
        """``simulation.backend`` names a registered engine."""
        if v.backend not in ENGINES:
            raise ConfigError(ENGINES.unknown(v.backend, "simulation.backend"))
        return v

    @model_validator(mode="after")
    def _transient_knobs(self) -> "Config":
        """The readout and burn-in act on the transient only: set without ``tran`` in simulation.analyses they would
        be silently ignored."""
        if "tran" in self.simulation.analyses:
            return self
        for key, value in (("readout.sample_dt_tau", self.readout.sample_dt_tau), ("readout.adc.bits", self.readout.adc.bits),
                           ("simulation.burn_in_tau", self.simulation.burn_in_tau)):
            if value is not None:
                raise ConfigError(f"{key} = {value:g} acts on the transient only, and simulation.analyses has no tran "
                                  f"(the .op is read exactly); add tran to simulation.analyses or remove {key}")
        return self

    @model_validator(mode="after")
    def _vector_of_topology(self) -> "Config":
        """A topology without a mean takes no vector (it would be a knob with no element); one with a mean
        needs it."""
        topo = TOPOLOGIES.get(self.circuit.topology)
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


def load_run_config(source: Any, base_dir: str | Path | None = None) -> Config:
    """A run config from a YAML path, a dict or an existing Config, validated (one-line ConfigError naming the
    field otherwise); relative paths inside it resolve against the YAML file's folder (for a dict: ``base_dir``, the
    folder of the file it came from, or else the current folder)."""
    return load_config(source, Config, base_dir)


def build_problem_from(config: Any) -> Problem:
    """The problem of a run config (YAML path, dict or Config), without designing a circuit."""
    cfg = load_run_config(config)
    return build_problem(cfg.problem, cfg.base_dir)
