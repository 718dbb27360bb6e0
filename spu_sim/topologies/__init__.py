"""Topologies: one folder each, registered once (contracts and registry in base.py).

    topo = get_topology(cfg.circuit.topology)
    design = topo.design(problem, cfg.circuit, cfg.simulation)
    circuit = topo.build_circuit(design, request)

Built in: opamp (op-amp integrators coupled by resistors), opamp_sc (the same coupled by switched-capacitor
branches), opamp_factored (the factorised J, H, J^T resistor arrays of TNGD), rlc (RLC cells coupled by
capacitor banks), posterior_gaussian / posterior_logistic (Bayesian posterior samplers, spu_sim.posterior).
Another topology registers with ``register(MyTopology())`` from anywhere (tests/ does).
"""

from .base import CircuitBase, CircuitRequest, Design, Topology, circuit_config, get_topology, names, register
from . import opamp, opamp_factored, opamp_sc, rlc  # noqa: E402,F401  (the built-in topologies register themselves)
from . import posterior  # noqa: E402,F401  (posterior_gaussian, posterior_logistic)

__all__ = ["CircuitBase", "CircuitRequest", "Design", "Topology", "circuit_config", "get_topology", "names",
           "register"]
