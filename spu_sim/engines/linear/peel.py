"""G22 z = r for the algebraic block of the linear engine's reduction: ONE row-singleton peeling, two applications.

    ps = PeelSolve(G22, labels, eq_labels, needed=cols)   # replayable: cols are the unknowns the caller reads
    ps = PeelSolve(S22, ..., blocks=dense)                # G22 = S22 + the dense crossbar Blocks
    z = ps.solve(r)                                       # r (n,) or (n, k); exact in the needed entries
    X = solve_algebraic(G22, R, labels, eq_labels)        # X = G22^-1 R as a sparse matrix (the dense model)

Circuits of controlled sources are nearly triangular: a voltage source fixes its node, a buffer copies a state,
then each KCL row leaves one unknown branch current. ``peel`` finds the rounds once: round k is the set of rows
with one unknown left once rounds 1..k-1 are known (rows of singletons), and the coupled core that is left (if
any) is factored (SuperLU). The peeling is incremental: a per-row count of unknown columns, decremented from the
CSC columns of each round (O(nnz) in all, not O(nnz) per round). Two applications share it:

- ``solve_algebraic`` (method modal / loop, model.build_model): X = G22^-1 R with R sparse, eliminated round by
  round, W_k = diag(1 / piv_k) R_eff[rows_k], R_eff <- R_eff - G[:, cols_k] W_k, then the core's LU on what is
  left. The result stays sparse: for the all-to-all op-amp SPU at d = 1024 the whole block (9 d unknowns)
  peels in a few rounds, where a dense-right-hand-side SuperLU solve took minutes.
- ``PeelSolve`` (method krylov): nothing is formed, which matters where X would be N x N dense (the factorised
  TNGD circuit: the integrator currents depend on every state through J^T H J). The rounds are recorded as a
  level-scheduled triangular substitution, z[cols_k] = (r[rows_k] - G[rows_k] z) / piv_k (the pivot entry
  multiplies a still-zero z, the other entries only earlier rounds), then the core's LU. One solve costs
  nnz(G22 rows used) + the core's LU solve. Unknowns nobody reads (e.g. the output branch currents of the buffers
  when only node voltages are saved) are pruned by a reverse pass over the rounds.

Dense Blocks (stamp.Block: a crossbar's -g entries, PeelSolve only) take part in the same peeling through their
presence masks (row counts, the unknown of a singleton row, the decrements), and a round's rows that lie in a
block subtract g[rows] @ z[cols] by GEMV; a block overlapping the sparse pattern or another block is stamped
into the sparse part first, so that the counts stay exact. The coupled core, if any, is solved sparse.

Singular blocks (a floating node, a loop of ideal sources or capacitors, an inductor cutset: index > 1) raise
BadInputError naming the unknowns or equations involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ...errors import BadInputError
from .result import NGSPICE_HINT
from .stamp import Block


def check_structure(G: sp.spmatrix, labels: list[str], eq_labels: list[str], what: str) -> None:
    """Empty rows or columns: an unknown nothing determines or an equation with no unknown."""
    G = sp.csr_matrix(G)
    empty_cols = np.flatnonzero(np.bincount(G.indices, minlength=G.shape[1]) == 0)
    empty_rows = np.flatnonzero(np.diff(G.indptr) == 0)
    if len(empty_cols) or len(empty_rows):
        names = [labels[i] for i in empty_cols[:5]] + [eq_labels[i] for i in empty_rows[:5]]
        raise BadInputError(f"{what} is singular: nothing determines {', '.join(names)} (a floating node, or a"
                            " loop of capacitors / voltage sources or a cutset of inductors: index > 1); fix the circuit"
                            f" or {NGSPICE_HINT}")


def factor(G: sp.spmatrix, labels: list[str], what: str):
    """SuperLU of G, or BadInputError naming the unknowns of its null vector (dense SVD up to 3000)."""
    try:
        lu = spla.splu(G.tocsc())
    except RuntimeError:
        lu = None
    if lu is not None:
        diag = np.abs(lu.U.diagonal())
        if diag.min() > 1e-13 * diag.max():
            return lu
    names = "?"
    if G.shape[0] <= 3000:
        _, s, vh = np.linalg.svd(G.toarray())
        v = np.abs(vh[-1])
        names = ", ".join(labels[i] for i in np.flatnonzero(v > 0.1 * v.max())[:8])
    raise BadInputError(f"{what} is singular (a floating node, a loop of ideal sources or an index > 1"
                        f" configuration) involving {names}; fix the circuit or {NGSPICE_HINT}")


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


@dataclass
class Peeling:
    """The rounds of the row-singleton peeling of G (+ blocks) and the core left (module doc).

    G: the sparse part (canonical CSR; blocks that overlap it or each other stamped in), Gc: G as CSC, blocks:
    the Blocks kept dense, loc: per block (position of each unknown among its rows, among its cols; -1 absent),
    rounds: (rows, cols) per round (cols ascending, rows[i] fixes cols[i]), pivots: per round the entry of
    G22 at (rows[i], cols[i]) (never 0), core_rows / core_cols: the rest."""

    G: sp.csr_matrix
    Gc: sp.csc_matrix
    blocks: list[Block]
    loc: list[tuple[np.ndarray, np.ndarray]]
    rounds: list[tuple[np.ndarray, np.ndarray]]
    pivots: list[np.ndarray]
    core_rows: np.ndarray
    core_cols: np.ndarray


def peel(G22: sp.spmatrix, labels: list[str], eq_labels: list[str], what: str = "the algebraic part of the circuit",
         blocks: tuple[Block, ...] | list[Block] = ()) -> Peeling:
    """The rounds of row singletons of G22 (+ dense blocks), their pivots and the core left, or BadInputError
    naming the empty row or column, a zero pivot, the equations left without an unknown, or the unknowns of a
    non-square core."""
    G = G22 if sp.isspmatrix_csr(G22) and G22.dtype == float else sp.csr_matrix(G22, dtype=float)
    G.sum_duplicates()
    n = G.shape[0]
    G, blocks = _separate(G, list(blocks))
    loc = block_positions(blocks, n)
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
    pivots: list[np.ndarray] = []
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
                i, j = np.nonzero(b.mask(np.ix_(lr[m], unk)))
                cands.append(b.cols[unk[j]])
                owners.append(rows[m][i])
        cols, owner = np.concatenate(cands), np.concatenate(owners)
        cols, first = np.unique(cols, return_index=True)   # two rows fixing one unknown: the other stays
        rows = owner[first]
        piv = np.asarray(G[rows, cols], dtype=float).ravel()   # the entry of each row's one unknown
        for b, (pr, pc) in zip(blocks, loc):
            lr, lp = pr[rows], pc[cols]
            on = (lr >= 0) & (lp >= 0)
            piv[on] -= b.g[lr[on], lp[on]]     # the pivot entry of a row may lie in a block (entries -g)
        if np.any(piv == 0):
            raise BadInputError(f"{what} is singular at {eq_labels[int(rows[np.argmin(np.abs(piv))])]}")
        known[cols] = True
        done[rows] = True
        rounds.append((rows, cols))
        pivots.append(piv)
        hit = _gather(Gc.indptr, Gc.indices, cols)
        counts -= np.bincount(hit, minlength=n)
        for b, (_, pc) in zip(blocks, loc):
            lc = pc[cols]
            lc = lc[lc >= 0]
            if len(lc) == len(b.cols):   # every column of the block (a round's columns are distinct)
                counts[b.rows] -= b.row_count
            elif len(lc):
                counts[b.rows] -= np.count_nonzero(b.mask((slice(None), lc)), axis=1)
        empty = np.flatnonzero((counts == 0) & ~done)
        if len(empty):
            raise BadInputError(f"{what} is singular: {', '.join(eq_labels[i] for i in empty[:5])} involves no"
                                f" unknown left (a loop of ideal sources or index > 1); fix the circuit or"
                                f" {NGSPICE_HINT}")
    core_rows, core_cols = np.flatnonzero(~done), np.flatnonzero(~known)
    if len(core_rows) != len(core_cols):
        raise BadInputError(f"{what} is singular: {len(core_rows)} equations for {len(core_cols)} unknowns left"
                            f" ({', '.join(labels[i] for i in core_cols[:5])}); fix the circuit or {NGSPICE_HINT}")
    return Peeling(G, Gc, blocks, loc, rounds, pivots, core_rows, core_cols)


def solve_algebraic(G22: sp.spmatrix, R: sp.spmatrix, labels: list[str], eq_labels: list[str],
                    what: str = "the algebraic part of the circuit") -> sp.csr_matrix:
    """X = G22^-1 R as a sparse matrix: the peeling's rounds eliminated on the sparse right-hand sides, then
    SuperLU of the remaining core (module doc)."""
    pl = peel(G22, labels, eq_labels, what)
    G, Gc = pl.G, pl.Gc
    n = G.shape[0]
    R_eff = sp.csr_matrix(R, dtype=float)
    pieces: list[tuple[np.ndarray, sp.csr_matrix]] = []
    for (rows, cols), piv in zip(pl.rounds, pl.pivots):
        W = sp.diags(1.0 / piv) @ R_eff[rows]
        R_eff = (R_eff - Gc[:, cols] @ W).tocsr()
        pieces.append((cols, sp.csr_matrix(W)))
    core_rows, core_cols = pl.core_rows, pl.core_cols
    if len(core_cols):
        core = G[core_rows][:, core_cols]
        lu = factor(core, [labels[i] for i in core_cols], what)
        Xc = lu.solve(R_eff[core_rows].toarray())
        pieces.append((core_cols, sp.csr_matrix(Xc)))
    order = np.concatenate([c for c, _ in pieces])
    X = sp.vstack([w for _, w in pieces]).tocsr()
    perm = np.empty(n, dtype=int)
    perm[order] = np.arange(n)
    return X[perm]


class PeelSolve:
    """Replayable G22^-1 (module doc). Attributes: n_rounds, core_size, nnz_per_solve, dense_blocks (Blocks kept
    dense; the others were stamped into the sparse part), folded_blocks (dense blocks applied after folding).

    rhs_rows (optional): the rows of r that can be non-zero (every other row is structurally zero in every solve).
    Given, the solve folds the signed crossbars (``fold_aliases``): an unknown fixed by a row of two entries with a
    zero right-hand side, z_c = +-z_c' (an ideal inverter xn = -x, a unity buffer), is an alias of c'; dense blocks
    with the same rows whose columns are aliases of the same unknowns are summed into one block on those
    unknowns, G_pos - G_neg for the two signs of a crossbar (exactly: the signs' entries are disjoint, so every
    entry of the sum is one conductance, negated or not). One solve then reads each crossbar once, and the rounds
    that only computed the aliases are pruned unless the caller reads them; the result differs from the unfolded
    solve by the order of the additions only (two GEMVs summed against one). own_blocks: the caller hands the blocks'
    g arrays over, and a fold may write its sum into one of them (``_writable``: never into an array that another
    block the solve reads, or the core, shares)."""

    def __init__(self, G22: sp.spmatrix, labels: list[str], eq_labels: list[str], needed: np.ndarray | None = None,
                 what: str = "the algebraic part of the circuit", blocks: tuple[Block, ...] | list[Block] = (),
                 rhs_rows: np.ndarray | None = None, own_blocks: bool = False) -> None:
        pl = peel(G22, labels, eq_labels, what, blocks)
        G, blocks, loc, rounds = pl.G, pl.blocks, pl.loc, pl.rounds
        core_rows, core_cols = pl.core_rows, pl.core_cols
        n = G.shape[0]
        self.n = n
        self.dense_blocks = len(blocks)
        # what the rounds apply: (rows, cols, g, row positions) per dense block, the signed crossbars folded
        dense = [(b.rows, b.cols, b.g, pr) for b, (pr, _) in zip(blocks, loc)]
        root, plan, folded = None, None, set()
        if rhs_rows is not None and blocks:
            root, fac = fold_aliases(pl, rhs_rows)
            plan = fold_plan(blocks, root)
            folded = {k for ks, u, _ in plan if u is not None for k in ks}

        def columns_of(rows: np.ndarray, rounds_view: bool = True) -> np.ndarray:   # every column read by these rows
            out = [_gather(G.indptr, G.indices, rows)]
            for k, (b, (pr, _)) in enumerate(zip(blocks, loc)):
                lr = pr[rows]
                lr = lr[lr >= 0]
                if len(lr) == len(b.rows):
                    c = b.cols[b.col_count > 0]
                elif len(lr):
                    c = b.cols[b.mask(lr).any(axis=0)]
                else:
                    continue
                out.append(root[c] if rounds_view and k in folded else c)   # a folded block reads the roots
            return np.concatenate(out)

        # reverse pass: which unknowns are needed (the core, when present, is solved whole, unfolded)
        need = np.ones(n, bool) if needed is None else np.zeros(n, bool)
        if needed is not None:
            need[np.asarray(needed, dtype=np.int64)] = True
            if len(core_cols):
                need[core_cols] = True
                need[columns_of(core_rows, rounds_view=False)] = True
            for rows, cols in reversed(rounds):
                need[columns_of(rows[need[cols]])] = True
        if plan is not None:
            writable = _writable(blocks, loc, plan, folded, rounds, need, core_rows) if own_blocks else frozenset()
            dense = fold_blocks(blocks, loc, fac, plan, writable)
        self.folded_blocks = len(dense)
        self._rounds = []
        nnz = 0
        for (rows, cols), pivots in zip(rounds, pl.pivots):
            m = need[cols]
            if not m.any():
                continue
            r, c, piv = rows[m], cols[m], pivots[m]
            A = G[r]
            parts = []
            for brows, bcols, g, pr in dense:
                lr = pr[r]
                idx = np.flatnonzero(lr >= 0)
                if len(idx) == 0:
                    continue
                li = lr[idx]
                whole = len(li) == g.shape[0] and (np.diff(li) == 1).all() and li[0] == 0
                D = g if whole else np.ascontiguousarray(g[li])
                parts.append((None if len(idx) == len(r) else idx, D, bcols))
                nnz += D.size
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


def _writable(blocks: list[Block], loc: list, plan: list, folded: set, rounds: list, need: np.ndarray,
              core_rows: np.ndarray) -> set:
    """The first block of each folded group whose g array no other block the solve reads shares (a crossbar's
    transposed block shares it: its rows are read only when the caller needs them) and whose rows are not in the
    core (the core's matrix is read from the blocks' own arrays)."""
    read = [rows[need[cols]] for rows, cols in rounds] + [core_rows]
    live = set(folded)
    for k, (pr, _) in enumerate(loc):
        if k not in folded and any(len(r) and (pr[r] >= 0).any() for r in read):
            live.add(k)
    out = set()
    for ks, ucols, _ in plan:
        k = ks[0]
        if ucols is None or (len(core_rows) and (loc[k][0][core_rows] >= 0).any()):
            continue
        if not any(j != k and j in live and np.may_share_memory(blocks[j].g, blocks[k].g) for j in range(len(blocks))):
            out.add(k)
    return out


def fold_aliases(pl: Peeling, rhs_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(root (n,), factor (n,)): z[c] = factor[c] z[root[c]] exactly, factor +-1 (root[c] = c, factor 1 for every
    other unknown). An alias is an unknown fixed in a round by a row with two entries in the sparse part, none in a
    dense block, a right-hand side that is structurally zero (not in rhs_rows) and its other entry +-pivot: the
    solve computes z_c = -(a z_c') / piv = +-z_c' without rounding (an ideal inverter, a unity buffer). Chains
    resolve in round order (z<l>b<g> -> z<l> -> rz<l>; zn<l>b<g> -> zn<l> -> -z<l>)."""
    G = pl.G
    n = G.shape[0]
    root, fac = np.arange(n), np.ones(n)
    zero = np.ones(n, bool)
    zero[np.asarray(rhs_rows, dtype=np.int64)] = False
    for b in pl.blocks:
        zero[b.rows] = False
    two = np.diff(G.indptr) == 2
    for (rows, cols), piv in zip(pl.rounds, pl.pivots):
        m = two[rows] & zero[rows]
        if not m.any():
            continue
        r, c, p = rows[m], cols[m], piv[m]
        s = G.indptr[r]
        j0, j1, v0, v1 = G.indices[s], G.indices[s + 1], G.data[s], G.data[s + 1]
        first = j0 == c
        other, a = np.where(first, j1, j0), np.where(first, v1, v0)
        f = -a / p
        ok = np.abs(f) == 1.0
        c, other, f = c[ok], other[ok], f[ok]
        root[c], fac[c] = root[other], f * fac[other]   # other is known before this round: already resolved
    return root, fac


def fold_plan(blocks: list[Block], root: np.ndarray) -> list[tuple[list[int], np.ndarray | None, np.ndarray | None]]:
    """The blocks grouped by equal rows: (ks, ucols, inv) for a group whose columns share roots (summed into one block
    on the sorted roots ucols; inv: each block's columns' places in ucols, concatenated), ([k], None, None) for every
    block kept as it is (alone in its rows, all roots distinct, or a block reading two aliases of one unknown)."""
    groups: dict[bytes, list[int]] = {}
    for k, b in enumerate(blocks):
        groups.setdefault(b.rows.tobytes(), []).append(k)
    plan: list = []
    for ks in groups.values():
        if len(ks) > 1:
            mapped = [root[blocks[k].cols] for k in ks]
            allc = np.concatenate(mapped)
            ucols, inv = np.unique(allc, return_inverse=True)
            if len(ucols) < len(allc) and all(len(np.unique(mc)) == len(mc) for mc in mapped):
                plan.append((ks, ucols, inv))
                continue
        plan += [([k], None, None) for k in ks]
    return plan


def fold_blocks(blocks: list[Block], loc: list, fac: np.ndarray, plan: list, writable=frozenset()) -> list:
    """The dense parts the rounds apply, (rows, cols, g, row positions) each, by fold_plan: a group's blocks summed
    with their alias factors into one block (PeelSolve doc). writable: blocks whose g may be overwritten (a group's
    first block that covers every root then holds the sum, no new array: the wide config's J and J^T, 1 GB)."""
    dense = []
    for ks, ucols, inv in plan:
        if ucols is None:
            b = blocks[ks[0]]
            dense.append((b.rows, b.cols, b.g, loc[ks[0]][0]))
            continue
        rows = blocks[ks[0]].rows
        D = None
        off = 0
        for k in ks:
            g, f = blocks[k].g, fac[blocks[k].cols]
            idx = inv[off:off + len(f)]
            off += len(f)
            contiguous = len(idx) and idx[-1] - idx[0] == len(idx) - 1 and (np.diff(idx) == 1).all()
            at = slice(int(idx[0]), int(idx[-1]) + 1) if contiguous else idx
            sign = 1.0 if (f == 1.0).all() else -1.0 if (f == -1.0).all() else None
            if D is None and contiguous and len(idx) == len(ucols) and sign is not None:
                if k in writable:      # the sum in this block's own array
                    D = g if sign > 0 else np.negative(g, out=g)
                else:                  # the first block covers every root: one pass
                    D = g.copy() if sign > 0 else np.negative(g)
                continue
            if D is None:
                D = np.zeros((len(rows), len(ucols)))
            if sign is None:
                D[:, at] += g * f
            elif contiguous:      # in place on a view: one pass
                np.add(D[:, at], g, out=D[:, at]) if sign > 0 else np.subtract(D[:, at], g, out=D[:, at])
            elif sign > 0:
                D[:, at] += g
            else:
                D[:, at] -= g
        dense.append((rows, ucols, D, loc[ks[0]][0]))
    return dense


def positions(index: np.ndarray, n: int, dtype=np.int64) -> np.ndarray:
    """(n,) position of each unknown in index, -1 where absent."""
    pos = np.full(n, -1, dtype=dtype)
    pos[index] = np.arange(len(index))
    return pos


def block_positions(blocks: list[Block], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """positions() of every block's rows and cols, one (n,) array per distinct index list (the two signs of a
    crossbar share their rows, a block and its transpose their lists), int32 where n allows: the factorised circuit
    at N = 1e5 has 68 blocks on 51 distinct lists of ~1e6 unknowns."""
    cache: dict[bytes, np.ndarray] = {}
    dtype = np.int32 if n < 2 ** 31 else np.int64

    def pos(index: np.ndarray) -> np.ndarray:
        key = np.asarray(index, dtype=np.int64).tobytes()
        if key not in cache:
            cache[key] = positions(index, n, dtype)
        return cache[key]
    return [(pos(b.rows), pos(b.cols)) for b in blocks]


def _separate(G: sp.csr_matrix, blocks: list[Block]) -> tuple[sp.csr_matrix, list[Block]]:
    """Stamp into G every block whose entries could coincide with G's pattern or with an earlier block's
    (the peeling counts entries: a shared position would be counted twice). Two blocks can share a position only
    when their rows and their cols both intersect (marks of the block's own rows and cols, read at the earlier
    blocks' lists: O(sum of the lists) per block, no set operations)."""
    n = G.shape[0]
    kept: list[Block] = []
    extra = []
    row_mark, col_mark = np.zeros(n, bool), np.zeros(n, bool)
    for b in blocks:
        row_mark[b.rows] = True
        col_mark[b.cols] = True
        clash = G[b.rows][:, b.cols].nnz > 0 or any(row_mark[k.rows].any() and col_mark[k.cols].any() for k in kept)
        row_mark[b.rows] = False
        col_mark[b.cols] = False
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
            i, j = np.nonzero(b.mask(lr[idx]))
            I.append(idx[i]), J.append(b.cols[j]), V.append(-b.g[lr[idx][i], j])
    return sp.csr_matrix((np.concatenate(V), (np.concatenate(I), np.concatenate(J))), shape=(len(rows), G.shape[1]))
