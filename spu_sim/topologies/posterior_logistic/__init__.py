"""Topology ``posterior_logistic``: a Langevin sampler of the Bayesian logistic-regression posterior.

The posterior_gaussian circuit (integrators, prior leak, the arrays X and X^T, summers) with a sigmoid element
on each of the n lines (a behavioural source, or the piecewise-linear ``hard`` sigmoid; config.py) and the
bias S0^-1 mu0 + X^T y from the integrators' DACs, so the drift is grad log p(theta | D)
= -S0^-1 (theta - mu0) + X^T (y - sigmoid(X theta)) and the noise is at temperature 1. Accepts
``problem.kind: logistic_posterior``.
"""

from __future__ import annotations

from ..base import TOPOLOGIES, Topology
from ..posterior_gaussian import build as gbuild, metrics
from ..posterior_gaussian.design import design_posterior
from ..posterior_gaussian.nonideal import apply_posterior_nonidealities
from .build import sigmoid_output
from .config import LogisticCircuitConfig


class PosteriorLogisticTopology(Topology):
    name = "posterior_logistic"
    config_model = LogisticCircuitConfig
    has_mean = True
    problem_kinds = ("logistic_posterior",)

    def design(self, problem, circuit, simulation):
        s = circuit.sigmoid
        nominal = design_posterior(problem, circuit, simulation, "logistic", link=s.model, v_sig=s.v_out_v)
        return apply_posterior_nonidealities(nominal, circuit)

    def build_circuit(self, design, request):
        return gbuild.build_circuit(design, request, line_output=sigmoid_output)

    def circuit_arrays(self, design, problem, plots, arrays):
        return metrics.circuit_arrays(design, [f"s{k}" for k in range(1, design.n + 1)], plots)


TOPOLOGIES.add(PosteriorLogisticTopology())
