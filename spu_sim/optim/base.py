"""Shared pieces of the optimisers: the ``Transform`` pair, the local problem, curvature helpers.

Every optimiser module follows the posteriors/optax pattern::

    transform = build(lr=0.1, ...)           # binds hyper-parameters
    state = transform.init(params)           # immutable NamedTuple
    updates, state = transform.update(problem, state)
    params = params + updates

``problem`` is a :class:`LocalProblem`: the mini-batch gradient and (lazily) a curvature factor ``U``
with ``C = U^T U`` (the GGN ``J_f^T H_L J_f / batch`` or the empirical Fisher), so that
``A = C + lambda I`` is the damped curvature. Digital first-order optimisers never touch the factor, so
their measured wall time does not include it.

``OPTIMIZERS`` is the registry of the optimisers by config name (``train.optimizers[i].name``); each optimiser
module registers itself where it is defined (``OPTIMIZERS.register("sgd", sys.modules[__name__])``: the item is
the module, whose ``build`` makes the ``Transform``), and ``spu_sim.optim`` imports every module.
"""

from __future__ import annotations

from functools import cached_property
from types import ModuleType
from typing import Any, Callable, NamedTuple, Union

import numpy as np

from spu_sim.registry import Registry

Schedule = Callable[[int], float]
LearningRate = Union[float, Schedule]


#: the optimiser modules by name (each registers itself); ``OPTIMIZERS[name]`` is ``OPTIMIZERS.get(name)``
OPTIMIZERS: Registry[ModuleType] = Registry("an optimizer", "train.optimizers.name")


class Transform(NamedTuple):
    """An optimiser: ``init(params) -> state`` and ``update(problem, state) -> (updates, state)``; optional
    ``check(problem)`` raises what the first ``update`` on ``problem`` would refuse (for circuit optimisers: the
    design of the first step's circuit, without running it), so a run can check every optimiser before training."""

    init: Callable[[np.ndarray], Any]
    update: Callable[["LocalProblem", Any], tuple[np.ndarray, Any]]
    check: Callable[["LocalProblem"], None] | None = None


def lr_at(lr: LearningRate, step: int) -> float:
    """The learning rate at ``step``: ``lr(step)`` if it is a schedule, else the number."""
    return float(lr(step)) if callable(lr) else float(lr)


class LocalProblem:
    """The mini-batch problem an optimiser sees at one step.

    Attributes:
        loss: mini-batch loss (float).
        grad: mini-batch gradient, shape (N,).
        factor: curvature factor U, shape (rows, N), with curvature C = U^T U; computed on first access
            by ``factor_fn`` (rows = batch * d_z for the GGN, batch for the empirical Fisher).
        batch_size, d_z: mini-batch size and model output dimension (for the timing model).
        layers: per-layer K-FAC statistics (``spu_sim.train.models.KroneckerLayer``: index, a_cov, g_cov),
            computed on first access by ``layers_fn`` (K-FAC only; None if the model gives none).
        matvec_fn: optional ``v -> C v`` (a curvature-vector product); when given, ``damped_matvec`` uses it and
            never builds the factor (a model without a factor: spu_sim.train.custom.UserModel).
    """

    def __init__(self, loss: float, grad: np.ndarray, factor_fn: Callable[[], np.ndarray], *,
                 batch_size: int, d_z: int, layers_fn: Callable[[], list] | None = None,
                 matvec_fn: Callable[[np.ndarray], np.ndarray] | None = None):
        self.loss = float(loss)
        self.grad = np.asarray(grad, dtype=float)
        self._factor_fn = factor_fn
        self.batch_size = int(batch_size)
        self.d_z = int(d_z)
        self._layers_fn = layers_fn
        self._matvec_fn = matvec_fn

    @cached_property
    def layers(self) -> list | None:
        return None if self._layers_fn is None else self._layers_fn()

    @cached_property
    def factor(self) -> np.ndarray:
        return np.asarray(self._factor_fn(), dtype=float)

    @property
    def n_params(self) -> int:
        return int(self.grad.shape[0])

    def damped_matrix(self, damping: float) -> np.ndarray:
        """Dense ``A = U^T U + damping I``, shape (N, N); cost O(rows N^2)."""
        u = self.factor
        return u.T @ u + damping * np.eye(u.shape[1])

    def damped_matvec(self, v: np.ndarray, damping: float) -> np.ndarray:
        """``A v = U^T (U v) + damping v`` without forming A; cost O(rows N) (or ``matvec_fn(v) + damping v``)."""
        if self._matvec_fn is not None:
            return self._matvec_fn(v) + damping * v
        u = self.factor
        return u.T @ (u @ v) + damping * v
