"""Array sources of every problem kind: a .npy path (relative to the config file), an inline list, or a
reproducible random spec; and the shared vector / initial-state rules.

    load_array(source, "problem.matrix", base_dir, ndim=2)      # validated float array
    random_matrix("spd", d, condition, scale, seed)             # Q diag(lam) Q^T, lam log-spaced
    vector_and_x0(vector, x0, n, base_dir, "the matrix is 4x4")  # b (zeros without a vector) and x0
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

import numpy as np
from pydantic import Field, field_validator

from ..config import Seed, Strict, finite as _finite
from ..errors import BadInputError


class RandomMatrixSpec(Strict):
    """A reproducible random test matrix.

    kind: ``spd`` -- Q diag(lam) Q^T with Q Haar-random orthogonal and lam log-spaced in
    [scale, scale * condition]; ``m_matrix`` -- a symmetric M-matrix (non-positive off-diagonal,
    diagonally dominant) with the given condition number (approximately) -- what passive RLC
    coupling can realise.
    """

    kind: Literal["spd", "m_matrix"] = "spd"
    d: int = Field(ge=1, le=512)
    condition: float = Field(default=10.0, ge=1.0)
    scale: float = Field(default=1.0, gt=0)
    seed: Seed = 0

    _fin = field_validator("condition", "scale")(_finite)


class RandomVectorSpec(Strict):
    """A reproducible random right-hand side: ``normal`` (standard normal entries times scale) or
    ``ones`` (all entries equal to scale)."""

    kind: Literal["normal", "ones"] = "normal"
    scale: float = 1.0
    seed: Seed = 0

    _fin = field_validator("scale")(_finite)


class RandomMatrix(Strict):
    random: RandomMatrixSpec


class RandomVector(Strict):
    random: RandomVectorSpec


MatrixSource = Union[str, list[list[float]], RandomMatrix]
VectorSource = Union[str, list[float], RandomVector]


def random_matrix(kind: str, d: int, condition: float, scale: float, seed: int) -> np.ndarray:
    """Reproducible random test matrices (see RandomMatrixSpec)."""
    rng = np.random.default_rng(seed)
    if kind == "spd":
        Q, R = np.linalg.qr(rng.standard_normal((d, d)))
        Q = Q * np.sign(np.diag(R))
        lam = scale * np.logspace(0.0, np.log10(condition), d) if d > 1 else np.array([scale])
        A = (Q * lam) @ Q.T
        return 0.5 * (A + A.T)
    if kind == "m_matrix":
        # graph Laplacian of random positive weights plus a diagonal shift: M-matrix, SPD.
        W = rng.uniform(0.2, 1.0, (d, d))
        W = np.triu(W, 1)
        W = W + W.T
        L = np.diag(W.sum(1)) - W
        lam = np.linalg.eigvalsh(L)
        lam_max = lam[-1] if d > 1 else 1.0
        # choose shift s so that (lam_max + s) / s = condition (lam_min of L is 0)
        shift = lam_max / (condition - 1.0) if condition > 1 else 1.0
        A = L + shift * np.eye(d)
        return scale * A / np.linalg.eigvalsh(A)[0]
    raise BadInputError(f"problem.matrix.random.kind: {kind!r} is unknown")


def load_array(source: object, field: str, base_dir: Path, ndim: int, matrix_word: str = "a square matrix") -> np.ndarray:
    """A .npy path (relative to base_dir) or an inline list as a float array of ``ndim`` dimensions.

    Args:
        source: the path or the inline list of the config.
        field: the dotted config key, for the error text.
        base_dir: the folder relative paths resolve against (the config file's).
        ndim: 1 (a vector) or 2 (a matrix).
        matrix_word: how the error for a wrong ndim names a 2-D array ("a square matrix", "a 2-D matrix", ...).

    Raises BadInputError (one line naming ``field``) for a missing or unreadable file, ragged rows, a non-real
    dtype or the wrong number of dimensions.
    """
    if isinstance(source, str):
        path = (base_dir / source).resolve()
        if path.suffix != ".npy":
            raise BadInputError(f"{field}: {source!r} is not a .npy file; give a .npy path, an inline list or {{random: ...}}")
        if not path.is_file():
            raise BadInputError(f"{field}: file {str(path)!r} not found (paths are relative to the config file)")
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is bad input
            raise BadInputError(f"{field}: cannot read {str(path)!r} as .npy ({e})") from None
        if not isinstance(arr, np.ndarray):     # np.load reads by content: an .npz archive under a .npy name
            arr.close()
            raise BadInputError(f"{field}: {str(path)!r} is an .npz archive named .npy; save one array with np.save "
                                "(or np.load it and np.save the matrix you mean)")
    else:
        try:
            arr = np.array(source, dtype=float)
        except (ValueError, TypeError):
            raise BadInputError(f"{field}: rows of an inline matrix must all have the same length") from None
    if arr.dtype.kind not in "fiu":
        raise BadInputError(f"{field}: must hold real numbers (got dtype {arr.dtype})")
    arr = arr.astype(float)
    if arr.ndim != ndim:
        raise BadInputError(f"{field}: must be {matrix_word if ndim == 2 else 'a vector'} (got shape {arr.shape})")
    return arr


def vector_and_x0(vector, x0_source, n: int, base_dir: Path, size_note: str) -> tuple[np.ndarray, np.ndarray]:
    """problem.vector (None: zeros, for a topology without a mean) and problem.x0 as validated arrays of length n;
    size_note says where n comes from in the shape error (e.g. "the matrix is 4x4")."""
    if vector is None:
        b = np.zeros(n)
    elif isinstance(vector, RandomVector):
        r = vector.random
        b = (np.random.default_rng(r.seed).standard_normal(n) if r.kind == "normal" else np.ones(n)) * r.scale
    else:
        b = load_array(vector, "problem.vector", base_dir, 1)
    if b.shape != (n,):
        raise BadInputError(f"problem.vector: has {b.shape[0]} entries but {size_note}")
    if not np.all(np.isfinite(b)):
        raise BadInputError(f"problem.vector[{int(np.argmax(~np.isfinite(b)))}]: every entry must be finite")
    if isinstance(x0_source, str):
        x0 = np.zeros(n) if x0_source == "zero" else b.copy()
    else:
        x0 = np.array(x0_source, dtype=float)
        if x0.shape != (n,) or not np.all(np.isfinite(x0)):
            raise BadInputError(f"problem.x0: must be 'zero', 'b' or a list of {n} finite numbers")
    return b, x0
