"""G22 z = r as a replayable solve: the row-singleton peeling of spu_sim.engines.linear_solve, recorded once as a
level-scheduled triangular substitution (then a sparse LU of any coupled core), applied to many right-hand sides.

    ps = PeelSolve(G22, labels, eq_labels, needed=cols)   # cols: the unknowns the caller reads (None: all)
    z = ps.solve(r)                                       # r (n,) or (n, k); exact in the needed entries

``solve_algebraic`` forms X = G22^-1 R explicitly, which is N x N dense for the factorised TNGD circuit (the
integrator currents depend on every state through J^T H J). Here nothing is formed: round k of the peeling is
the set of rows with one unknown left once rounds 1..k-1 are known, so z[cols_k] = (r[rows_k] - G[rows_k] z) /
piv_k (the pivot entry multiplies a still-zero z, the other entries only earlier rounds). One solve costs
nnz(G22 rows used) + the core's LU solve. Unknowns nobody reads (e.g. the output branch currents of the buffers
when only node voltages are saved) are pruned by a reverse pass over the rounds.

The peeling is incremental: a per-row count of unknown columns, decremented from the CSC columns of each round
(O(nnz) in all, not O(nnz) per round). Singular blocks raise BadInputError as solve_algebraic does.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import BadInputError
from .linear_solve import NGSPICE_HINT, check_structure, factor


def _gather(indptr: np.ndarray, indices: np.ndarray, which: np.ndarray) -> np.ndarray:
    """indices of the compressed rows/columns `which`, concatenated (vectorised)."""
    if len(which) == 0:
        return np.zeros(0, dtype=indices.dtype)
    starts, ends = indptr[which], indptr[which + 1]
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=indices.dtype)
    offs = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return indices[np.arange(total) + offs]


class PeelSolve:
    """Replayable G22^-1 (module doc). Attributes: n_rounds, core_size, nnz_per_solve."""

    def __init__(self, G22: sp.spmatrix, labels: list[str], eq_labels: list[str], needed: np.ndarray | None = None,
                 what: str = "the algebraic part of the circuit") -> None:
        G = G22 if sp.isspmatrix_csr(G22) and G22.dtype == float else sp.csr_matrix(G22, dtype=float)
        G.sum_duplicates()
        n = G.shape[0]
        self.n = n
        Gc = G.tocsc()
        if (np.diff(G.indptr) == 0).any() or (np.diff(Gc.indptr) == 0).any():
            check_structure(G, labels, eq_labels, what)   # names the empty row / column
        counts = np.diff(G.indptr).astype(np.int64)
        known = np.zeros(n, bool)
        done = np.zeros(n, bool)
        rounds: list[tuple[np.ndarray, np.ndarray]] = []   # (rows, cols) of each round
        while True:
            rows = np.flatnonzero((counts == 1) & ~done)
            if len(rows) == 0:
                break
            # the one unknown column of each such row
            cand = _gather(G.indptr, G.indices, rows)
            owner = np.repeat(rows, np.diff(G.indptr)[rows])
            sel = ~known[cand]
            cols, owner = cand[sel], owner[sel]
            cols, first = np.unique(cols, return_index=True)   # two rows fixing one unknown: the other stays
            rows = owner[first]
            known[cols] = True
            done[rows] = True
            rounds.append((rows, cols))
            hit = _gather(Gc.indptr, Gc.indices, cols)
            counts -= np.bincount(hit, minlength=n)
            empty = np.flatnonzero((counts == 0) & ~done)
            if len(empty):
                raise BadInputError(f"{what} is singular: {', '.join(eq_labels[i] for i in empty[:5])} involves no"
                                    f" unknown left (a loop of ideal sources or index > 1); fix the circuit or"
                                    f" {NGSPICE_HINT}")
        core_rows, core_cols = np.flatnonzero(~done), np.flatnonzero(~known)
        if len(core_rows) != len(core_cols):
            raise BadInputError(f"{what} is singular: {len(core_rows)} equations for {len(core_cols)} unknowns left"
                                f" ({', '.join(labels[i] for i in core_cols[:5])}); fix the circuit or {NGSPICE_HINT}")
        # reverse pass: which unknowns are needed (the core, when present, is solved whole)
        need = np.ones(n, bool) if needed is None else np.zeros(n, bool)
        if needed is not None:
            need[np.asarray(needed, dtype=np.int64)] = True
            if len(core_cols):
                need[core_cols] = True
                need[_gather(G.indptr, G.indices, core_rows)] = True
            for rows, cols in reversed(rounds):
                m = need[cols]
                need[_gather(G.indptr, G.indices, rows[m])] = True
        self._rounds = []
        nnz = 0
        for rows, cols in rounds:
            m = need[cols]
            if not m.any():
                continue
            r, c = rows[m], cols[m]
            A = G[r]
            owner = np.repeat(np.arange(len(r)), np.diff(A.indptr))
            hit = A.indices == c[owner]
            piv = np.bincount(owner[hit], A.data[hit], minlength=len(r))
            if np.any(piv == 0):
                raise BadInputError(f"{what} is singular at {eq_labels[int(r[np.argmin(np.abs(piv))])]}")
            self._rounds.append((r, c, A, 1.0 / piv))
            nnz += A.nnz
        self._core = None
        if len(core_cols):
            core = G[core_rows][:, core_cols]
            lu = factor(core, [labels[i] for i in core_cols], what)
            sub = G[core_rows].tocoo()
            keep = ~np.isin(sub.col, core_cols)   # only the known columns feed the core's right-hand side
            off = sp.csr_matrix((sub.data[keep], (sub.row[keep], sub.col[keep])), shape=sub.shape)
            self._core = (core_rows, core_cols, off, lu)
            nnz += off.nnz + lu.L.nnz + lu.U.nnz
        self.n_rounds = len(rounds)
        self.core_size = len(core_cols)
        self.nnz_per_solve = nnz

    def solve(self, r: np.ndarray) -> np.ndarray:
        """z with G22 z = r in every needed entry (others 0); r (n,) or (n, k)."""
        r = np.asarray(r, dtype=float)
        z = np.zeros_like(r)
        vec = r.ndim == 1
        for rows, cols, A, ipiv in self._rounds:
            z[cols] = (r[rows] - A @ z) * (ipiv if vec else ipiv[:, None])
        if self._core is not None:
            rows, cols, off, lu = self._core
            z[cols] = lu.solve(np.ascontiguousarray(r[rows] - off @ z))
        return z
