"""Topologies: one folder each, registered once in its own package (contracts and registry in base.py).

    topo = TOPOLOGIES.get(cfg.circuit.topology)
    design = topo.design(problem, cfg.circuit, cfg.simulation)
    circuit = topo.build_circuit(design, request)

Built in: opamp (op-amp integrators coupled by resistors), opamp_sc (the same coupled by switched-capacitor
branches), opamp_factored (the factorised J, H, J^T resistor arrays of TNGD), rlc (RLC cells coupled by
capacitor banks), posterior_gaussian / posterior_logistic (Bayesian posterior samplers, one folder: posterior/). Another topology
registers with ``TOPOLOGIES.add(MyTopology())`` from anywhere (tests/ does).
"""

from . import opamp, opamp_factored, opamp_sc, rlc  # the built-in topologies, in the order the choices list them
from . import posterior
from .base import TOPOLOGIES, CircuitBase, CircuitRequest, Design, OuDesign, Topology, circuit_config

__all__ = ["TOPOLOGIES", "CircuitBase", "CircuitRequest", "Design", "OuDesign", "Topology", "circuit_config",
           "opamp", "opamp_factored", "opamp_sc", "posterior", "rlc"]
