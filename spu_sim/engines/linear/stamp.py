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
and are dropped from the block; a crossbar with less than DENSE_MIN_FILL of its entries present stays sparse.
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
    are distinct unknown indices each (no repeats); present = g > 0 (the structure)."""

    rows: np.ndarray
    cols: np.ndarray
    g: np.ndarray
    present: np.ndarray
    row_count: np.ndarray | None = None   # entries present per row / per column (computed when not given)
    col_count: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.row_count is None:
            self.row_count = self.present.sum(axis=1)
        if self.col_count is None:
            self.col_count = self.present.sum(axis=0)

    def csr(self, n: int) -> sp.csr_matrix:
        """The block stamped into an (n, n) CSR matrix."""
        return _block_csr(self.rows, self.cols, self.g, self.present, n)

    def transposed(self) -> "Block":
        return Block(self.cols, self.rows, self.g.T, self.present.T, self.col_count, self.row_count)

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
        with np.errstate(divide="ignore", invalid="ignore"):
            gb = 1.0 / e.r_ohm                  # inf (no resistor) -> 0
        present = gb > 0
        rows = np.fromiter((get(x, -1) for x in e.row_nodes), dtype=np.int64, count=len(e.row_nodes))
        cols = np.fromiter((get(x, -1) for x in e.col_nodes), dtype=np.int64, count=len(e.col_nodes))
        np.add.at(diag, rows[rows >= 0], gb.sum(axis=1)[rows >= 0])
        np.add.at(diag, cols[cols >= 0], gb.sum(axis=0)[cols >= 0])
        block = _dense_block(rows, cols, gb, present) if blocks is not None else None
        if block is not None:
            blocks += [block, block.transposed()]
            continue
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


def _dense_block(rows: np.ndarray, cols: np.ndarray, gb: np.ndarray, present: np.ndarray) -> Block | None:
    """The crossbar's off-diagonal part as a Block on its lines that are nodes (ground lines and unused lines
    dropped), or None when a node repeats among them (the general CSR path sums those) or when fewer than
    DENSE_MIN_FILL of its entries are present (a GEMV would mostly multiply zeros)."""
    keep_r, keep_c = np.flatnonzero(rows >= 0), np.flatnonzero(cols >= 0)
    r, c = rows[keep_r], cols[keep_c]
    if len(np.unique(np.concatenate([r, c]))) != len(r) + len(c):
        return None
    if len(keep_r) < len(rows) or len(keep_c) < len(cols):
        gb, present = gb[np.ix_(keep_r, keep_c)], present[np.ix_(keep_r, keep_c)]
    block = Block(r, c, gb, present)
    n_present = int(block.row_count.sum())
    if n_present == 0 or n_present < DENSE_MIN_FILL * present.size:   # mostly empty: CSR is less work
        return None
    return block


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
