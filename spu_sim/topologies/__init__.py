"""Topologies: one folder each, registered once (contracts and registry in base.py).

    topo = get_topology(cfg.circuit.topology)
    design = topo.design(problem, cfg.circuit, cfg.simulation)
    circuit = topo.build_circuit(design, request)

Built in: opamp (op-amp integrators coupled by resistors), rlc (RLC cells coupled by capacitor banks),
posterior_gaussian / posterior_logistic (Bayesian posterior samplers, spu_sim.posterior).
Another topology registers with ``register(MyTopology())`` from anywhere (tests/ does).
"""

from .base import CircuitBase, CircuitRequest, Design, Topology, circuit_config, get_topology, names, register
from . import opamp, rlc  # noqa: E402,F401  (the built-in topologies register themselves)
from . import posterior_gaussian  # noqa: E402,F401
from . import posterior_logistic  # noqa: E402,F401

__all__ = ["CircuitBase", "CircuitRequest", "Design", "Topology", "circuit_config", "get_topology", "names",
           "register"]
