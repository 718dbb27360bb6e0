"""Topology ``rlc``: RLC unit cells coupled all-to-all by capacitors or switched-capacitor banks (Melanson et
al., 2023). Samples N(0, kappa A^-1); no mean (the inductors short DC), so it takes no problem.vector.

config.py (the circuit section), design.py (element values, bank codes, the realised 2d SDE), nonideal.py
(tolerance, cell-capacitor quantisation, temperature), build.py (the circuit), sde.py (the exact linear model
of the netlist with every switch node), noise.py (the small-signal noise analysis, ideal coupling only).
"""

from __future__ import annotations

import dataclasses

from ...parts.intrinsic_noise import intrinsic_from_config
from ..base import TOPOLOGIES, Topology
from . import build
from .config import RlcCircuitConfig
from .design import design_rlc
from .noise import RlcNoise
from .nonideal import apply_rlc_nonidealities


class RlcTopology(Topology):
    name = "rlc"
    config_model = RlcCircuitConfig
    has_mean = False
    noise = RlcNoise()

    def design(self, problem, circuit, simulation):
        design = apply_rlc_nonidealities(design_rlc(problem, circuit, simulation), circuit)
        spec = intrinsic_from_config(circuit)
        return design if spec is None else dataclasses.replace(design, intrinsic=spec)

    def build_circuit(self, design, request):
        return build.build_circuit(design, request)

    def element_info(self, design):
        return build.element_info(design)


TOPOLOGIES.add(RlcTopology())
