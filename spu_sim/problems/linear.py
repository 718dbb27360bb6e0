"""Problem kind ``linear`` (the default): an SPD matrix, a vector, the noise level and the initial state.

    problem: {matrix: <matrix source>, vector: <vector source>, kappa: 0.01, x0: zero | b | [...]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

from pydantic import Field, field_validator

from ..config import Strict, finite as _finite
from .base import PROBLEM_KINDS, Problem, ProblemKind, validate_spd
from .sources import MatrixSource, RandomMatrix, VectorSource, load_array, random_matrix, vector_and_x0


class ProblemConfig(Strict):
    """The linear-algebra problem (``kind: linear``, the default): the SPU samples N(A^-1 b, kappa A^-1).

    matrix / vector: a path to a .npy file (relative to the config file), an inline list, or
    ``{random: {...}}``; the vector is required by topologies with a mean (opamp) and refused by those
    without (rlc). kappa: the noise level in problem units (dx = -(A x - b) dt/tau +
    sqrt(2 kappa/tau) dW); 0 switches the noise sources off. x0: the initial state of the transient:
    ``zero``, ``b`` (the gradient, as in TNGD) or an inline list.
    """

    kind: Literal["linear"] = "linear"
    matrix: MatrixSource
    vector: VectorSource | None = None
    kappa: float = Field(default=0.01, ge=0)
    x0: Union[Literal["zero", "b"], list[float]] = "zero"

    _fin = field_validator("kappa")(_finite)


def build_linear_problem(cfg: ProblemConfig, base_dir: Path) -> Problem:
    """The ``linear`` kind: matrix (SPD), vector (zeros when the topology has no mean), kappa, x0."""
    if isinstance(cfg.matrix, RandomMatrix):
        r = cfg.matrix.random
        A = random_matrix(r.kind, r.d, r.condition, r.scale, r.seed)
    else:
        A = load_array(cfg.matrix, "problem.matrix", base_dir, 2)
    validate_spd(A)
    d = A.shape[0]
    b, x0 = vector_and_x0(cfg.vector, cfg.x0, d, base_dir, f"the matrix is {d}x{d}")
    return Problem(A=A, b=b, kappa=float(cfg.kappa), x0=x0)


PROBLEM_KINDS.register("linear", ProblemKind(ProblemConfig, build_linear_problem))
