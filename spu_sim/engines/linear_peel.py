"""G22 z = r as a replayable solve: the row-singleton peeling of spu_sim.engines.linear_solve, recorded once as a
level-scheduled triangular substitution (then a sparse LU of any coupled core), applied to many right-hand sides.

    ps = PeelSolve(G22, labels, eq_labels, needed=cols)   # cols: the unknowns the caller reads (None: all)
    ps = PeelSolve(S22, ..., blocks=dense)                # G22 = S22 + the dense crossbar Blocks
    z = ps.solve(r)                                       # r (n,) or (n, k); exact in the needed entries

``solve_algebraic`` forms X = G22^-1 R explicitly, which is N x N dense for the factorised TNGD circuit (the
integrator currents depend on every state through J^T H J). Here nothing is formed: round k of the peeling is
the set of rows with one unknown left once rounds 1..k-1 are known, so z[cols_k] = (r[rows_k] - G[rows_k] z) /
piv_k (the pivot entry multiplies a still-zero z, the other entries only earlier rounds). One solve costs
nnz(G22 rows used) + the core's LU solve. Unknowns nobody reads (e.g. the output branch currents of the buffers
when only node voltages are saved) are pruned by a reverse pass over the rounds.

The peeling is incremental: a per-row count of unknown columns, decremented from the CSC columns of each round
(O(nnz) in all, not O(nnz) per round). Singular blocks raise BadInputError as solve_algebraic does.

Dense Blocks (spu_sim.engines.linear_stamp: a crossbar's -g entries) take part in the same peeling through their
presence masks (row counts, the unknown of a singleton row, the decrements), and a round's rows that lie in a
block subtract g[rows] @ z[cols] by GEMV; a block overlapping the sparse pattern or another block is stamped
into the sparse part first, so that the counts stay exact. The coupled core, if any, is solved sparse.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import BadInputError
from .linear_solve import NGSPICE_HINT, check_structure, factor
from .linear_stamp import Block


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
    """Replayable G22^-1 (module doc). Attributes: n_rounds, core_size, nnz_per_solve, dense_blocks (Blocks kept
    dense; the others were stamped into the sparse part)."""

    def __init__(self, G22: sp.spmatrix, labels: list[str], eq_labels: list[str], needed: np.ndarray | None = None,
                 what: str = "the algebraic part of the circuit", blocks: tuple[Block, ...] | list[Block] = ()) -> None:
        G = G22 if sp.isspmatrix_csr(G22) and G22.dtype == float else sp.csr_matrix(G22, dtype=float)
        G.sum_duplicates()
        n = G.shape[0]
        self.n = n
        G, blocks = _separate(G, list(blocks))
        self.dense_blocks = len(blocks)
        loc = [(positions(b.rows, n), positions(b.cols, n)) for b in blocks]
        Gc = G.tocsc()
        counts = np.diff(G.indptr).astype(np.int64)
        col_counts = np.diff(Gc.indptr).astype(np.int64)
        for b in blocks:
            counts[b.rows] += b.row_count
            col_counts[b.cols] += b.col_count
        if (counts == 0).any() or (col_counts == 0).any():   # names the empty row / column
            check_structure(_rows_csr(G, blocks, loc, np.arange(n)), labels, eq_labels, what)
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
            cands, owners = [cand[sel]], [owner[sel]]
            for b, (pr, _) in zip(blocks, loc):
                unk = np.flatnonzero(~known[b.cols])
                lr = pr[rows]
                m = lr >= 0
                if len(unk) and m.any():
                    i, j = np.nonzero(b.present[np.ix_(lr[m], unk)])
                    cands.append(b.cols[unk[j]])
                    owners.append(rows[m][i])
            cols, owner = np.concatenate(cands), np.concatenate(owners)
            cols, first = np.unique(cols, return_index=True)   # two rows fixing one unknown: the other stays
            rows = owner[first]
            known[cols] = True
            done[rows] = True
            rounds.append((rows, cols))
            hit = _gather(Gc.indptr, Gc.indices, cols)
            counts -= np.bincount(hit, minlength=n)
            for b, (_, pc) in zip(blocks, loc):
                lc = pc[cols]
                lc = lc[lc >= 0]
                if len(lc) == len(b.cols):   # every column of the block (a round's columns are distinct)
                    counts[b.rows] -= b.row_count
                elif len(lc):
                    counts[b.rows] -= b.present[:, lc].sum(axis=1)
            empty = np.flatnonzero((counts == 0) & ~done)
            if len(empty):
                raise BadInputError(f"{what} is singular: {', '.join(eq_labels[i] for i in empty[:5])} involves no"
                                    f" unknown left (a loop of ideal sources or index > 1); fix the circuit or"
                                    f" {NGSPICE_HINT}")
        core_rows, core_cols = np.flatnonzero(~done), np.flatnonzero(~known)
        if len(core_rows) != len(core_cols):
            raise BadInputError(f"{what} is singular: {len(core_rows)} equations for {len(core_cols)} unknowns left"
                                f" ({', '.join(labels[i] for i in core_cols[:5])}); fix the circuit or {NGSPICE_HINT}")

        def columns_of(rows: np.ndarray) -> np.ndarray:   # every column with an entry in these rows
            out = [_gather(G.indptr, G.indices, rows)]
            for b, (pr, _) in zip(blocks, loc):
                lr = pr[rows]
                lr = lr[lr >= 0]
                if len(lr) == len(b.rows):
                    out.append(b.cols[b.col_count > 0])
                elif len(lr):
                    out.append(b.cols[b.present[lr].any(axis=0)])
            return np.concatenate(out)

        # reverse pass: which unknowns are needed (the core, when present, is solved whole)
        need = np.ones(n, bool) if needed is None else np.zeros(n, bool)
        if needed is not None:
            need[np.asarray(needed, dtype=np.int64)] = True
            if len(core_cols):
                need[core_cols] = True
                need[columns_of(core_rows)] = True
            for rows, cols in reversed(rounds):
                need[columns_of(rows[need[cols]])] = True
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
            piv = np.bincount(owner[hit], A.data[hit], minlength=len(r)).astype(float)   # int when empty
            parts = []
            for b, (pr, pc) in zip(blocks, loc):
                lr = pr[r]
                idx = np.flatnonzero(lr >= 0)
                if len(idx) == 0:
                    continue
                li = lr[idx]
                lp = pc[c[idx]]
                on = lp >= 0
                piv[idx[on]] -= b.g[li[on], lp[on]]     # the pivot entry of a row may lie in the block
                whole = len(li) == b.g.shape[0] and (np.diff(li) == 1).all() and li[0] == 0
                D = b.g if whole else np.ascontiguousarray(b.g[li])
                parts.append((None if len(idx) == len(r) else idx, D, b.cols))
                nnz += D.size
            if np.any(piv == 0):
                raise BadInputError(f"{what} is singular at {eq_labels[int(r[np.argmin(np.abs(piv))])]}")
            self._rounds.append((r, c, A, 1.0 / piv, parts))
            nnz += A.nnz
        self._core = None
        if len(core_cols):
            sub = _rows_csr(G, blocks, loc, core_rows)
            core = sub[:, core_cols]
            lu = factor(core, [labels[i] for i in core_cols], what)
            sub = sub.tocoo()
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
        for rows, cols, A, ipiv, parts in self._rounds:
            t = r[rows] - A @ z
            for idx, D, bcols in parts:       # the block entries are -g: r - G z gains + g z
                if idx is None:
                    t += D @ z[bcols]
                else:
                    t[idx] += D @ z[bcols]
            z[cols] = t * (ipiv if vec else ipiv[:, None])
        if self._core is not None:
            rows, cols, off, lu = self._core
            z[cols] = lu.solve(np.ascontiguousarray(r[rows] - off @ z))
        return z


def positions(index: np.ndarray, n: int) -> np.ndarray:
    """(n,) position of each unknown in index, -1 where absent."""
    pos = np.full(n, -1, dtype=np.int64)
    pos[index] = np.arange(len(index))
    return pos


def _separate(G: sp.csr_matrix, blocks: list[Block]) -> tuple[sp.csr_matrix, list[Block]]:
    """Stamp into G every block whose entries could coincide with G's pattern or with an earlier block's
    (the peeling counts entries: a shared position would be counted twice)."""
    n = G.shape[0]
    kept: list[Block] = []
    extra = []
    for b in blocks:
        clash = G[b.rows][:, b.cols].nnz > 0 or any(
            np.intersect1d(b.rows, k.rows).size and np.intersect1d(b.cols, k.cols).size for k in kept)
        if clash:
            extra.append(b.csr(n))
        else:
            kept.append(b)
    for M in extra:
        G = G + M
    if extra:
        G.sum_duplicates()
    return G, kept


def _rows_csr(G: sp.csr_matrix, blocks: list[Block], loc: list, rows: np.ndarray) -> sp.csr_matrix:
    """(len(rows), n) CSR: these rows of G plus the blocks' entries in them."""
    sub = G[rows].tocoo()
    I, J, V = [sub.row], [sub.col], [sub.data]
    for b, (pr, _) in zip(blocks, loc):
        lr = pr[rows]
        idx = np.flatnonzero(lr >= 0)
        if len(idx):
            i, j = np.nonzero(b.present[lr[idx]])
            I.append(idx[i]), J.append(b.cols[j]), V.append(-b.g[lr[idx][i], j])
    return sp.csr_matrix((np.concatenate(V), (np.concatenate(I), np.concatenate(J))), shape=(len(rows), G.shape[1]))
