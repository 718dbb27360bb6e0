"""Problem: the matrix A, the vector b, the noise level kappa and the initial state x0, validated; and the
registry of problem kinds.

First arrow of the chain: config section -> Problem. Every rejection is a BadInputError naming the field.

Problem kinds: the ``problem`` section names a ``kind`` (default ``linear``). A kind is registered once, in the
module that defines it, with ``PROBLEM_KINDS.register(name, ProblemKind(config_model, build, implied_by))``:
its pydantic model (with ``kind: Literal[name]``) and ``build(section, base_dir) -> Problem`` (a Problem or
another type with the same attributes, such as a posterior's or a factored matrix's). A topology lists the
kinds it accepts in ``Topology.problem_kinds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.linalg as sla
from pydantic import BaseModel, ValidationError

from ..config import format_validation_error
from ..errors import BadInputError, ConfigError
from ..registry import Registry

SYMMETRY_RTOL = 1e-9
MAX_CONDITION = 1e12            # beyond it the element ratios and settling times of any SPU are not physical
MAX_D_FOR_CONDITION_CHECK = 4096
DEFAULT_KIND = "linear"


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


@dataclass(frozen=True)
class ProblemKind:
    """A registered problem kind: the model of its ``problem`` section (with ``kind: Literal[name]``), the
    builder ``build(section, base_dir) -> Problem``, and ``implied_by``: a key whose presence selects this kind
    when the section names none (``factors`` -> factored)."""

    config_model: type[BaseModel]
    build: Callable[[Any, Path], Any]
    implied_by: str | None = None


PROBLEM_KINDS: Registry[ProblemKind] = Registry("a problem kind", "problem.kind")


def problem_config(section: Any) -> BaseModel:
    """The ``problem`` section validated by the model of the kind it names (default linear, or the kind a key
    of the section implies)."""
    if isinstance(section, BaseModel):
        return section
    if not isinstance(section, dict):
        raise ConfigError("problem: must be a mapping (kind, and that kind's keys)")
    implied = [name for name, k in PROBLEM_KINDS.items() if k.implied_by and k.implied_by in section]
    model = PROBLEM_KINDS.get(section.get("kind", implied[0] if implied else DEFAULT_KIND)).config_model
    try:
        return model.model_validate(section)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, root="problem", model=model)) from None


def build_problem(section: Any, base_dir: Path | None = None):
    """Resolve a validated ``problem`` section (of any registered kind) into its Problem; relative paths resolve
    against base_dir (default: the current folder)."""
    base_dir = Path(".") if base_dir is None else base_dir
    return PROBLEM_KINDS.get(getattr(section, "kind", DEFAULT_KIND)).build(section, base_dir)
