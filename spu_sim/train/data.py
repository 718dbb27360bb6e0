"""Data for the training loop: the scikit-learn 8x8 digits (bundled, no download) and Gaussian blobs.

Features are standardised with the training split's mean and std; optional reduction keeps N small
enough for the circuit: ``pca`` (n_components principal components of the training split) or
``pool`` (average pooling of the 8x8 image by ``pool`` x ``pool`` blocks).

``DATASETS`` is the registry of the data set names (``data.name``): each item builds the ``Dataset`` of a
``data`` config section.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from spu_sim.errors import BadInputError
from spu_sim.registry import Registry


class Dataset(NamedTuple):
    x_train: np.ndarray  # (n_train, d)
    y_train: np.ndarray  # (n_train,) int
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    if n_test < 1 or len(y) - n_test < 2:   # no test set (accuracy NaN) or no spread to standardise with
        raise BadInputError(f"data.test_fraction: {test_fraction:g} of {len(y)} examples leaves {n_test} test and "
                            f"{len(y) - n_test} training examples; give a fraction between {1 / len(y):.3g} and "
                            f"{1 - 2 / len(y):.3g} (or more examples)")
    return x[idx[n_test:]], y[idx[n_test:]], x[idx[:n_test]], y[idx[:n_test]]


def _standardise(x_train: np.ndarray, x_test: np.ndarray):
    mu, sd = x_train.mean(axis=0), x_train.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return (x_train - mu) / sd, (x_test - mu) / sd


def _pool(images: np.ndarray, k: int) -> np.ndarray:
    n, side = images.shape[0], int(round(np.sqrt(images.shape[1])))
    if side % k:
        raise BadInputError(f"data.pool: {k} does not divide the image side {side}; use a divisor such as 2 or 4")
    im = images.reshape(n, side // k, k, side // k, k)
    return im.mean(axis=(2, 4)).reshape(n, -1)


def _pca(x_train: np.ndarray, x_test: np.ndarray, n_components: int):
    if not 1 <= n_components <= x_train.shape[1]:
        raise BadInputError(f"data.n_components: {n_components} is outside 1..{x_train.shape[1]}")
    mu = x_train.mean(axis=0)
    _, _, vt = np.linalg.svd(x_train - mu, full_matrices=False)
    v = vt[:n_components].T
    return (x_train - mu) @ v, (x_test - mu) @ v


def load_digits(*, test_fraction: float = 0.25, seed: int = 0, features: str = "pca", n_components: int = 16,
                pool: int = 2) -> Dataset:
    """The 1797 8x8 digits of ``sklearn.datasets.load_digits`` (10 classes), split and reduced."""
    from sklearn.datasets import load_digits as sk_load_digits

    raw = sk_load_digits()
    x, y = raw.data.astype(float) / 16.0, raw.target.astype(int)
    if features == "pool":
        x = _pool(x, pool)
    xtr, ytr, xte, yte = _split(x, y, test_fraction, seed)
    if features == "pca":
        xtr, xte = _pca(xtr, xte, n_components)
    elif features not in ("none", "pool"):
        raise BadInputError(f"data.features: {features!r} is not a reduction; choose one of: none, pca, pool")
    xtr, xte = _standardise(xtr, xte)
    return Dataset(xtr, ytr, xte, yte, 10, "digits")


def make_blobs(*, n_samples: int = 400, n_features: int = 4, n_classes: int = 3, spread: float = 1.0,
               test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Isotropic Gaussian blobs: class k has mean m_k ~ N(0, 4 I) and covariance spread^2 I."""
    rng = np.random.default_rng(seed)
    means = 2.0 * rng.standard_normal((n_classes, n_features))
    y = rng.integers(0, n_classes, n_samples)
    x = means[y] + spread * rng.standard_normal((n_samples, n_features))
    xtr, ytr, xte, yte = _split(x, y, test_fraction, seed + 1)
    xtr, xte = _standardise(xtr, xte)
    return Dataset(xtr, ytr, xte, yte, n_classes, "blobs")


def _digits(section: Any) -> Dataset:
    return load_digits(test_fraction=section.test_fraction, seed=section.seed, features=section.features,
                       n_components=section.n_components, pool=section.pool)


def _blobs(section: Any) -> Dataset:
    return make_blobs(n_samples=section.n_samples, n_features=section.n_features, n_classes=section.n_classes,
                      spread=section.spread, test_fraction=section.test_fraction, seed=section.seed)


#: data sets by ``data.name``: ``build(section) -> Dataset`` (section: spu_sim.train.config.DataConfig)
DATASETS: Registry[Callable[[Any], Dataset]] = Registry("a data set", "data.name")
DATASETS.register("digits", _digits)
DATASETS.register("blobs", _blobs)


def batch_indices(n_train: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """(steps, batch_size) indices: consecutive slices of fresh permutations (epochs), fixed by seed."""
    if batch_size > n_train:
        raise BadInputError(f"train.batch_size: {batch_size} exceeds the {n_train} training examples; lower it")
    rng = np.random.default_rng(seed)
    per_epoch = n_train // batch_size
    out = []
    while len(out) < steps:
        perm = rng.permutation(n_train)
        out.extend(perm[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch))
    return np.array(out[:steps])
