"""Topologies ``posterior_gaussian`` and ``posterior_logistic``: samplers of a Bayesian posterior (one circuit,
two line outputs; both registered here).

Integrators for theta, the prior as a leak and a bias, and two resistor arrays: X computes the lines X theta
through n summing amplifiers, X^T feeds them back; injected noise at temperature 1 (design.py has the equations).

    posterior_gaussian   the lines carry the residuals X theta - y: the circuit samples N(P^-1 b, P^-1),
                         P = S0^-1 + X^T X / s2. Accepts ``problem.kind: gaussian_posterior``.
    posterior_logistic   a sigmoid element on each line (a behavioural source, or the piecewise-linear ``hard``
                         sigmoid; sigmoid.py) and the bias S0^-1 mu0 + X^T y from the integrators' DACs, so the
                         drift is grad log p(theta | D) = -S0^-1 (theta - mu0) + X^T (y - sigmoid(X theta)).
                         Accepts ``problem.kind: logistic_posterior``.

One folder for both: the logistic circuit is the Gaussian one plus the sigmoid element, so they share the config,
design, non-idealities, circuit builder and metrics (spu_sim.posterior: the problem kinds, references and runs).
config.py, design.py, nonideal.py, build.py, sigmoid.py, metrics.py.
"""

from __future__ import annotations

from ...parts.intrinsic_noise import intrinsic_from_config
from ..base import TOPOLOGIES, Topology
from ..intrinsic import with_intrinsic
from . import build, metrics
from .config import GaussianCircuitConfig, LogisticCircuitConfig
from .design import design_posterior
from .nonideal import apply_posterior_nonidealities
from .sigmoid import sigmoid_output


class PosteriorGaussianTopology(Topology):
    name = "posterior_gaussian"
    config_model = GaussianCircuitConfig
    has_mean = True
    problem_kinds = ("gaussian_posterior",)

    def design(self, problem, circuit, simulation):
        design = apply_posterior_nonidealities(design_posterior(problem, circuit, simulation, "gaussian"), circuit)
        return with_intrinsic(self, design, intrinsic_from_config(circuit))

    def build_circuit(self, design, request):
        return build.build_circuit(design, request)

    def element_info(self, design):
        return build.element_info(design)

    def circuit_arrays(self, design, problem, plots, arrays):
        return metrics.circuit_arrays(design, [f"r{k}" for k in range(1, design.n + 1)], plots)


class PosteriorLogisticTopology(Topology):
    name = "posterior_logistic"
    config_model = LogisticCircuitConfig
    has_mean = True
    problem_kinds = ("logistic_posterior",)

    def design(self, problem, circuit, simulation):
        s = circuit.sigmoid
        nominal = design_posterior(problem, circuit, simulation, "logistic", link=s.model, v_sig=s.v_out_v)
        return with_intrinsic(self, apply_posterior_nonidealities(nominal, circuit), intrinsic_from_config(circuit),
                              linear=False)

    def build_circuit(self, design, request):
        return build.build_circuit(design, request, line_output=sigmoid_output)

    def element_info(self, design):
        return build.element_info(design)

    def circuit_arrays(self, design, problem, plots, arrays):
        return metrics.circuit_arrays(design, [f"s{k}" for k in range(1, design.n + 1)], plots)


TOPOLOGIES.add(PosteriorGaussianTopology())
TOPOLOGIES.add(PosteriorLogisticTopology())
