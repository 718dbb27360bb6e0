"""Posterior problem kinds: ``gaussian_posterior`` and ``logistic_posterior`` (registered in PROBLEM_KINDS here).

    problem: {kind: gaussian_posterior, X, y, prior_mean, prior_cov, noise_var}
    problem: {kind: logistic_posterior, X, y, prior_mean, prior_cov}          (labels y in {0, 1})

Gaussian-Gaussian model y = X theta + eps, eps ~ N(0, s2 I), prior theta ~ N(mu0, S0): the posterior is
N(P^-1 b, P^-1) with P = S0^-1 + X^T X / s2, b = S0^-1 mu0 + X^T y / s2, i.e. the OU process
dtheta = -(P theta - b) dt + sqrt(2) dW at kappa = 1 (temperature 1): ``GaussianPosteriorProblem`` is a
``Problem`` with A = P, b = b, kappa = 1.

Logistic regression p(y_k = 1 | theta) = sigmoid(x_k . theta) with the same prior: Langevin drift
grad log p(theta | D) = -S0^-1 (theta - mu0) + X^T (y - sigmoid(X theta)). ``LogisticPosteriorProblem`` is
a ``Problem`` whose (A, b) is the Laplace approximation (A = the Hessian of -log p at the MAP, b = A theta_MAP,
so x_star is the MAP): the linearised process the pipeline's generic judges (compare) read; the
topology realises the nonlinear drift.

Sources of X and y (spu_sim.problems.data): a .npy path, an inline list, ``{random: {...}}`` with a seed,
or a scikit-learn data set ``{dataset: breast_cancer | diabetes, features, n, seed, standardize, intercept}``
(y then defaults to that data set's targets of the same rows). prior_cov: a number (that multiple of I),
a list (the diagonal) or a matrix; prior_mean: a number (every entry), a list, default 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import numpy as np
from pydantic import Field, field_validator

from ..config import Strict, finite as _finite
from ..errors import BadInputError
from .base import PROBLEM_KINDS, Problem, ProblemKind, validate_spd
from .data import DatasetSpec, RandomDesign, RandomTarget, load_dataset, random_design, random_target
from .posterior_reference import laplace
from .sources import load_array


XSource = Union[str, list[list[float]], RandomDesign, DatasetSpec]
YSource = Union[str, list[float], RandomTarget, None]


class _PosteriorBase(Strict):
    X: XSource
    y: YSource = None
    prior_mean: Union[float, list[float]] = 0.0
    prior_cov: Union[float, list[float], list[list[float]]] = 1.0
    theta0: Union[Literal["zero", "prior_mean"], list[float]] = "zero"

    @field_validator("prior_mean")
    @classmethod
    def _fin_mean(cls, v):
        vals = [v] if isinstance(v, (int, float)) else v
        if not all(np.isfinite(vals)):
            raise ValueError("must be finite numbers")
        return v


class GaussianPosteriorConfig(_PosteriorBase):
    """Bayesian linear regression: y = X theta + N(0, noise_var), theta ~ N(prior_mean, prior_cov).
    The circuit samples the posterior at temperature 1 (kappa = 1)."""

    kind: Literal["gaussian_posterior"] = "gaussian_posterior"
    noise_var: float = Field(default=1.0, gt=0)

    _fin = field_validator("noise_var")(_finite)


class LogisticPosteriorConfig(_PosteriorBase):
    """Bayesian logistic regression: y_k ~ Bernoulli(sigmoid(x_k . theta)), theta ~ N(prior_mean, prior_cov)."""

    kind: Literal["logistic_posterior"] = "logistic_posterior"


@dataclass(frozen=True)
class PosteriorData:
    """X (n, d), y (n,), prior mean (d,), prior covariance and precision (d, d), where the data came from."""

    X: np.ndarray
    y: np.ndarray
    prior_mean: np.ndarray
    prior_cov: np.ndarray
    prior_prec: np.ndarray
    source: str
    feature_names: tuple[str, ...]


@dataclass(frozen=True)
class GaussianPosteriorProblem(Problem):
    """A = P = S0^-1 + X^T X / s2, b = S0^-1 mu0 + X^T y / s2, kappa = 1; the exact posterior N(A^-1 b, A^-1)."""

    data: PosteriorData
    noise_var: float

    @property
    def posterior_mean(self) -> np.ndarray:
        return self.x_star

    @property
    def posterior_cov(self) -> np.ndarray:
        C = np.linalg.inv(self.A)
        return 0.5 * (C + C.T)


@dataclass(frozen=True)
class LogisticPosteriorProblem(Problem):
    """(A, b): the Laplace approximation (A = Hessian of -log p at the MAP, b = A MAP, kappa = 1); the drift
    itself is spu_sim.problems.posterior_reference.grad_log_posterior(theta, data)."""

    data: PosteriorData

    @property
    def map(self) -> np.ndarray:
        return self.x_star


def _prior(cfg: _PosteriorBase, d: int) -> tuple[np.ndarray, np.ndarray]:
    mu = np.full(d, float(cfg.prior_mean)) if isinstance(cfg.prior_mean, (int, float)) else np.array(cfg.prior_mean, float)
    if mu.shape != (d,):
        raise BadInputError(f"problem.prior_mean: has {mu.size} entries but X has {d} columns; give {d} numbers or one")
    pc = cfg.prior_cov
    if isinstance(pc, (int, float)):
        if not np.isfinite(pc) or pc <= 0:
            raise BadInputError(f"problem.prior_cov: {pc!r} must be a positive number (that multiple of I)")
        S0 = float(pc) * np.eye(d)
    else:
        arr = np.array(pc, dtype=float)
        if arr.ndim == 1:
            if arr.shape != (d,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise BadInputError(f"problem.prior_cov: a list is the diagonal and needs {d} positive numbers")
            S0 = np.diag(arr)
        else:
            if arr.shape != (d, d):
                raise BadInputError(f"problem.prior_cov: must be {d}x{d} (got shape {arr.shape})")
            S0 = arr
    validate_spd(S0, "problem.prior_cov")
    return mu, S0


def build_data(cfg: _PosteriorBase, base_dir: Path, model: str) -> PosteriorData:
    """X, y and the prior from the sources (validated: shapes, finiteness, labels in {0, 1} for logistic)."""
    names: tuple[str, ...] = ()
    y_default = None
    if isinstance(cfg.X, DatasetSpec):
        X, y_default, names, source = load_dataset(cfg.X, model)
    elif isinstance(cfg.X, RandomDesign):
        X, source = random_design(cfg.X.random), f"random design (seed {cfg.X.random.seed})"
    else:
        X = load_array(cfg.X, "problem.X", base_dir, 2, matrix_word="a matrix (n rows x d columns)")
        source = str(cfg.X) if isinstance(cfg.X, str) else "inline"
    n, d = X.shape
    if n == 0 or d == 0:
        raise BadInputError(f"problem.X: must have at least one row and one column (got shape {X.shape})")
    if not np.all(np.isfinite(X)):
        raise BadInputError("problem.X: every entry must be finite")
    mu0, S0 = _prior(cfg, d)
    if cfg.y is None:
        if y_default is None:
            raise BadInputError("problem.y: required key is missing (only a data-set X brings its own targets)")
        y = y_default
    elif isinstance(cfg.y, RandomTarget):
        y = random_target(cfg.y.random, X, model, getattr(cfg, "noise_var", 1.0))
    else:
        y = load_array(cfg.y, "problem.y", base_dir, 1)
    if y.shape != (n,):
        raise BadInputError(f"problem.y: has {y.size} entries but X has {n} rows")
    if not np.all(np.isfinite(y)):
        raise BadInputError("problem.y: every entry must be finite")
    if model == "logistic" and not np.all((y == 0) | (y == 1)):
        raise BadInputError("problem.y: logistic_posterior labels must be 0 or 1")
    return PosteriorData(X=X, y=y, prior_mean=mu0, prior_cov=S0, prior_prec=np.linalg.inv(S0), source=source,
                         feature_names=names)


def _theta0(cfg: _PosteriorBase, data: PosteriorData) -> np.ndarray:
    d = data.X.shape[1]
    if isinstance(cfg.theta0, str):
        return np.zeros(d) if cfg.theta0 == "zero" else data.prior_mean.copy()
    x0 = np.array(cfg.theta0, dtype=float)
    if x0.shape != (d,) or not np.all(np.isfinite(x0)):
        raise BadInputError(f"problem.theta0: must be 'zero', 'prior_mean' or a list of {d} finite numbers")
    return x0


def build_gaussian(cfg: GaussianPosteriorConfig, base_dir: Path) -> GaussianPosteriorProblem:
    data = build_data(cfg, base_dir, "gaussian")
    s2 = float(cfg.noise_var)
    P = data.prior_prec + data.X.T @ data.X / s2
    P = 0.5 * (P + P.T)
    b = data.prior_prec @ data.prior_mean + data.X.T @ data.y / s2
    return GaussianPosteriorProblem(A=P, b=b, kappa=1.0, x0=_theta0(cfg, data), data=data, noise_var=s2)


def build_logistic(cfg: LogisticPosteriorConfig, base_dir: Path) -> LogisticPosteriorProblem:
    data = build_data(cfg, base_dir, "logistic")
    theta_map, H = laplace(data)
    return LogisticPosteriorProblem(A=H, b=H @ theta_map, kappa=1.0, x0=_theta0(cfg, data), data=data)


PROBLEM_KINDS.register("gaussian_posterior", ProblemKind(GaussianPosteriorConfig, build_gaussian))
PROBLEM_KINDS.register("logistic_posterior", ProblemKind(LogisticPosteriorConfig, build_logistic))
