"""Problem: the matrix A, the vector b, the noise level kappa and the initial state x0, validated.

First arrow of the chain: config -> Problem. Every rejection is a BadInputError naming the field.

Problem kinds: the ``problem`` section names a ``kind`` (default ``linear``: matrix, vector, kappa, x0). A kind
is registered once with ``register_problem_kind(kind, config_model, build)``: its pydantic model (with
``kind: Literal[name]``) and ``build(section, base_dir) -> Problem`` (a Problem or a subclass carrying more
data, such as a posterior's X and y). A topology lists the kinds it accepts in ``Topology.problem_kinds``.
"""

from __future__ import annotations

import reprlib

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg as sla

from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from .config import Config, ProblemConfig, RandomMatrix, RandomVector
from .errors import BadInputError, ConfigError

SYMMETRY_RTOL = 1e-9
MAX_CONDITION = 1e12            # beyond it the element ratios and settling times of any SPU are not physical
MAX_D_FOR_CONDITION_CHECK = 4096


@dataclass(frozen=True)
class Problem:
    """SPD matrix A (d, d), vector b (d,) (zeros when the topology has no mean), kappa >= 0 (problem units), x0 (d,)."""

    A: np.ndarray
    b: np.ndarray
    kappa: float
    x0: np.ndarray

    @property
    def d(self) -> int:
        return self.A.shape[0]

    @property
    def x_star(self) -> np.ndarray:
        return np.linalg.solve(self.A, self.b)


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


def _load_array(source: object, field: str, base_dir: Path, ndim: int) -> np.ndarray:
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
    else:
        try:
            arr = np.array(source, dtype=float)
        except (ValueError, TypeError):
            raise BadInputError(f"{field}: rows of an inline matrix must all have the same length") from None
    if arr.dtype.kind not in "fiu":
        raise BadInputError(f"{field}: must hold real numbers (got dtype {arr.dtype})")
    arr = arr.astype(float)
    if arr.ndim != ndim:
        raise BadInputError(f"{field}: must be {'a square matrix' if ndim == 2 else 'a vector'} (got shape {arr.shape})")
    return arr


def validate_spd(A: np.ndarray, field: str = "problem.matrix", condition: bool = True) -> None:
    """Raise BadInputError unless A is finite, square, symmetric and positive definite (and, with condition, not
    nearly singular: an eigen decomposition, which a caller whose design checks the condition itself skips)."""
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise BadInputError(f"{field}: must be a non-empty square matrix (got shape {A.shape})")
    if not np.all(np.isfinite(A)):
        i, j = np.argwhere(~np.isfinite(A))[0]
        raise BadInputError(f"{field}[{i}][{j}]: is {A[i, j]}; every entry must be finite")
    if not np.array_equal(A, A.T):   # exactly symmetric (the usual case) needs no tolerance pass
        asym = np.abs(A - A.T)
        tol = SYMMETRY_RTOL * max(np.abs(A).max(), np.finfo(float).tiny)
        if asym.max() > tol:
            i, j = np.unravel_index(np.argmax(asym), A.shape)
            raise BadInputError(f"{field}: not symmetric (entry [{i}][{j}] = {A[i, j]:.6g} but [{j}][{i}] = "
                                f"{A[j, i]:.6g}); the SPU needs a symmetric positive-definite matrix")
    if sla.lapack.dpotrf(A, lower=1, clean=0)[1] != 0:   # Cholesky (LAPACK's, half numpy's cost: no copy-out)
        lam = np.linalg.eigvalsh(A)[0]
        raise BadInputError(f"{field}: not positive definite (smallest eigenvalue {lam:.3g}); "
                            "add a damping term (A + lambda I) or fix the matrix")
    if condition and A.shape[0] <= MAX_D_FOR_CONDITION_CHECK:
        lam = np.linalg.eigvalsh(A)
        if lam[-1] > MAX_CONDITION * lam[0]:
            raise BadInputError(f"{field}: nearly singular (condition number {lam[-1] / lam[0]:.3g} > {MAX_CONDITION:g}): "
                                "no analog circuit resolves it; add a damping term (A + lambda I) or rescale")


_KINDS: dict[str, tuple[type[BaseModel], Callable[[Any, Path], Problem]]] = {}
_IMPLIED: dict[str, str] = {}   # a key that makes a section without ``kind`` this kind (factors -> factored)
DEFAULT_KIND = "linear"


def register_problem_kind(kind: str, config_model: type[BaseModel], build: Callable[[Any, Path], Problem],
                          implied_by: str | None = None) -> None:
    """Register a problem kind: its config model (``kind: Literal[kind]``) and its builder; ``implied_by``: a
    key whose presence selects this kind when the section names none."""
    _KINDS[kind] = (config_model, build)
    if implied_by:
        _IMPLIED[implied_by] = kind


def problem_kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def problem_config(section: Any) -> BaseModel:
    """The ``problem`` section validated by the model of the kind it names (default linear)."""
    from .config.base import format_validation_error  # noqa: PLC0415
    if isinstance(section, BaseModel):
        return section
    if not isinstance(section, dict):
        raise ConfigError("problem: must be a mapping (kind, and that kind's keys)")
    from . import topologies  # noqa: F401,PLC0415 - kinds registered by topology packages
    implied = [k for key, k in _IMPLIED.items() if key in section]
    kind = section.get("kind", implied[0] if implied else DEFAULT_KIND)
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ConfigError(f"problem.kind: {reprlib.repr(kind)} is not a problem kind; choose one of: {', '.join(_KINDS)}")
    model = _KINDS[kind][0]
    try:
        return model.model_validate(section)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, root="problem", model=model)) from None


def build_problem(cfg: Config | Any, base_dir: Path | None = None) -> Problem:
    """Resolve the problem section (of any registered kind) into a validated Problem."""
    if isinstance(cfg, Config):
        base_dir = cfg.base_dir if base_dir is None else base_dir
        cfg = cfg.problem
    base_dir = Path(".") if base_dir is None else base_dir
    return _KINDS[getattr(cfg, "kind", DEFAULT_KIND)][1](cfg, base_dir)


def vector_and_x0(vector, x0_source, n: int, base_dir: Path, size_note: str) -> tuple[np.ndarray, np.ndarray]:
    """problem.vector (None: zeros, for a topology without a mean) and problem.x0 as validated arrays of length n;
    size_note says where n comes from in the shape error (e.g. "the matrix is 4x4")."""
    if vector is None:
        b = np.zeros(n)
    elif isinstance(vector, RandomVector):
        r = vector.random
        b = (np.random.default_rng(r.seed).standard_normal(n) if r.kind == "normal" else np.ones(n)) * r.scale
    else:
        b = _load_array(vector, "problem.vector", base_dir, 1)
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


def build_linear_problem(cfg: ProblemConfig, base_dir: Path) -> Problem:
    """The ``linear`` kind: matrix (SPD), vector (zeros when the topology has no mean), kappa, x0."""
    if isinstance(cfg.matrix, RandomMatrix):
        r = cfg.matrix.random
        A = random_matrix(r.kind, r.d, r.condition, r.scale, r.seed)
    else:
        A = _load_array(cfg.matrix, "problem.matrix", base_dir, 2)
    validate_spd(A)
    d = A.shape[0]
    b, x0 = vector_and_x0(cfg.vector, cfg.x0, d, base_dir, f"the matrix is {d}x{d}")
    return Problem(A=A, b=b, kappa=float(cfg.kappa), x0=x0)


register_problem_kind("linear", ProblemConfig, build_linear_problem)
