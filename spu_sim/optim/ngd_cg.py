"""Natural gradient by conjugate gradient with an iteration budget.

Solves (U^T U + lambda I) x = grad with at most ``cg_iters`` CG iterations from x = 0, each a
matrix-free product ``U^T (U v) + lambda v`` (cost O(b d_z N) per iteration), stopping early when
||r|| <= cg_tol ||grad||. theta <- theta - lr * x.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import NamedTuple

import numpy as np

from spu_sim.optim.base import OPTIMIZERS, LearningRate, LocalProblem, Transform, lr_at


class NGDCGState(NamedTuple):
    count: int
    last_iters: int


def init(params: np.ndarray) -> NGDCGState:
    return NGDCGState(count=0, last_iters=0)


def conjugate_gradient(problem: LocalProblem, damping: float, cg_iters: int,
                       cg_tol: float) -> tuple[np.ndarray, int]:
    """CG for the damped curvature system; returns (x, iterations used)."""
    b = problem.grad
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rs = float(r @ r)
    stop = (cg_tol * float(np.linalg.norm(b))) ** 2
    it = 0
    while it < cg_iters and rs > stop:
        ap = problem.damped_matvec(p, damping)
        alpha = rs / float(p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = float(r @ r)
        p = r + (rs_new / rs) * p
        rs = rs_new
        it += 1
    return x, it


def update(problem: LocalProblem, state: NGDCGState, *, lr: LearningRate, damping: float, cg_iters: int,
           cg_tol: float) -> tuple[np.ndarray, NGDCGState]:
    x, it = conjugate_gradient(problem, damping, cg_iters, cg_tol)
    return -lr_at(lr, state.count) * x, NGDCGState(count=state.count + 1, last_iters=it)


def build(lr: LearningRate = 0.1, damping: float = 1e-2, cg_iters: int = 10, cg_tol: float = 1e-10) -> Transform:
    """NGD-CG with learning rate ``lr``, damping, a budget of ``cg_iters`` CG iterations and ``cg_tol``."""
    return Transform(init, partial(update, lr=lr, damping=damping, cg_iters=cg_iters, cg_tol=cg_tol))


#: the curvature this optimiser reads from the LocalProblem (None, "factor", "matvec" or "layers"): checked
#: against the model before a run trains (spu_sim.train.loop)
CURVATURE_NEEDED: str | None = "matvec"

OPTIMIZERS.register("ngd_cg", sys.modules[__name__])
