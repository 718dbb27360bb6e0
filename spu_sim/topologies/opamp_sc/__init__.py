"""Topology ``opamp_sc``: op-amp integrators coupled by switched-capacitor branches (binary-weighted banks,
two-phase non-overlapping clock), with kT/C noise, and the exact discrete-time process they realise.

config.py (the circuit section), design.py (codes, capacitors, scaling, the realised model), discrete.py
(the per-period map, its stationary law and continuous-time embedding), build.py (the circuit),
metrics.py (error split, energy per clock, the zoomed clock waveform). docs/opamp_sc.md.
Engines: ngspice (sign-off) and the exact linear engine, which steps the per-phase propagators
(spu_sim.engines.linear.switched; clock feedthrough and clipped macromodels are refused there).
"""

from __future__ import annotations

import dataclasses

from ...parts.intrinsic_noise import intrinsic_from_config
from ..base import TOPOLOGIES, Topology
from . import build, metrics
from .config import OpampScCircuitConfig
from .design import design_opamp_sc


class OpampScTopology(Topology):
    name = "opamp_sc"
    config_model = OpampScCircuitConfig
    has_mean = True

    def design(self, problem, circuit, simulation):
        design = design_opamp_sc(problem, circuit, simulation)
        spec = intrinsic_from_config(circuit)
        return design if spec is None else dataclasses.replace(design, intrinsic=spec)

    def build_circuit(self, design, request):
        return build.build_circuit(design, request)

    def element_info(self, design):
        return build.element_info(design)

    def circuit_arrays(self, design, problem, plots, arrays):
        return metrics.circuit_arrays(design, plots, arrays)

    def circuit_metrics(self, design, problem, arrays):
        return metrics.circuit_metrics(design, problem, arrays)


TOPOLOGIES.add(OpampScTopology())
