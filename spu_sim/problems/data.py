"""Data sources of the posterior problems: random designs and targets with a seed, and scikit-learn's
shipped data sets (no download: breast_cancer for classification, diabetes for regression).

    X: {random: {n: 40, d: 4, scale: 0.5, seed: 1}}          X_kj iid N(0, scale^2)
    y: {random: {theta_scale: 1.0, seed: 2}}                 theta_true ~ N(0, theta_scale^2 I), then
                                                              y = X theta_true + N(0, noise_var)  (gaussian)
                                                              y ~ Bernoulli(sigmoid(X theta_true)) (logistic)
    X: {dataset: breast_cancer, features: [mean radius, 1], n: 60, seed: 0, standardize: true, intercept: false}

A data set's rows: ``n`` of them drawn without replacement by a PCG64 permutation of ``seed`` (all rows when
n is null); columns: ``features`` by name or index (all when null), standardised to mean 0 and standard
deviation 1 over the chosen rows when ``standardize``; ``intercept`` appends a column of ones. Its
targets (y, when the config gives none): breast_cancer's labels (1 = benign), diabetes' disease progression
(standardised when ``standardize``).
"""

from __future__ import annotations

from typing import Literal, Union

import numpy as np
from pydantic import Field, field_validator

from ..config import Seed, Strict, finite as _finite
from ..errors import BadInputError


class RandomDesignSpec(Strict):
    """X (n, d) with iid N(0, scale^2) entries from numpy PCG64 seeded with ``seed``."""

    n: int = Field(ge=1, le=5000)
    d: int = Field(ge=1, le=128)
    scale: float = Field(default=1.0, gt=0)
    seed: Seed = 0

    _fin = field_validator("scale")(_finite)


class RandomDesign(Strict):
    random: RandomDesignSpec


class RandomTargetSpec(Strict):
    """y drawn from the model itself with theta_true ~ N(0, theta_scale^2 I) (seeded)."""

    theta_scale: float = Field(default=1.0, ge=0)
    seed: Seed = 0

    _fin = field_validator("theta_scale")(_finite)


class RandomTarget(Strict):
    random: RandomTargetSpec


class DatasetSpec(Strict):
    dataset: Literal["breast_cancer", "diabetes"]
    features: list[Union[str, int]] | None = None
    n: int | None = Field(default=None, ge=1)
    seed: Seed = 0
    standardize: bool = True
    intercept: bool = False


def random_design(spec: RandomDesignSpec) -> np.ndarray:
    return np.random.default_rng(spec.seed).standard_normal((spec.n, spec.d)) * spec.scale


def random_target(spec: RandomTargetSpec, X: np.ndarray, model: str, noise_var: float) -> np.ndarray:
    """y from the model with a seeded theta_true (module doc)."""
    rng = np.random.default_rng(spec.seed)
    theta = rng.standard_normal(X.shape[1]) * spec.theta_scale
    z = X @ theta
    if model == "logistic":
        return (rng.uniform(size=z.shape) < 0.5 * (1.0 + np.tanh(0.5 * z))).astype(float)
    return z + rng.standard_normal(z.shape) * np.sqrt(noise_var)


def _bunch(name: str):
    from sklearn import datasets  # noqa: PLC0415 - heavy
    return {"breast_cancer": datasets.load_breast_cancer, "diabetes": datasets.load_diabetes}[name]()


def load_dataset(spec: DatasetSpec, model: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """(X, y, feature names, description) of a shipped scikit-learn data set (module doc)."""
    if model == "logistic" and spec.dataset == "diabetes":
        raise BadInputError("problem.X.dataset: diabetes has a continuous target; logistic_posterior needs labels, "
                            "use breast_cancer")
    bunch = _bunch(spec.dataset)
    data, target = np.asarray(bunch.data, dtype=float), np.asarray(bunch.target, dtype=float)
    all_names = [str(f) for f in bunch.feature_names]
    cols = list(range(len(all_names))) if spec.features is None else []
    for f in spec.features or []:
        if isinstance(f, int):
            if not 0 <= f < len(all_names):
                raise BadInputError(f"problem.X.features: index {f} is out of range (0..{len(all_names) - 1})")
            cols.append(f)
        elif f in all_names:
            cols.append(all_names.index(f))
        else:
            raise BadInputError(f"problem.X.features: {f!r} is not a feature of {spec.dataset}; choose from: "
                                + ", ".join(all_names[:10]) + (", ..." if len(all_names) > 10 else ""))
    if len(set(cols)) != len(cols):
        raise BadInputError("problem.X.features: a feature is listed twice")
    n_all = data.shape[0]
    if spec.n is not None and spec.n > n_all:
        raise BadInputError(f"problem.X.n: {spec.n} rows asked for but {spec.dataset} has {n_all}")
    rows = np.arange(n_all) if spec.n is None else np.random.default_rng(spec.seed).permutation(n_all)[:spec.n]
    X, y = data[np.ix_(rows, cols)], target[rows]
    if spec.standardize:
        sd = X.std(axis=0)
        if np.any(sd == 0):
            raise BadInputError("problem.X: a chosen feature is constant over the chosen rows; pick other rows or features")
        X = (X - X.mean(axis=0)) / sd
        if spec.dataset == "diabetes":
            y = (y - y.mean()) / y.std()
    names = tuple(all_names[c] for c in cols)
    if spec.intercept:
        X = np.column_stack([X, np.ones(len(rows))])
        names = names + ("intercept",)
    return X, y, names, f"scikit-learn {spec.dataset} ({len(rows)} rows, seed {spec.seed})"
