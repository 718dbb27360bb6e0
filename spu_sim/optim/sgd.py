"""Stochastic gradient descent: ``theta <- theta - lr(k) * grad``. Cost O(b N) (the gradient)."""

from __future__ import annotations

import sys
from functools import partial
from typing import NamedTuple

import numpy as np

from spu_sim.optim.base import OPTIMIZERS, LearningRate, LocalProblem, Transform, lr_at


class SGDState(NamedTuple):
    count: int


def init(params: np.ndarray) -> SGDState:
    return SGDState(count=0)


def update(problem: LocalProblem, state: SGDState, *, lr: LearningRate) -> tuple[np.ndarray, SGDState]:
    return -lr_at(lr, state.count) * problem.grad, SGDState(count=state.count + 1)


def build(lr: LearningRate = 0.1) -> Transform:
    """SGD with learning rate ``lr`` (number or schedule ``step -> lr``)."""
    return Transform(init, partial(update, lr=lr))


#: the curvature this optimiser reads from the LocalProblem (None, "factor", "matvec" or "layers"): checked
#: against the model before a run trains (spu_sim.train.loop)
CURVATURE_NEEDED: str | None = None

OPTIMIZERS.register("sgd", sys.modules[__name__])
