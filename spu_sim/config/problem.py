"""The ``problem`` section: matrix, vector, noise level and initial state (sources, not arrays yet).

spu_sim.problem turns it into arrays (``build_problem``); the topology decides whether a vector applies
(a topology without a mean, such as rlc, takes none).
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, field_validator

from .base import Strict, finite as _finite



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
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    _fin = field_validator("condition", "scale")(_finite)


class RandomVectorSpec(Strict):
    """A reproducible random right-hand side: ``normal`` (standard normal entries times scale) or
    ``ones`` (all entries equal to scale)."""

    kind: Literal["normal", "ones"] = "normal"
    scale: float = 1.0
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    _fin = field_validator("scale")(_finite)


class RandomMatrix(Strict):
    random: RandomMatrixSpec


class RandomVector(Strict):
    random: RandomVectorSpec


MatrixSource = Union[str, list[list[float]], RandomMatrix]
VectorSource = Union[str, list[float], RandomVector]


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


