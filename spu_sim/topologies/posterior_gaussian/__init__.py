"""Topology ``posterior_gaussian``: a sampler of the Gaussian-Gaussian posterior (Bayesian linear regression).

Integrators for theta, the prior as a leak and a bias, and two resistor arrays: X computes the residuals
X theta - y through n summing amplifiers, X^T feeds them back; injected noise at temperature 1, so the
circuit samples N(P^-1 b, P^-1), P = S0^-1 + X^T X / s2 (design.py has the equations). Accepts
``problem.kind: gaussian_posterior`` (spu_sim.posterior.problem). config.py, design.py, nonideal.py,
build.py, metrics.py; posterior_logistic reuses all of it with a sigmoid element per line.
"""

from __future__ import annotations

from ..base import TOPOLOGIES, Topology
from . import build, metrics
from .config import GaussianCircuitConfig
from .design import design_posterior
from .nonideal import apply_posterior_nonidealities


class PosteriorGaussianTopology(Topology):
    name = "posterior_gaussian"
    config_model = GaussianCircuitConfig
    has_mean = True
    problem_kinds = ("gaussian_posterior",)

    def design(self, problem, circuit, simulation):
        return apply_posterior_nonidealities(design_posterior(problem, circuit, simulation, "gaussian"), circuit)

    def build_circuit(self, design, request):
        return build.build_circuit(design, request)

    def circuit_arrays(self, design, problem, plots, arrays):
        return metrics.circuit_arrays(design, [f"r{k}" for k in range(1, design.n + 1)], plots)


TOPOLOGIES.add(PosteriorGaussianTopology())
