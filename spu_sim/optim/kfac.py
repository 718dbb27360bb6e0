"""K-FAC: Kronecker-factored natural gradient (Martens & Grosse 2015; physics.md section 9), digital.

Per dense layer l with homogeneous weight matrix Wbar (n_in + 1, n_out) (``spu_sim.train.layers``: the
bias is the last row, a weight on a constant input 1) the curvature block is approximated as A (x) G with
A = E[abar abar^T] (inputs) and G = E[ds ds^T] (back-propagated output cotangents). This module keeps
running averages of both,

    A_k = decay A_{k-1} + (1 - decay) A_batch,   (A_0 = A_batch of the first step; same for G),

splits the damping lambda = ``damping`` between the factors by the pi-heuristic

    pi = sqrt((tr A / (n_in + 1)) / (tr G / n_out)),   gamma_A = pi sqrt(lambda),   gamma_G = sqrt(lambda) / pi

(pi = 1 if a trace is not positive), and refreshes the inverses of the damped factors
M_A = A + gamma_A I, M_G = G + gamma_G I every ``inverse_every`` steps (at steps 0, T, 2T, ...; in
between the last inverses are applied to the current gradient). The update of layer l is

    D_l = M_A^-1 dWbar M_G^-1,   theta[index_l] <- theta[index_l] - lr D_l,

the solve (M_A (x) M_G)^-1 vec(dWbar) in the row-major order of theta (in the n_out x n_in convention
of the paper: (G + gamma_G I)^-1 dW (A + gamma_A I)^-1, the same thing transposed). Cost per refresh
O(sum_l (n_in^3 + n_out^3)), per step O(sum_l n_in n_out (n_in + n_out)) for the two products.

``refresh``/``precondition`` are shared with ``tkfac``, which replaces the digital inverse by an SPU.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Callable, NamedTuple

import numpy as np
import scipy.linalg

from spu_sim.errors import BadInputError
from spu_sim.optim.base import OPTIMIZERS, LearningRate, LocalProblem, Transform, lr_at

Invert = Callable[[np.ndarray, np.ndarray | None, tuple[int, int]], np.ndarray]


class KFACState(NamedTuple):
    """Running factors, the inverses of the damped factors at the last refresh (tuples over layers)."""

    count: int
    a_avg: tuple[np.ndarray, ...]
    g_avg: tuple[np.ndarray, ...]
    a_inv: tuple[np.ndarray, ...]
    g_inv: tuple[np.ndarray, ...]
    refreshed: bool  # whether the last update refreshed the inverses


def init(params: np.ndarray) -> KFACState:
    return KFACState(count=0, a_avg=(), g_avg=(), a_inv=(), g_inv=(), refreshed=False)


def damping_split(a: np.ndarray, g: np.ndarray, damping: float) -> tuple[float, float]:
    """(gamma_A, gamma_G) of the pi-heuristic (module docstring); gamma_A gamma_G = damping."""
    ta, tg = np.trace(a) / a.shape[0], np.trace(g) / g.shape[0]
    pi = float(np.sqrt(ta / tg)) if ta > 0 and tg > 0 else 1.0
    root = float(np.sqrt(damping))
    return pi * root, root / pi


def damped_factors(a: np.ndarray, g: np.ndarray, damping: float) -> tuple[np.ndarray, np.ndarray]:
    """(M_A, M_G) = (A + gamma_A I, G + gamma_G I)."""
    ga, gg = damping_split(a, g, damping)
    return a + ga * np.eye(a.shape[0]), g + gg * np.eye(g.shape[0])


def spd_inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix from its Cholesky factor, symmetrised."""
    inv = scipy.linalg.cho_solve(scipy.linalg.cho_factor(m, lower=True), np.eye(m.shape[0]))
    return 0.5 * (inv + inv.T)


def digital_invert(m: np.ndarray, previous: np.ndarray | None, key: tuple[int, int]) -> np.ndarray:
    """The ``Invert`` of digital K-FAC: ``spd_inverse(m)`` (previous inverse and key unused)."""
    return spd_inverse(m)


def running_averages(problem: LocalProblem, state: KFACState, decay: float):
    """(layers, A averages, G averages) after folding in this mini-batch's statistics."""
    layers = problem.layers
    if not layers:
        raise BadInputError("K-FAC needs per-layer statistics from the model (model.name: logreg or mlp)")
    if not state.a_avg:
        return layers, tuple(l.a_cov for l in layers), tuple(l.g_cov for l in layers)
    a = tuple(decay * old + (1.0 - decay) * l.a_cov for old, l in zip(state.a_avg, layers))
    g = tuple(decay * old + (1.0 - decay) * l.g_cov for old, l in zip(state.g_avg, layers))
    return layers, a, g


def refresh(a_avg, g_avg, previous_a, previous_g, damping: float, invert: Invert):
    """Inverses of the damped factors of every layer by ``invert(M, previous inverse or None, key)``, with
    key = (layer, 0 for A | 1 for G); returns (a_inv, g_inv, damped (M_A, M_G) per layer)."""
    a_inv, g_inv, damped = [], [], []
    for l, (a, g) in enumerate(zip(a_avg, g_avg)):
        ma, mg = damped_factors(a, g, damping)
        a_inv.append(invert(ma, previous_a[l] if previous_a else None, (l, 0)))
        g_inv.append(invert(mg, previous_g[l] if previous_g else None, (l, 1)))
        damped.append((ma, mg))
    return tuple(a_inv), tuple(g_inv), tuple(damped)


def precondition(grad: np.ndarray, layers, a_inv, g_inv) -> np.ndarray:
    """The K-FAC direction (N,): D_l = a_inv_l @ grad[index_l] @ g_inv_l for every layer."""
    out = np.zeros_like(grad)
    for layer, ai, gi in zip(layers, a_inv, g_inv):
        out[layer.index] = ai @ grad[layer.index] @ gi
    return out


def update(problem: LocalProblem, state: KFACState, *, lr: LearningRate, damping: float, decay: float,
           inverse_every: int) -> tuple[np.ndarray, KFACState]:
    layers, a_avg, g_avg = running_averages(problem, state, decay)
    refreshed = state.count % inverse_every == 0
    a_inv, g_inv = state.a_inv, state.g_inv
    if refreshed:
        a_inv, g_inv, _ = refresh(a_avg, g_avg, a_inv, g_inv, damping, digital_invert)
    direction = precondition(problem.grad, layers, a_inv, g_inv)
    return -lr_at(lr, state.count) * direction, KFACState(state.count + 1, a_avg, g_avg, a_inv, g_inv, refreshed)


def check_hyper(damping: float, decay: float, inverse_every: int) -> None:
    if not damping > 0:
        raise BadInputError(f"damping must be > 0 (got {damping}); the damped factors must be positive definite")
    if not 0.0 <= decay < 1.0:
        raise BadInputError(f"decay must be in [0, 1) (got {decay}); it weights the old running factors")
    if int(inverse_every) != inverse_every or inverse_every < 1:
        raise BadInputError(f"inverse_every must be an integer >= 1 (got {inverse_every})")


def build(lr: LearningRate = 0.1, damping: float = 1e-2, decay: float = 0.95, inverse_every: int = 1) -> Transform:
    """Digital K-FAC with learning rate ``lr``, damping lambda (split by the pi-heuristic), running-average
    ``decay`` of the factors and inverses refreshed every ``inverse_every`` steps."""
    check_hyper(damping, decay, inverse_every)
    return Transform(init, partial(update, lr=lr, damping=damping, decay=decay, inverse_every=int(inverse_every)))


#: the curvature this optimiser reads from the LocalProblem (None, "factor", "matvec" or "layers"): checked
#: against the model before a run trains (spu_sim.train.loop)
CURVATURE_NEEDED: str | None = "layers"

OPTIMIZERS.register("kfac", sys.modules[__name__])
