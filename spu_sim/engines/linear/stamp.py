"""Conductance stamps of the resistors and crossbars of a linear Circuit (the bulk of a dense network's MNA; model.py
assembles the rest).

    G = stamp_resistors(resistors, pos, neg, r_ohm, arrays, nodes, n)    # (n, n) CSR
    G = stamp_resistors(..., blocks=out)    # crossbars' off-diagonals appended to out as dense Blocks instead
    T = Triplets(); T.two_terminal(a, b, g); T.branch(k, a, b); T.csr((n, n))   # the other elements, vectorised

A crossbar on wires (ResistorArray.has_wires) is stamped as its exact dense port admittance (the 2 rows cols line
nodes eliminated once, circuit.ResistorArray.port_admittance); with wire capacitance its lines are real nodes
(model.by_type expands them). Scalar resistors go through one COO construction; every ResistorArray crossbar adds its diagonal by bincount and
its two off-diagonal blocks straight into canonical CSR (no sort of its entries), summed pairwise.

With ``blocks`` (the structured method, krylov.py) a crossbar whose row and column lines are
distinct nodes keeps its off-diagonal part as two dense Blocks (the matrix entries -g at (rows, cols) and -g^T at
(cols, rows)), applied by GEMV: at d = 1000 stamping the 2 d^2 entries into CSR, adding, slicing and transposing them
cost more than the whole transient. Lines on ground or on a node no other entry uses carry no off-diagonal entry
and are dropped from the block; a crossbar with less than DENSE_MIN_FILL of its entries present stays sparse. A crossbar
whose lines with resistors are all nodes gets its conductances, their row and column sums and the entries per
line in one chunked pass (``crossbar_conductances``; the factorised circuit at N = 1e5 has 2 GB of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ...circuit import Resistor, ResistorArray
from ...errors import BadInputError


@dataclass
class Block:
    """Dense off-diagonal conductance entries: the matrix holds -g[i, j] at (rows[i], cols[j]); rows and cols
    are distinct unknown indices each (no repeats); the structure is ``present`` when given, else g != 0 (the
    stamp's blocks: g = 1 / r > 0 where a resistor is, 0 where none is; no boolean copy of the block is kept, which
    at N = 1e5, m = 640 is 130 MB per block: ``mask`` reads the structure of the entries asked for)."""

    rows: np.ndarray
    cols: np.ndarray
    g: np.ndarray
    present: np.ndarray | None = None
    row_count: np.ndarray | None = None   # entries present per row / per column (computed when not given)
    col_count: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.row_count is None or self.col_count is None:
            mask = self.mask()
            if self.row_count is None:
                self.row_count = np.count_nonzero(mask, axis=1)
            if self.col_count is None:
                self.col_count = np.count_nonzero(mask, axis=0)

    def mask(self, index=...) -> np.ndarray:
        """The structure (True where an entry is) at ``index`` (any numpy index of the (rows, cols) array)."""
        return self.present[index] if self.present is not None else self.g[index] != 0

    def csr(self, n: int) -> sp.csr_matrix:
        """The block stamped into an (n, n) CSR matrix."""
        return _block_csr(self.rows, self.cols, self.g, self.mask(), n)

    def transposed(self) -> "Block":
        return Block(self.cols, self.rows, self.g.T, None if self.present is None else self.present.T, self.col_count,
                     self.row_count)

    def relabel(self, index: np.ndarray) -> "Block":
        """The block on other unknown numbers (index maps old -> new)."""
        return Block(index[self.rows], index[self.cols], self.g, self.present, self.row_count, self.col_count)


class Triplets:
    """COO entries of an MNA matrix, added a vector at a time; entries on ground (index -1) are dropped."""

    def __init__(self) -> None:
        self.I: list[np.ndarray] = []
        self.J: list[np.ndarray] = []
        self.V: list[np.ndarray] = []

    def add(self, i: np.ndarray, j: np.ndarray, v: np.ndarray) -> None:
        keep = (i >= 0) & (j >= 0)
        self.I.append(i[keep]), self.J.append(j[keep]), self.V.append(np.broadcast_to(v, i.shape)[keep])

    def two_terminal(self, a: np.ndarray, b: np.ndarray, g: np.ndarray) -> None:
        self.add(a, a, g), self.add(b, b, g), self.add(a, b, -g), self.add(b, a, -g)

    def branch(self, k: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        """Branch current k leaves a and enters b; branch row k reads v_a - v_b."""
        one = np.ones(len(k))
        self.add(a, k, one), self.add(b, k, -one), self.add(k, a, one), self.add(k, b, -one)

    def csr(self, shape: tuple[int, int]) -> sp.csr_matrix:
        if not self.I:
            return sp.csr_matrix(shape)
        return sp.csr_matrix((np.concatenate(self.V), (np.concatenate(self.I), np.concatenate(self.J))), shape=shape)


def stamp_resistors(res: list[Resistor], pos: list[str] | np.ndarray, neg: list[str] | np.ndarray, r_ohm: list[float],
                     arrays: list[ResistorArray], nodes: dict[str, int], n: int,
                     blocks: list[Block] | None = None) -> sp.csr_matrix:
    """The conductance matrix of every resistor and crossbar: diagonals by bincount, the resistors'
    off-diagonals as COO, each crossbar's two off-diagonal blocks straight into CSR (no sort of its d^2 entries),
    or, given a ``blocks`` list, appended to it as dense Blocks where the crossbar's lines are distinct nodes.
    pos, neg: the resistors' node names, or their node numbers already looked up (int64 arrays, ground -1)."""
    get = nodes.get
    diag = np.zeros(n)
    parts = []
    if res:
        r = np.array(r_ohm, dtype=float)
        bad = ~((r > 0) & np.isfinite(r))
        if bad.any():
            e = res[int(np.flatnonzero(bad)[0])]
            raise BadInputError(f"element {e.name}: resistance {e.r_ohm!r} ohm must be positive and finite")
        a = pos if isinstance(pos, np.ndarray) else np.fromiter((get(x, -1) for x in pos), dtype=np.int64, count=len(res))
        b = neg if isinstance(neg, np.ndarray) else np.fromiter((get(x, -1) for x in neg), dtype=np.int64, count=len(res))
        g = 1.0 / r
        diag += np.bincount(a[a >= 0], g[a >= 0], minlength=n) + np.bincount(b[b >= 0], g[b >= 0], minlength=n)
        off = (a >= 0) & (b >= 0)
        a, b, g = a[off], b[off], g[off]
        parts.append(sp.csr_matrix((np.concatenate([-g, -g]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                                   shape=(n, n)))
    for e in arrays:
        if e.has_wires:   # the lines' exact DC port admittance (no wire capacitance here: see by_type)
            bad = e.first_non_physical()
            if bad is not None:
                raise BadInputError(f"element {bad[0]}: resistance {bad[1]!r} ohm must be positive and finite")
            parts.append(_wired_csr(e, get, n))
            continue
        bad = e.first_non_physical()           # before the division: every entry > 0 (inf: no resistor)
        if bad is not None:
            raise BadInputError(f"element {bad[0]}: resistance {bad[1]!r} ohm must be positive and finite")
        rows = np.fromiter((get(x, -1) for x in e.row_nodes), dtype=np.int64, count=len(e.row_nodes))
        cols = np.fromiter((get(x, -1) for x in e.col_nodes), dtype=np.int64, count=len(e.col_nodes))
        kr, kc = rows >= 0, cols >= 0
        lines = _node_lines(e.r_ohm, kr, kc) if blocks is not None else None
        if lines is not None:
            # every line with an entry a node (the factorised circuit's crossbars; an inverted copy that no entry of
            # this sign uses has no node): g on those lines, its sums and counts in one pass, no copy of the whole
            r_sub, ir, ic = lines
            if ir is not None:
                rows, cols = rows[ir], cols[ic]
            gb, row_sum, col_sum, row_count, col_count = crossbar_conductances(r_sub)
            np.add.at(diag, rows, row_sum)
            np.add.at(diag, cols, col_sum)
            block = _dense_block(rows, cols, gb, None, row_count, col_count)
            if block is not None:
                blocks += [block, block.transposed()]
                continue
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = 1.0 / e.r_ohm                  # inf (no resistor) -> 0
            np.add.at(diag, rows[rows >= 0], gb.sum(axis=1)[rows >= 0])
            np.add.at(diag, cols[cols >= 0], gb.sum(axis=0)[cols >= 0])
            block = _dense_block(rows, cols, gb, gb > 0) if blocks is not None else None
            if block is not None:
                blocks += [block, block.transposed()]
                continue
        present = gb > 0
        parts += [_block_csr(rows, cols, gb, present, n),
                  _block_csr(cols, rows, np.ascontiguousarray(gb.T), np.ascontiguousarray(present.T), n)]
    parts.append(sp.diags(diag, format="csr"))
    while len(parts) > 1:   # pairwise (a tree): O(nnz log(parts)), not O(nnz parts) for many crossbar blocks
        parts = [parts[k] + parts[k + 1] if k + 1 < len(parts) else parts[k] for k in range(0, len(parts), 2)]
    return parts[0]


def _wired_csr(e: ResistorArray, get, n: int) -> sp.csr_matrix:
    """A crossbar on wires as its dense port admittance (ResistorArray.port_admittance: the line nodes eliminated
    exactly, which a resistive network allows) on its terminals; ground terminals dropped."""
    Y = e.port_admittance()
    term = np.array([get(x, -1) for x in (*e.row_nodes, *e.col_nodes)], dtype=np.int64)
    keep = np.flatnonzero(term >= 0)
    t = term[keep]
    Yk = Y[np.ix_(keep, keep)]
    return sp.csr_matrix((Yk.ravel(), (np.repeat(t, len(t)), np.tile(t, len(t)))), shape=(n, n))


DENSE_MIN_FILL = 0.1   # a crossbar with fewer entries present than this fraction is stamped sparse


def _dense_block(rows: np.ndarray, cols: np.ndarray, gb: np.ndarray, present: np.ndarray | None,
                 row_count: np.ndarray | None = None, col_count: np.ndarray | None = None) -> Block | None:
    """The crossbar's off-diagonal part as a Block on its lines that are nodes (ground lines and unused lines
    dropped), or None when a node repeats among them (the general CSR path sums those) or when fewer than
    DENSE_MIN_FILL of its entries are present (a GEMV would mostly multiply zeros). present None: every line is a
    node and row_count, col_count are given (crossbar_conductances)."""
    keep_r, keep_c = np.flatnonzero(rows >= 0), np.flatnonzero(cols >= 0)
    r, c = rows[keep_r], cols[keep_c]
    if len(np.unique(np.concatenate([r, c]))) != len(r) + len(c):
        return None
    if present is not None:
        if len(keep_r) < len(rows) or len(keep_c) < len(cols):
            gb, present = gb[np.ix_(keep_r, keep_c)], present[np.ix_(keep_r, keep_c)]
        row_count, col_count = np.count_nonzero(present, axis=1), np.count_nonzero(present, axis=0)
    n_present = int(row_count.sum())
    if n_present == 0 or n_present < DENSE_MIN_FILL * gb.size:   # mostly empty: CSR is less work
        return None
    return Block(r, c, gb, None, row_count, col_count)   # the structure: gb > 0, read from gb (Block doc)


def _node_lines(r_ohm: np.ndarray, kr: np.ndarray, kc: np.ndarray):
    """(r_ohm on the lines that are nodes, the positions of those rows, of those columns) when every line that is
    not a node (kr, kc False) carries no resistor (inf: no current, no diagonal entry), else None: r_ohm itself and
    None, None when every line is a node, else one copy of the lines kept. Their sums then leave out the absent
    entries' zeros (the diagonal differs from the whole-row sum by the order of its additions only)."""
    if kr.all() and kc.all():
        return r_ohm, None, None
    if np.isfinite(r_ohm[~kr]).any() or np.isfinite(r_ohm[:, ~kc]).any():
        return None
    ir, ic = np.flatnonzero(kr), np.flatnonzero(kc)
    sub = r_ohm[:, ic] if kr.all() else r_ohm[ir] if kc.all() else r_ohm[np.ix_(ir, ic)]
    return sub, ir, ic


#: rows of a crossbar per chunk of crossbar_conductances (32 rows of 1e5 doubles: 26 MB)
CHUNK_ROWS = 32


def crossbar_conductances(r_ohm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(g = 1 / r_ohm (0 where inf: no resistor), its row sums, column sums, entries present (g > 0) per row and
    per column) in one pass over r_ohm by chunks of rows (of the transpose for a column-major array or view, so that
    the chunks are read in memory order), instead of one pass each; g is laid out like r_ohm. The sums are numpy's
    own: a row's pairwise sum, and the columns' row-by-row sums in row order (the order of ``g.sum(axis=0)``), so
    the values are those of the whole-array expressions on the array as laid out."""
    if r_ohm.ndim == 2 and r_ohm.shape[0] > 1 and r_ohm.shape[1] > 1 and abs(r_ohm.strides[0]) < abs(r_ohm.strides[1]):
        # column-major (the J^T array, and its blocks of rows: slices of a Fortran-ordered array, contiguous by column)
        g, cs, rs, cc, rc = crossbar_conductances(r_ohm.T)
        return g.T, rs, cs, rc, cc
    R, C = r_ohm.shape
    g = np.empty((R, C))
    row_sum, col_sum = np.empty(R), np.zeros(C)
    row_count, col_count = np.empty(R, dtype=np.int64), np.zeros(C, dtype=np.int64)
    for i0 in range(0, R, CHUNK_ROWS):
        gi = g[i0:i0 + CHUNK_ROWS]
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(1.0, r_ohm[i0:i0 + CHUNK_ROWS], out=gi)
        np.sum(gi, axis=1, out=row_sum[i0:i0 + CHUNK_ROWS])
        for row in gi:
            col_sum += row
        present = gi > 0
        row_count[i0:i0 + CHUNK_ROWS] = np.count_nonzero(present, axis=1)
        col_count += np.count_nonzero(present, axis=0)
    return g, row_sum, col_sum, row_count, col_count


def _block_csr(rows: np.ndarray, cols: np.ndarray, gb: np.ndarray, present: np.ndarray, n: int) -> sp.csr_matrix:
    """The (n, n) CSR matrix with -gb[i, j] at (rows[i], cols[j]) for present entries (ground lines dropped):
    canonical (sorted, no duplicates) when the node lists have no repeats, built without sorting the entries."""
    keep_r, keep_c = np.flatnonzero(rows >= 0), np.flatnonzero(cols >= 0)
    ro = keep_r[np.argsort(rows[keep_r], kind="stable")]
    co = keep_c[np.argsort(cols[keep_c], kind="stable")]
    if len(np.unique(rows[ro])) != len(ro) or len(np.unique(cols[co])) != len(co):   # repeated node: general path
        i, j = np.nonzero(present[np.ix_(ro, co)])
        return sp.csr_matrix((-gb[ro[i], co[j]], (rows[ro[i]], cols[co[j]])), shape=(n, n))
    if len(ro) == len(rows) and len(co) == len(cols) and (np.diff(ro) > 0).all() and (np.diff(co) > 0).all():
        mask, sub = present, gb            # already in MNA order (the usual case): no re-indexing copy
    else:
        mask, sub = present[np.ix_(ro, co)], gb[np.ix_(ro, co)]
    data = -sub[mask]
    indices = np.broadcast_to(cols[co], mask.shape)[mask]
    counts = np.zeros(n, dtype=np.int64)
    counts[rows[ro]] = mask.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    M = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    M.has_canonical_format = True
    return M
