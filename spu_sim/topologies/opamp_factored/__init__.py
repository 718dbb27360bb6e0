"""Topology ``opamp_factored``: the factorised TNGD circuit (TNGD App. C; physics.md section 8).

The problem comes as factors (problem kind ``factored``: J (m x N), H (m x m), damping lambda, b), and the
circuit realises A = J^T H J + lambda I with m summers (u = J x), m summers (z = H u) and the J^T array plus
the damping leak into N integrators: m (m + 2N) array resistors instead of N^2.

problem.py (the problem kind), config.py (the circuit section: the integrator and op-amp models of
spu_sim.parts.config), design.py
(element values and scaling), linear.py (realised / effective drift from the element values, in factors),
nonideal.py (tolerance, quantisation, temperature, macromodel), build.py (the circuit), noise.py (.noise hooks).
"""

from __future__ import annotations

from ...parts.intrinsic_noise import intrinsic_from_config
from ...parts.opamp import finite_gain_model
from ...parts.settling import settling_metrics
from ..base import TOPOLOGIES, Topology
from ..intrinsic import with_intrinsic
from . import build
from .config import FactoredCircuitConfig
from .design import FactoredDesign, design_factored
from .noise import FactoredNoise
from .nonideal import apply_factored_nonidealities
from ...problems.factored import FactoredProblem, FactoredProblemConfig

__all__ = ["FactoredDesign", "FactoredProblem", "FactoredProblemConfig", "FactoredTopology"]


class FactoredTopology(Topology):
    name = "opamp_factored"
    config_model = FactoredCircuitConfig
    has_mean = True
    problem_kinds = ("factored",)
    noise = FactoredNoise()

    def design(self, problem, circuit, simulation):
        design = apply_factored_nonidealities(design_factored(problem, circuit, simulation), circuit)
        return with_intrinsic(self, design, intrinsic_from_config(circuit))

    def build_circuit(self, design, request):
        return build.build_circuit(design, request)

    def element_info(self, design):
        return build.element_info(design)

    def n_elements(self, design) -> int:
        """The netlist's element count from the design's own arrays (resistors realised, op-amp stages, per
        variable a capacitor, DAC and noise source): O(m (m + 2N)), never the dense N^2 of the default."""
        c = design.element_counts()
        stages = c["n_summers"] + c["n_integrators"] + c["n_inverters"]
        return c["n_resistors_total"] + 4 * stages + 4 * design.d + 10

    def circuit_arrays(self, design, problem, plots, arrays):
        if finite_gain_model(design.macro) is None:   # a subcircuit op-amp's realised matrix is not measured
            return {}
        return {"A_effective": design.A_effective, "b_effective": design.b_effective}

    def circuit_metrics(self, design, problem, arrays):
        """Settling time, measured and predicted, with the criteria of spu_sim.parts.settling (topology opamp's
        energy metrics read its element arrays and are not computed here)."""
        out = settling_metrics(design, problem, arrays)
        if design.intrinsic is not None and design.intrinsic_diffusion is not None:   # topologies.intrinsic
            out["kappa_intrinsic"] = design.kappa_intrinsic
        return out


TOPOLOGIES.add(FactoredTopology())
