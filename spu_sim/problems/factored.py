"""Problem kind ``factored``: A = J^T H J + damping I given by its factors (TNGD's J_f, H_L and lambda).

    problem: {kind: factored,            # may be left out: a section with ``factors`` is this kind
              factors: {J: <matrix source> (m x N), H: <matrix source> (m x m, symmetric PSD), damping: 0.01},
              vector: <vector source> (N), kappa: 0.0, x0: zero | b | [...]}

Matrix sources as for ``problem.matrix`` (a .npy path relative to the config file, an inline list) plus
random specs: J ``{random: {kind: normal, rows: m, cols: N, scale, seed}}`` (iid N(0, scale^2) entries),
H ``{random: {kind: spd, d: m, condition, scale, seed}}`` (spu_sim.problems.sources.random_matrix).

The Problem object (``FactoredProblem``) carries J, H and damping; A is formed densely only when something
asks for ``.A`` (the ideal reference at small N). Everything the design needs is O(m^2 N + m^3) through the
push-through identity (J^T H J + lambda I) J^T = J^T (H K + lambda I), K = J J^T (m x m):

    A^-1 b      = (b - J^T M^-1 H J b) / lambda,          M = H K + lambda I
    diag(A^-1)  = (1 - diag(J^T M^-1 H J)) / lambda
    J A^-1 J^T  = K M^-1                                   (A^-1 J^T = J^T M^-1)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal, Union

import numpy as np
import scipy.linalg as sla
from pydantic import Field, field_validator

from ..config import Seed, Strict, finite as _finite
from ..errors import BadInputError
from .base import PROBLEM_KINDS, SYMMETRY_RTOL, ProblemKind
from .sources import RandomMatrix, VectorSource, load_array, random_matrix, vector_and_x0

PSD_RTOL = 1e-10
#: columns of J per chunk of diag_inv (m x 4096 doubles: 21 MB at m = 640)
DIAG_INV_CHUNK = 4096


class RandomFactorSpec(Strict):
    """A reproducible random rectangular factor: iid normal entries of rms ``scale`` (numpy PCG64, ``seed``)."""

    kind: Literal["normal"] = "normal"
    rows: int = Field(ge=1, le=4096)
    cols: int = Field(ge=1, le=100_000)
    scale: float = Field(default=1.0, gt=0)
    seed: Seed = 0

    _fin = field_validator("scale")(_finite)


class RandomFactor(Strict):
    random: RandomFactorSpec


class FactorsConfig(Strict):
    """J (m x N), H (m x m, symmetric positive semi-definite) and the damping lambda >= 0 of
    A = J^T H J + lambda I (lambda = 0 only when J^T H J itself is non-singular)."""

    J: Union[str, list[list[float]], RandomFactor]
    H: Union[str, list[list[float]], RandomMatrix]
    damping: float = Field(ge=0)

    _fin = field_validator("damping")(_finite)


class FactoredProblemConfig(Strict):
    """The ``factored`` problem kind (module doc)."""

    kind: Literal["factored"] = "factored"
    factors: FactorsConfig
    vector: VectorSource
    kappa: float = Field(default=0.01, ge=0)
    x0: Union[Literal["zero", "b"], list[float]] = "zero"

    _fin = field_validator("kappa")(_finite)


class FactoredProblem:
    """The problem A x = b with A = J^T H J + damping I; J (m, N), H (m, m), damping >= 0, b (N,), kappa, x0 (N,).

    It has the attributes of a dense ``Problem`` (A, b, kappa, x0, d, x_star), but ``A`` is formed (densely, once)
    only when something reads it; ``x_star``, ``diag_inv``, ``matvec`` and ``j_ainv_jt`` never form it.
    Build one with ``FactoredProblem.create(J, H, damping, b, kappa, x0)`` (validated) or directly (trusted).
    """

    def __init__(self, J: np.ndarray, H: np.ndarray, damping: float, b: np.ndarray, kappa: float,
                 x0: np.ndarray) -> None:
        self.J = np.asarray(J, float)
        self.H = np.asarray(H, float)
        self.damping = float(damping)
        self.b = np.asarray(b, float)
        self.kappa = float(kappa)
        self.x0 = np.asarray(x0, float)

    @classmethod
    def create(cls, J, H, damping: float, b, kappa: float, x0, field: str = "problem") -> "FactoredProblem":
        J, H = np.asarray(J, float), np.asarray(H, float)
        validate_factors(J, H, float(damping), field)
        n = J.shape[1]
        b, x0 = np.asarray(b, float), np.asarray(x0, float)
        for name, v in (("vector", b), ("x0", x0)):
            if v.shape != (n,) or not np.all(np.isfinite(v)):
                raise BadInputError(f"{field}.{name}: must hold {n} finite numbers (J is {J.shape[0]} x {n}); "
                                    f"got shape {v.shape}")
        return cls(J, H, damping, b, kappa, x0)

    def __repr__(self) -> str:
        return f"FactoredProblem(m={self.m}, N={self.d}, damping={self.damping:g}, kappa={self.kappa:g})"

    @property
    def m(self) -> int:
        return self.J.shape[0]

    @property
    def d(self) -> int:
        return self.J.shape[1]

    @cached_property
    def A(self) -> np.ndarray:
        """Dense A (N, N), formed on first use (cost m N^2): for the ideal reference at small N only."""
        A = self.J.T @ (self.H @ self.J)
        A += A.T          # symmetrised in place: two N x N arrays at peak (numpy buffers the overlapping A.T)
        A *= 0.5
        A[np.diag_indices_from(A)] += self.damping
        return A

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """A v in O(m N)."""
        return self.J.T @ (self.H @ (self.J @ v)) + self.damping * v

    @cached_property
    def K(self) -> np.ndarray:
        """K = J J^T (m, m), formed once (O(m^2 N): the design reads it several times)."""
        return self.J @ self.J.T

    @cached_property
    def core_eigenvalues(self) -> np.ndarray:
        """The m eigenvalues of K^1/2 H K^1/2 (K = J J^T), ascending: the non-zero spectrum of J^T H J, in
        O(m^2 N + m^3); computed once (read-only): the noise step of a solve (spu_sim.analog.lambda_max) and the
        design (its lambda_max, nominal_lambda_min) read it."""
        K = self.K
        w, q = np.linalg.eigh(0.5 * (K + K.T))
        ks = (q * np.sqrt(np.clip(w, 0, None))) @ q.T
        core = np.linalg.eigvalsh(ks @ self.H @ ks)
        core.setflags(write=False)
        return core

    def _core(self) -> np.ndarray:
        """M = H K + damping I (m, m), K = J J^T."""
        return self.H @ self.K + self.damping * np.eye(self.m)

    @property
    def x_star(self) -> np.ndarray:
        if self.damping <= 0:
            return np.linalg.solve(self.A, self.b)
        hjb = self.H @ (self.J @ self.b)
        return (self.b - self.J.T @ np.linalg.solve(self._core(), hjb)) / self.damping

    def diag_inv(self) -> np.ndarray:
        """diag(A^-1) (N,) in O(m^2 N): (1 - diag(J^T M^-1 H J)) / lambda (module doc) in a symmetric form. With
        H = R^T R (R = diag(sqrt h) for a diagonal H, else sqrt(w) V^T from H = V diag(w) V^T), M^-1 H =
        R^T S^-1 R with S = R K R^T + lambda I (push-through), symmetric positive definite; its Cholesky factor
        S = L L^T gives diag(J^T M^-1 H J) = the column sums of Y * Y, Y = L^-1 R J. A diagonal H (TNGD's H = I)
        costs one triangular solve with N right-hand sides (m^2 N flops), half the LU solve of M with H J
        (2 m^2 N) it replaces (5.0 -> 1.4 s CPU at N = 101,260, m = 640); a general H one GEMM (L^-1 R) J. Chunks
        of DIAG_INV_CHUNK columns: no m x N temporary (the LU form held two, 1 GB there)."""
        if self.damping <= 0:
            return np.diag(np.linalg.inv(self.A)).copy()
        H, lam = self.H, self.damping
        hd = np.diag(H)
        diagonal = not np.count_nonzero(H - np.diag(hd))
        if diagonal:
            rh = np.sqrt(np.clip(hd, 0.0, None))
            S = rh[:, None] * self.K * rh[None, :]
        else:
            w, V = np.linalg.eigh(0.5 * (H + H.T))
            R = np.sqrt(np.clip(w, 0.0, None))[:, None] * V.T
            S = R @ self.K @ R.T
        S = 0.5 * (S + S.T)
        S[np.diag_indices_from(S)] += lam
        L = np.linalg.cholesky(S)
        B = None if diagonal else sla.solve_triangular(L, R, lower=True)
        n = self.d
        out = np.empty(n)
        for c0 in range(0, n, DIAG_INV_CHUNK):
            Jc = self.J[:, c0:c0 + DIAG_INV_CHUNK]
            if diagonal:
                # L Y = R Jc as Y^T L^T = (R Jc)^T: the transposed chunk is Fortran-ordered, solved in place
                Yt = (rh[:, None] * Jc).T
                Yt = sla.blas.dtrsm(1.0, L, Yt, side=1, lower=1, trans_a=1, overwrite_b=1)
                q = np.einsum("nk,nk->n", Yt, Yt)
            else:
                Y = B @ Jc
                q = np.einsum("kn,kn->n", Y, Y)
            out[c0:c0 + len(q)] = (1.0 - q) / lam
        return out

    def j_ainv_jt(self) -> np.ndarray:
        """J A^-1 J^T (m, m) in O(m^2 N + m^3)."""
        K = self.K
        if self.damping <= 0:
            return self.J @ np.linalg.solve(self.A, self.J.T)
        return np.linalg.solve(self._core().T, K.T).T               # K M^-1


def validate_factors(J: np.ndarray, H: np.ndarray, damping: float, field: str = "problem") -> None:
    """BadInputError unless J (m, N) and H (m, m) are finite, H symmetric PSD, and A = J^T H J + damping I
    is positive definite (damping > 0, or damping = 0 with J^T H J non-singular)."""
    f = f"{field}.factors"
    if J.ndim != 2 or J.size == 0:
        raise BadInputError(f"{f}.J: must be a non-empty m x N matrix (got shape {J.shape})")
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise BadInputError(f"{f}.H: must be a square m x m matrix (got shape {H.shape})")
    m, n = J.shape
    if H.shape[0] != m:
        raise BadInputError(f"{f}.H: is {H.shape[0]} x {H.shape[1]} but J is {m} x {n}; H must be {m} x {m} "
                            "(J's rows are H's rows and columns)")
    for name, M in (("J", J), ("H", H)):
        # a finite sum has no NaN or inf among its terms (one reduction, no boolean copy of the m x N factor); a sum
        # that overflowed is checked entry by entry
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.sum(M)
        if not np.isfinite(total) and not np.all(np.isfinite(M)):
            i, j = np.argwhere(~np.isfinite(M))[0]
            raise BadInputError(f"{f}.{name}[{i}][{j}]: is {M[i, j]}; every entry must be finite")
    if not np.isfinite(damping) or damping < 0:
        raise BadInputError(f"{f}.damping: must be a finite number >= 0 (got {damping})")
    asym = np.abs(H - H.T)
    hmax = max(float(np.abs(H).max()), np.finfo(float).tiny)
    if asym.max() > SYMMETRY_RTOL * hmax:
        i, j = np.unravel_index(np.argmax(asym), H.shape)
        raise BadInputError(f"{f}.H: not symmetric (entry [{i}][{j}] = {H[i, j]:.6g} but [{j}][{i}] = {H[j, i]:.6g}); "
                            "H must be symmetric positive semi-definite")
    lam = np.linalg.eigvalsh(0.5 * (H + H.T))
    if lam[0] < -PSD_RTOL * max(abs(lam[-1]), np.finfo(float).tiny):
        raise BadInputError(f"{f}.H: not positive semi-definite (smallest eigenvalue {lam[0]:.3g}); "
                            "H must be symmetric positive semi-definite (a loss Hessian)")
    if damping == 0:
        if m < n:
            raise BadInputError(f"{f}.damping: 0 with J^T H J singular (rank <= m = {m} < N = {n}); set damping > 0")
        A = J.T @ H @ J
        try:
            np.linalg.cholesky(0.5 * (A + A.T))
        except np.linalg.LinAlgError:
            raise BadInputError(f"{f}.damping: 0 with J^T H J singular (not positive definite); "
                                "set damping > 0") from None


def _factor(source, field: str, base_dir: Path) -> np.ndarray:
    if isinstance(source, RandomFactor):
        r = source.random
        return np.random.default_rng(r.seed).standard_normal((r.rows, r.cols)) * r.scale
    if isinstance(source, RandomMatrix):
        r = source.random
        return random_matrix(r.kind, r.d, r.condition, r.scale, r.seed)
    return load_array(source, field, base_dir, 2, matrix_word="a 2-D matrix")


def build_factored_problem(cfg: FactoredProblemConfig, base_dir: Path) -> FactoredProblem:
    """The ``factored`` kind: validated factors, vector (N,), kappa, x0."""
    J = _factor(cfg.factors.J, "problem.factors.J", base_dir)
    H = _factor(cfg.factors.H, "problem.factors.H", base_dir)
    validate_factors(J, H, cfg.factors.damping)
    n = J.shape[1]
    b, x0 = vector_and_x0(cfg.vector, cfg.x0, n, base_dir, f"J is {J.shape[0]} x {n} (N = {n})")
    problem = FactoredProblem(J, H, cfg.factors.damping, b, float(cfg.kappa), x0)
    problem._core()    # K = J J^T and H K formed here (K is cached): a scale that overflows them is the problem's
    return problem


PROBLEM_KINDS.register("factored", ProblemKind(FactoredProblemConfig, build_factored_problem, implied_by="factors"))
