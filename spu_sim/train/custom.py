"""Your own model and data in the training loop: a model given as functions, data given as arrays.

A ``UserModel`` is a model given by its loss, gradient and curvature on one flat parameter vector theta (N,):

    loss(theta, x, y) -> float                      the mini-batch loss
    grad(theta, x, y) -> (N,)                       its gradient
    ggn_factor(theta, x, y) -> U (m, N)             optional: the curvature C = U^T U (e.g. U = H_L^{1/2} J_f / sqrt(b))
    ggn_vp(theta, x, y, v) -> C v (N,)              optional: a curvature-vector product (without U)
    predict(theta, x) -> scores (n, classes)        optional: accuracy = mean(argmax scores == y)

with ``theta0`` the initial parameters and ``d_z`` the outputs per example (the time model's b d_z). Optimisers that
program or factor the curvature (ngd, ngd_woodbury, tngd, tngd_adam) need ``ggn_factor``; ngd_cg works with either;
kfac and tkfac need the per-layer statistics of the built-in dense models (``spu_sim.train.models``), so a UserModel
is refused for them before training (``curvature_kind``).

From a config: ``model: {name: function, function: "package.module:build"}`` calls ``build(dataset)`` (the data set of
the run, ``spu_sim.train.data.Dataset``) for the UserModel; ``data: {name: arrays, x_train: a.npy, y_train: ...,
x_test: ..., y_test: ...}`` reads four .npy files (relative to the config file), ``data: {name: function, function:
"package.module:load"}`` calls ``load()`` for a Dataset or a tuple (x_train, y_train, x_test, y_test). From Python,
``run_training(config, out, model=UserModel(...), data=(x_train, y_train, x_test, y_test))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from spu_sim.errors import BadInputError
from spu_sim.optim.base import LocalProblem
from spu_sim.train.data import Dataset, load_callable


@dataclass
class UserModel:
    """A model given as functions (module docstring); every function takes theta first."""

    loss: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    grad: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    theta0: np.ndarray
    ggn_factor: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
    ggn_vp: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    d_z: int = 1

    def __post_init__(self) -> None:
        self.theta0 = np.asarray(self.theta0, dtype=float)
        if self.theta0.ndim != 1 or not np.all(np.isfinite(self.theta0)):
            raise BadInputError(f"model: theta0 must be a finite vector (got shape {self.theta0.shape})")
        if self.ggn_factor is None and self.ggn_vp is None:
            raise BadInputError("model: give the curvature as ggn_factor(theta, x, y) -> U or "
                                "ggn_vp(theta, x, y, v) -> C v")
        self.d_z = int(self.d_z)

    @property
    def n_params(self) -> int:
        return int(self.theta0.size)

    def init(self, rng: np.random.Generator, scale: float | None = None) -> np.ndarray:
        """The given theta0 (rng and scale unused: the user chose the start)."""
        return self.theta0.copy()

    def problem(self, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> LocalProblem:
        """The mini-batch problem: loss and gradient now, the factor (or the curvature-vector product) on demand."""
        grad = np.asarray(self.grad(theta, x, y), dtype=float)
        if grad.shape != theta.shape:
            raise BadInputError(f"model: grad returned shape {grad.shape}, expected {theta.shape} (one entry per "
                                "parameter)")

        def factor():
            if self.ggn_factor is None:
                raise BadInputError("model: this optimiser needs the curvature as a factor U (C = U^T U); give "
                                    "ggn_factor(theta, x, y), or use ngd_cg with ggn_vp")
            u = np.asarray(self.ggn_factor(theta, x, y), dtype=float)
            if u.ndim != 2 or u.shape[1] != theta.size:
                raise BadInputError(f"model: ggn_factor returned shape {u.shape}, expected (rows, {theta.size})")
            return u

        matvec = None if self.ggn_vp is None else (lambda v: np.asarray(self.ggn_vp(theta, x, y, v), dtype=float))
        return LocalProblem(float(self.loss(theta, x, y)), grad, factor, batch_size=x.shape[0], d_z=self.d_z,
                            matvec_fn=matvec)

    def metrics(self, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(loss, accuracy) on a whole split; accuracy NaN without ``predict``."""
        acc = float("nan")
        if self.predict is not None:
            acc = float((np.asarray(self.predict(theta, x)).argmax(axis=1) == y).mean())
        return float(self.loss(theta, x, y)), acc


def curvature_kind(model: Any) -> set[str]:
    """What curvature the model gives: {"factor", "matvec", "layers"} for the built-in models, a subset for a UserModel."""
    if isinstance(model, UserModel):
        return {k for k, f in (("factor", model.ggn_factor), ("matvec", model.ggn_vp)) if f is not None}
    return {"factor", "matvec", "layers"}


def function_model(spec: str, ds: Dataset) -> UserModel:
    """The UserModel of ``model.function``: ``build(dataset)``."""
    model = load_callable(spec, "model.function")(ds)
    if not isinstance(model, UserModel):
        raise BadInputError(f"model.function: {spec!r} returned {type(model).__name__}, not a "
                            "spu_sim.train.custom.UserModel")
    return model
