"""The topology registry and contracts (spu_sim.topologies imports this, then the built-in topologies).

Topologies: one folder each (config section, design, non-idealities, circuit builder, linear model, hooks),
each registered once in its own package with ``TOPOLOGIES.add(MyTopology())``. Nothing outside this package
compares topology names.

    topo = TOPOLOGIES.get(cfg.circuit.topology)
    design = topo.design(problem, cfg.circuit, cfg.simulation)     # element values, scaling, quantisation
    circuit = topo.build_circuit(design, request)                    # spu_sim.circuit.Circuit

A topology is an instance of a ``Topology`` subclass with
    name            the ``circuit.topology`` value
    config_model    its ``circuit`` section: a subclass of elements.CircuitBase with ``topology: Literal[name]``
    has_mean        False for a topology that samples N(0, kappa A^-1) only (it then takes no problem.vector)
    problem_kinds   the problem kinds it accepts (spu_sim.problems; default linear)
    design()        Problem + its section + the simulation section -> a design (the ``Design`` protocol)
    build_circuit() design + CircuitRequest -> Circuit
and optional hooks with do-nothing defaults: ``element_info`` (the roles of elements.csv), ``circuit_arrays`` (extra result.npz arrays), ``circuit_metrics``
(extra compare metrics) and ``noise`` (the small-signal noise analysis, spu_sim.analyses.noise).

``TOPOLOGIES.add(topology)`` adds one (a test registers its own from tests/); the config's ``circuit`` section
is validated by the registered model of the name it gives.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from ..circuit import Op, Tran
from ..config import format_validation_error
from ..errors import ConfigError
from ..ideal import ou_sde
from ..registry import Registry
from .elements import CircuitBase

DEFAULT_TOPOLOGY = "opamp"


class Design(Protocol):
    """What the pipeline, readout and compare read from every topology's design.

    d, problem; tau_s (seconds per tau); noise_dt_tau (noise-sample step in tau); has_noise; noise_v_rms;
    v_swing_v (the ADC's default full scale is 1.25 of it); readout_nodes; to_problem_units(volts);
    A_realized, b_realized, kappa_realized (what the element values implement, problem units);
    target_sde() (the process asked for), realized_sde() (what the element values implement), effective_sde()
    (what the circuit implements with its non-ideal parts, the judge of *_vs_realized); x0_state;
    slowest_rate_tau (the slowest decay rate, for the default burn-in); describe() (design.json).
    """

    d: int
    tau_s: float
    noise_dt_tau: float
    has_noise: bool
    v_swing_v: float
    readout_nodes: list[str]

    def to_problem_units(self, v: np.ndarray) -> np.ndarray: ...
    def describe(self) -> dict[str, Any]: ...


def replace_keeping_cache(design, **changes):
    """``dataclasses.replace(design, **changes)`` that carries over the values of design's ``cached_property``
    attributes already computed (dataclasses.replace drops them: a design on wires would solve its line networks
    again for every copy). Only for changes that none of those cached values depends on (the caller's promise:
    e.g. the intrinsic-noise spec or a header number added to a design whose element values are final)."""
    new = dataclasses.replace(design, **changes)
    for name, value in vars(design).items():
        if isinstance(getattr(type(design), name, None), cached_property):
            new.__dict__[name] = value
    return new


class OuDesign:
    """The defaults of the Design protocol for a design of an overdamped OU process (a mixin of the design
    dataclasses; a design overrides what differs): the target is the problem's OU, the circuit implements
    ``realized_sde()`` (which the design defines), the SDE state starts at problem.x0, and the slowest rate is
    that of A_realized."""

    def target_sde(self):
        """The process the user asked for: dx = -(A x - b) dt + sqrt(2 kappa) dW (t in tau)."""
        return ou_sde(self.problem.A, self.problem.b, self.problem.kappa)

    def effective_sde(self):
        """The process the circuit implements (default: the realised one)."""
        return self.realized_sde()

    @cached_property
    def slowest_rate_tau(self) -> float:
        """Re lambda_min of the realised drift (per tau; computed once per design)."""
        return float(np.min(np.real(np.linalg.eigvals(self.A_realized))))

    @property
    def x0_state(self) -> np.ndarray:
        """Initial state of the SDE (the observed variables are its first d components)."""
        return self.problem.x0


@dataclass(frozen=True)
class CircuitRequest:
    """What to build besides the elements: analyses (op / tran), the transient's length and output step
    (seconds), ngspice's reltol, and the unit-intensity noise samples (n, d) the noise DACs play (None: no
    transient noise sources)."""

    analyses: tuple[str, ...]
    t_stop_s: float
    step_s: float
    reltol: float
    noise_u: np.ndarray | None = None

    def integrator_analyses(self, noise_step_s: float | None) -> list:
        """Op and/or Tran as requested, for a circuit with a DC operating point: the transient's largest step is
        the noise-sample step (the noise DACs must be resolved), else ten output steps."""
        out: list = [Op()] if "op" in self.analyses else []
        if "tran" in self.analyses:
            out.append(Tran(self.step_s, self.t_stop_s, noise_step_s or self.step_s * 10))
        return out


class Topology:
    """Base class of a topology (see the module doc); subclasses set the class attributes and methods."""

    name: str = ""
    config_model: type[CircuitBase] = CircuitBase
    has_mean: bool = True
    #: the problem kinds (spu_sim.problems) this topology can realise
    problem_kinds: tuple[str, ...] = ("linear",)
    #: the small-signal noise analysis hooks (an object with the methods spu_sim.analyses.noise uses) or None
    noise: Any = None

    def design(self, problem, circuit, simulation) -> Design:
        raise NotImplementedError

    def build_circuit(self, design, request: CircuitRequest):
        raise NotImplementedError

    def n_elements(self, design) -> int:
        """An estimate of the circuit's element count, for the limits checked before a run (default: dense)."""
        return design.d ** 2 + 10 * design.d

    def element_info(self, design) -> tuple[dict, list]:
        """What each element realises, for elements.csv (spu_sim.parts.element_table): ({element name:
        ElementInfo}, [MissingElement] for entries pruned or dropped). Default: none (the table then gives each
        element its netlist section as its role)."""
        return {}, []

    def circuit_arrays(self, design, problem, plots: dict, arrays: dict) -> dict[str, np.ndarray]:
        """Extra result.npz arrays (default none)."""
        return {}

    def circuit_metrics(self, design, problem, arrays: dict) -> dict[str, float]:
        """Extra compare metrics (default none)."""
        return {}


TOPOLOGIES: Registry[Topology] = Registry("a topology", "circuit.topology")


def circuit_config(section: Any, context: dict | None = None) -> CircuitBase:
    """The ``circuit`` section validated by the config model of the topology it names (default opamp); context: the
    validation context of the whole config (``base_dir``: the folder relative file paths are relative to)."""
    if isinstance(section, CircuitBase):
        return section
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError("circuit: must be a mapping (topology, and that topology's sections)")
    name = section.get("topology", DEFAULT_TOPOLOGY)
    model = TOPOLOGIES.get(name).config_model
    try:
        return model.model_validate({**section, "topology": name}, context=context)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, root="circuit", model=model)) from None
