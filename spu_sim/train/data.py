"""Data for the training loop: the scikit-learn 8x8 digits (bundled, no download) and Gaussian blobs.

Features are standardised with the training split's mean and std; optional reduction keeps N small
enough for the circuit: ``pca`` (n_components principal components of the training split) or
``pool`` (average pooling of the 8x8 image by ``pool`` x ``pool`` blocks).

Your own data: ``arrays`` (four .npy files: data.x_train, y_train, x_test, y_test) or ``function`` (data.function:
'module:function' returning a Dataset or (x_train, y_train, x_test, y_test)); no standardisation is applied to them.

``DATASETS`` is the registry of the data set names (``data.name``): each item builds the ``Dataset`` of a
``data`` config section.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
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


def _import(module_name: str):
    """importlib.import_module, then once more with the current folder on sys.path (a CLI run's own modules)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError:
        cwd = str(Path.cwd())
        if cwd in sys.path:
            raise
        sys.path.insert(0, cwd)
        try:
            return importlib.import_module(module_name)
        finally:
            sys.path.remove(cwd)


def load_callable(spec: str, field: str) -> Callable[..., Any]:
    """``package.module:function`` -> the function (the module imported by name, as Python would)."""
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise BadInputError(f"{field}: {spec!r} is not 'module:function'; give e.g. 'mypackage.data:load'")
    try:
        module = _import(module_name)
    except ImportError as err:
        raise BadInputError(f"{field}: cannot import module {module_name!r} ({err}); put it on PYTHONPATH or in "
                            "the current folder") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise BadInputError(f"{field}: {module_name!r} has no function {attr!r}")
    return fn


def as_dataset(data: Any, field: str, name: str = "arrays") -> Dataset:
    """A Dataset from a Dataset or a tuple (x_train, y_train, x_test, y_test): x 2-D with one row per example."""
    if isinstance(data, Dataset):
        return data
    if not isinstance(data, (tuple, list)) or len(data) != 4:
        raise BadInputError(f"{field}: expected (x_train, y_train, x_test, y_test), got {type(data).__name__}")
    xtr, ytr, xte, yte = (np.asarray(a) for a in data)
    for key, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        if x.ndim != 2 or y.ndim < 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise BadInputError(f"{field}: x_{key} must be (n, d) and y_{key} have n rows (got {x.shape}, {y.shape})")
        if x.dtype.kind not in "fiu" or not np.all(np.isfinite(x)):
            raise BadInputError(f"{field}: x_{key} must hold finite real numbers")
    integer = ytr.dtype.kind in "iu" and yte.dtype.kind in "iu" and ytr.ndim == 1 and yte.ndim == 1
    n_classes = int(max(ytr.max(), yte.max())) + 1 if integer else 0
    if integer and min(ytr.min(), yte.min()) < 0:
        raise BadInputError(f"{field}: integer labels must be >= 0 (class indices)")
    return Dataset(xtr.astype(float), ytr, xte.astype(float), yte, n_classes, name)


def _arrays(section: Any) -> Dataset:
    keys = ("x_train", "y_train", "x_test", "y_test")
    arrays = []
    for k in keys:
        path = getattr(section, k)
        if path is None:
            raise BadInputError(f"data.{k}: data.name arrays needs {', '.join(keys)} (.npy paths)")
        try:
            arr = np.load(_npy(path, f"data.{k}"), allow_pickle=False)
        except (OSError, ValueError) as err:
            raise BadInputError(f"data.{k}: cannot read {path!r} as .npy ({err})") from None
        if arr.dtype.kind not in "fiu":
            raise BadInputError(f"data.{k}: must hold real numbers (got dtype {arr.dtype})")
        arrays.append(arr)
    return as_dataset(tuple(arrays), "data")


def _npy(path: str, field: str) -> Path:
    p = Path(path)
    if p.suffix != ".npy" or not p.is_file():
        raise BadInputError(f"{field}: {path!r} is not an existing .npy file (paths are relative to the config file)")
    return p


def _function_data(section: Any) -> Dataset:
    if section.function is None:
        raise BadInputError("data.function: data.name function needs function: 'module:function'")
    return as_dataset(load_callable(section.function, "data.function")(), "data.function", "function")


#: data sets by ``data.name``: ``build(section) -> Dataset`` (section: spu_sim.train.config.DataConfig)
DATASETS: Registry[Callable[[Any], Dataset]] = Registry("a data set", "data.name")
DATASETS.register("digits", _digits)
DATASETS.register("blobs", _blobs)
DATASETS.register("arrays", _arrays)
DATASETS.register("function", _function_data)


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
