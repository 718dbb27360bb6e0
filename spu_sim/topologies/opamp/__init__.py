"""Topology ``opamp``: one inverting op-amp integrator per variable, coupled by resistors (TNGD App. C style).

config.py (the circuit section), design.py (nominal element values and scaling), nonideal.py (tolerance,
quantisation, temperature, op-amp macromodel), build.py (the circuit, from the parts of spu_sim.parts),
metrics.py (settling and energy), noise.py (the small-signal noise analysis).
"""

from __future__ import annotations

from ...parts.intrinsic_noise import intrinsic_from_config
from ..base import TOPOLOGIES, Topology, replace_keeping_cache
from . import build, metrics
from .config import OpampCircuitConfig
from .design import design_opamp
from .noise import OpampNoise
from .nonideal import apply_opamp_nonidealities


class OpampTopology(Topology):
    name = "opamp"
    config_model = OpampCircuitConfig
    has_mean = True
    noise = OpampNoise()

    def design(self, problem, circuit, simulation):
        design = apply_opamp_nonidealities(design_opamp(problem, circuit, simulation), circuit)
        spec = intrinsic_from_config(circuit)
        return design if spec is None else replace_keeping_cache(design, intrinsic=spec)

    def build_circuit(self, design, request):
        return build.build_circuit(design, request)

    def element_info(self, design):
        return build.element_info(design)

    def circuit_arrays(self, design, problem, plots, arrays):
        return metrics.circuit_arrays(design, plots)

    def circuit_metrics(self, design, problem, arrays):
        return metrics.circuit_metrics(design, problem, arrays)


TOPOLOGIES.add(OpampTopology())
