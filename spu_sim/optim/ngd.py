"""Exact natural gradient descent by a dense solve.

    g_nat = (C + lambda I)^-1 grad,   theta <- theta - lr * g_nat

with C = U^T U the GGN (or empirical Fisher): A = U^T U + lambda I formed by one symmetric rank-k update (BLAS syrk,
half the flops of U^T U), solved by Cholesky (A is symmetric positive definite for lambda > 0; half the flops of LU).
Cost O(b d_z N^2 / 2 + N^3 / 3).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import NamedTuple

import numpy as np
import scipy.linalg

from spu_sim.optim.base import OPTIMIZERS, LearningRate, LocalProblem, Transform, lr_at


class NGDState(NamedTuple):
    count: int


def init(params: np.ndarray) -> NGDState:
    return NGDState(count=0)


def natural_gradient(problem: LocalProblem, damping: float) -> np.ndarray:
    """``(U^T U + damping I)^-1 grad`` by a dense Cholesky solve (A is symmetric positive definite for damping > 0);
    np.linalg.LinAlgError if it is not (non-finite entries)."""
    u = problem.factor
    a = scipy.linalg.blas.dsyrk(1.0, u, trans=1, lower=1)      # lower triangle of U^T U
    a[np.diag_indices_from(a)] += damping
    try:
        chol = scipy.linalg.cho_factor(a, lower=True, overwrite_a=True, check_finite=True)
    except ValueError as err:   # non-finite entries (a diverged model)
        raise np.linalg.LinAlgError(str(err)) from None
    return scipy.linalg.cho_solve(chol, problem.grad, check_finite=False)


def update(problem: LocalProblem, state: NGDState, *, lr: LearningRate,
           damping: float) -> tuple[np.ndarray, NGDState]:
    return -lr_at(lr, state.count) * natural_gradient(problem, damping), NGDState(count=state.count + 1)


def build(lr: LearningRate = 0.1, damping: float = 1e-2) -> Transform:
    """Exact NGD with learning rate ``lr`` and damping ``lambda = damping`` (> 0)."""
    return Transform(init, partial(update, lr=lr, damping=damping))


#: the curvature this optimiser reads from the LocalProblem (None, "factor", "matvec" or "layers"): checked
#: against the model before a run trains (spu_sim.train.loop)
CURVATURE_NEEDED: str | None = "factor"

OPTIMIZERS.register("ngd", sys.modules[__name__])
