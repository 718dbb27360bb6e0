"""Natural gradient by the Woodbury identity on the low-rank curvature.

With the factor U = blockdiag(L_i^T) J_f / sqrt(b) (H_L,i = L_i L_i^T, rows = b d_z), C = U^T U and

    (U^T U + lambda I)^-1 g = (g - U^T (lambda I + U U^T)^-1 U g) / lambda.

Cost O(b^2 d_z^2 N) for U U^T plus O(b^3 d_z^3) for the small solve; no N x N matrix is formed.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import NamedTuple

import numpy as np

from spu_sim.optim.base import OPTIMIZERS, LearningRate, LocalProblem, Transform, lr_at


class NGDWoodburyState(NamedTuple):
    count: int


def init(params: np.ndarray) -> NGDWoodburyState:
    return NGDWoodburyState(count=0)


def natural_gradient(problem: LocalProblem, damping: float) -> np.ndarray:
    """``(U^T U + damping I)^-1 grad`` through the (rows x rows) Woodbury system."""
    u = problem.factor
    g = problem.grad
    small = u @ u.T + damping * np.eye(u.shape[0])
    y = np.linalg.solve(small, u @ g)
    return (g - u.T @ y) / damping


def update(problem: LocalProblem, state: NGDWoodburyState, *, lr: LearningRate,
           damping: float) -> tuple[np.ndarray, NGDWoodburyState]:
    step = lr_at(lr, state.count)
    return -step * natural_gradient(problem, damping), NGDWoodburyState(count=state.count + 1)


def build(lr: LearningRate = 0.1, damping: float = 1e-2) -> Transform:
    """NGD-Woodbury with learning rate ``lr`` and damping (> 0, it divides)."""
    return Transform(init, partial(update, lr=lr, damping=damping))


#: the curvature this optimiser reads from the LocalProblem (None, "factor", "matvec" or "layers"): checked
#: against the model before a run trains (spu_sim.train.loop)
CURVATURE_NEEDED: str | None = "factor"

OPTIMIZERS.register("ngd_woodbury", sys.modules[__name__])
