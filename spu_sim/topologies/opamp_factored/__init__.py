"""Topology ``opamp_factored``: the factorised TNGD circuit (TNGD App. C; physics.md section 8).

The problem comes as factors (problem kind ``factored``: J (m x N), H (m x m), damping lambda, b), and the
circuit realises A = J^T H J + lambda I with m summers (u = J x), m summers (z = H u) and the J^T array plus
the damping leak into N integrators: m (m + 2N) array resistors instead of N^2.

problem.py (the problem kind), config.py (the circuit section: opamp's integrator and op-amp models), design.py
(element values and scaling), linear.py (realised / effective drift from the element values, in factors),
nonideal.py (tolerance, quantisation, temperature, macromodel), build.py (the circuit), noise.py (.noise hooks).
"""

from __future__ import annotations

from ..base import TOPOLOGIES, Topology
from . import build
from .config import FactoredCircuitConfig
from .design import FactoredDesign, design_factored
from .noise import FactoredNoise
from .nonideal import apply_factored_nonidealities
from ...problems.factored import FactoredProblem, FactoredProblemConfig


def settling_metrics(design, problem, arrays) -> dict:
    import numpy as np  # noqa: PLC0415

    from ...ideal import stationary_cov, stationary_mean  # noqa: PLC0415
    from ..opamp.metrics import N_SIGMA, SETTLE_TOL, settling_time_measured, settling_time_predicted  # noqa: PLC0415
    sde = design.effective_sde()
    x0 = np.asarray(arrays.get("x0", problem.x0), dtype=float)
    exact, slow = settling_time_predicted(sde, x0)
    out = {"settle_tol_relative": SETTLE_TOL, "settle_predicted_exact_tau": exact,
           "settle_predicted_slowest_tau": slow, "settle_predicted_exact_s": exact * design.tau_s}
    t = np.asarray(arrays.get("t", np.zeros(0)), dtype=float)
    meas = float("nan")
    if t.size:
        x_eq = np.asarray(arrays.get("x_op", np.full(design.d, np.nan)), dtype=float)
        if not np.all(np.isfinite(x_eq)):
            x_eq = stationary_mean(sde)
        band = N_SIGMA * np.sqrt(np.clip(np.diag(stationary_cov(sde)), 0, None)) if np.any(np.diag(sde.D) > 0) else 0.0
        meas = settling_time_measured(t / design.tau_s, np.asarray(arrays["x"]), x0, x_eq, band)
    out.update(settle_measured_tau=meas, settle_measured_s=meas * design.tau_s)
    return out

__all__ = ["FactoredDesign", "FactoredProblem", "FactoredProblemConfig", "FactoredTopology"]


class FactoredTopology(Topology):
    name = "opamp_factored"
    config_model = FactoredCircuitConfig
    has_mean = True
    problem_kinds = ("factored",)
    noise = FactoredNoise()

    def design(self, problem, circuit, simulation):
        return apply_factored_nonidealities(design_factored(problem, circuit, simulation), circuit)

    def build_circuit(self, design, request):
        return build.build_circuit(design, request)

    def circuit_arrays(self, design, problem, plots, arrays):
        if design.macro is None:
            return {}
        return {"A_effective": design.A_effective, "b_effective": design.b_effective}

    def circuit_metrics(self, design, problem, arrays):
        """Settling time, measured and predicted, with opamp's criteria (spu_sim.topologies.opamp.metrics;
        the energy metrics there read opamp's element arrays and are not computed here)."""
        return settling_metrics(design, problem, arrays)


TOPOLOGIES.add(FactoredTopology())
