"""Adam (Kingma & Ba): bias-corrected moment estimates of a direction g.

    mu <- b1 mu + (1 - b1) g,   nu <- b2 nu + (1 - b2) g^2,
    theta <- theta - lr * (mu / (1 - b1^k)) / (sqrt(nu / (1 - b2^k)) + eps)

``adam_direction`` is reused by ``tngd_adam`` (g = the SPU's natural-gradient estimate).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import NamedTuple

import numpy as np

from spu_sim.optim.base import OPTIMIZERS, LearningRate, LocalProblem, Transform, lr_at


class AdamState(NamedTuple):
    count: int
    mu: np.ndarray
    nu: np.ndarray


def init(params: np.ndarray) -> AdamState:
    z = np.zeros_like(np.asarray(params, dtype=float))
    return AdamState(count=0, mu=z, nu=z.copy())


def adam_direction(g: np.ndarray, state: AdamState, *, b1: float, b2: float,
                   eps: float) -> tuple[np.ndarray, AdamState]:
    """Adam's preconditioned direction of ``g`` (to be scaled by -lr) and the new moments."""
    count = state.count + 1
    mu = b1 * state.mu + (1.0 - b1) * g
    nu = b2 * state.nu + (1.0 - b2) * g * g
    mu_hat = mu / (1.0 - b1 ** count)
    nu_hat = nu / (1.0 - b2 ** count)
    return mu_hat / (np.sqrt(nu_hat) + eps), AdamState(count=count, mu=mu, nu=nu)


def update(problem: LocalProblem, state: AdamState, *, lr: LearningRate, b1: float, b2: float,
           eps: float) -> tuple[np.ndarray, AdamState]:
    step = lr_at(lr, state.count)
    direction, new_state = adam_direction(problem.grad, state, b1=b1, b2=b2, eps=eps)
    return -step * direction, new_state


def build(lr: LearningRate = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Transform:
    """Adam with learning rate ``lr`` (number or schedule), betas ``b1, b2`` and ``eps``."""
    return Transform(init, partial(update, lr=lr, b1=b1, b2=b2, eps=eps))


#: the curvature this optimiser reads from the LocalProblem (None, "factor", "matvec" or "layers"): checked
#: against the model before a run trains (spu_sim.train.loop)
CURVATURE_NEEDED: str | None = None

OPTIMIZERS.register("adam", sys.modules[__name__])
