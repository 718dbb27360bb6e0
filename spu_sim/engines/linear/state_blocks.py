"""The dense crossbar blocks of a circuit with floating capacitor islands, for method krylov (krylov.OperatorModel).

With the ideal op-amp subcircuit (SPU_OPAMP_IDEAL: a nullor) an integrator's C_f runs from its output x<i> to its
virtual ground sum<i>: {x<i>, sum<i>} is a capacitor island, its state w_x = v(x<i>) - v(sum<i>) and its reference
w_sum = v(sum<i>) algebraic (model.islands, z = T w). A crossbar fed by x<j> into sum<i> (stamp.Block, entries
-g at (sum<i>, x<j>) and its transpose at (x<j>, sum<i>)) then lands, under T^T G T, in G21 (sum rows, state
columns), G22 (the columns w_sum<j> and the rows of the island sums) and G12. Stamped sparse, one operator
application read the d x d crossbar four times through CSR products (measured 2.6x the CPU of the inline
integrators' dense GEMVs at d = 600; docs/linear_engine.md). Here:

- ``held_zero``: an algebraic unknown fixed by a row with one entry, nothing else in it (no input, no state, no
  block) is exactly 0 in every solve (the nullator's V(inn) = V(inp) = 0: w_sum<i>). Every other entry in its
  column multiplies 0 and is dropped, exactly (G22 and G12; R keeps it, a saved sum node reads its 0).
- ``island_blocks``: each MNA block is then kept dense where its image under T is one dense block: in G21 when its
  rows are algebraic nodes outside the islands and its columns states whose references are held at 0 (the
  crossbar from x<j>), in G22 when rows and columns are algebraic outside the islands (the crossbar from xn<j>);
  a block whose columns are all held at 0 is dropped (the transposes: they read the virtual grounds); any other
  is stamped through T as before.
- ``state_aliased``: an algebraic unknown fixed by a row with one G22 entry p, one G21 entry a on state s, no
  input and no block, |a| = |p| = 1, equals -a/p x_s exactly (the inverter xn<j> = -x<j>, whose row also read
  w_sum<j>, dropped above). A G22 block reading only such aliases, with the rows of a G21 block, joins the G21
  blocks on the states (its g times the alias signs), and ``fold_state_blocks`` sums the G21 blocks of equal rows
  into one array: the two signs of a crossbar become G_pos - G_neg (their entries are disjoint, so every sum is
  one conductance), one GEMV per application, as peel.fold_blocks does for algebraic aliases.

The results differ from the stamped form by the order of the additions only. Circuits without islands (the inline
integrators of opamp_factored) do not come here: their blocks stay in the G22 solve (peel.PeelSolve).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .peel import positions
from .stamp import Block


def held_zero(G: sp.csr_matrix, B: sp.csr_matrix, alg: np.ndarray, touched: np.ndarray) -> np.ndarray:
    """(n,) row index fixing each unknown held at exactly 0 (-1 elsewhere): algebraic rows of G (the whole
    transformed MNA, canonical CSR without explicit zeros) with one entry, on an algebraic column, no input
    (B row empty) and no block entry (touched: rows any block's image reaches)."""
    n = G.shape[0]
    fixing = np.full(n, -1, dtype=np.int64)
    is_alg = np.zeros(n, bool)
    is_alg[alg] = True
    rows = np.flatnonzero(is_alg & (np.diff(G.indptr) == 1) & (np.diff(B.indptr) == 0) & ~touched)
    if len(rows) == 0:
        return fixing
    at = G.indptr[rows]
    cols, vals = G.indices[at], G.data[at]
    ok = is_alg[cols] & (vals != 0)
    fixing[cols[ok]] = rows[ok]
    return fixing


def island_blocks(G: sp.csr_matrix, B: sp.csr_matrix, T: sp.csr_matrix, mna_blocks: list[Block], alg: np.ndarray,
                  dyn: np.ndarray, ref_of: dict[int, int]) -> tuple[sp.csr_matrix, list[Block], list[Block]]:
    """(G, G22 blocks on the algebraic positions, G21 blocks on (algebraic, state) positions) for G = T^T G_mna T
    (the blocks' entries not in it): module doc. The returned G holds the stamped blocks and none of the entries in
    the columns held at 0 (but their fixing rows')."""
    n = G.shape[0]
    G = G.tocsr()
    G.sum_duplicates()
    G.eliminate_zeros()
    alg_pos, dyn_pos = positions(alg, n), positions(dyn, n)
    member = np.zeros(n, bool)                 # island nodes other than the reference: two images under T
    member[list(ref_of)] = True
    ref = np.arange(n)
    ref[list(ref_of)] = list(ref_of.values())
    touched = np.zeros(n, bool)
    for b in mna_blocks:
        touched[b.rows] = True
        touched[ref[b.rows]] = True
    fixing = held_zero(G, B, alg, touched)
    held = fixing >= 0
    g22: list[Block] = []
    g21: list[Block] = []
    stamped = []
    for b in mna_blocks:
        rows_one = not member[b.rows].any() and (alg_pos[b.rows] >= 0).all()
        if held[b.cols].all():
            continue                           # reads only unknowns held at 0
        if rows_one and (alg_pos[b.cols] >= 0).all() and not member[b.cols].any() and not held[b.cols].any():
            g22.append(b.relabel(alg_pos))
        elif rows_one and (dyn_pos[b.cols] >= 0).all() and (~member[b.cols] | held[ref[b.cols]]).all():
            g21.append(Block(alg_pos[b.rows], dyn_pos[b.cols], b.g, b.present, b.row_count, b.col_count))
        else:
            stamped.append(b.csr(n))
    if stamped:
        S = stamped[0]
        for M in stamped[1:]:
            S = S + M
        G = (G + T.T @ S @ T).tocsr()
        G.sum_duplicates()
    if held.any():
        C = G.tocoo()
        keep = ~held[C.col] | (C.row == fixing[C.col])
        G = sp.csr_matrix((C.data[keep], (C.row[keep], C.col[keep])), shape=G.shape)
    return G, g22, g21


def state_aliased(G22: sp.csr_matrix, G21: sp.csr_matrix, B2: sp.csr_matrix, blocks: list[Block],
                  state_blocks: list[Block]) -> tuple[list[Block], list[Block]]:
    """(G22 blocks left, G21 blocks): a G22 block whose columns are all state aliases and whose rows are those of a
    G21 block moves to the G21 blocks on the states (module doc). Without G21 blocks nothing moves."""
    if not blocks or not state_blocks:
        return blocks, state_blocks
    n = G22.shape[0]
    touched = np.zeros(n, bool)
    for b in [*blocks, *state_blocks]:
        touched[b.rows] = True
    cand = np.flatnonzero((np.diff(G22.indptr) == 1) & (np.diff(G21.indptr) == 1) & (np.diff(B2.indptr) == 0)
                          & ~touched)
    state = np.full(n, -1, dtype=np.int64)
    sign = np.zeros(n)
    c, p = G22.indices[G22.indptr[cand]], G22.data[G22.indptr[cand]]
    s, a = G21.indices[G21.indptr[cand]], G21.data[G21.indptr[cand]]
    ok = (np.abs(p) == 1.0) & (np.abs(a) == 1.0)
    state[c[ok]], sign[c[ok]] = s[ok], -a[ok] / p[ok]
    rows_of = {b.rows.tobytes() for b in state_blocks}
    keep, moved = [], []
    for b in blocks:
        if b.rows.tobytes() in rows_of and (state[b.cols] >= 0).all():
            f = sign[b.cols]
            g = b.g if (f == 1.0).all() else b.g * f
            moved.append(Block(b.rows, state[b.cols], g, b.present, b.row_count, b.col_count))
        else:
            keep.append(b)
    return keep, state_blocks + moved


def fold_state_blocks(state_blocks: list[Block]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, cols, g) per group of G21 blocks with equal rows, summed on the union of their columns (module doc)."""
    groups: dict[bytes, list[Block]] = {}
    for b in state_blocks:
        groups.setdefault(b.rows.tobytes(), []).append(b)
    out = []
    for bs in groups.values():
        if len(bs) == 1:
            out.append((bs[0].rows, bs[0].cols, bs[0].g))
            continue
        ucols, inv = np.unique(np.concatenate([b.cols for b in bs]), return_inverse=True)
        D = np.zeros((len(bs[0].rows), len(ucols)))
        off = 0
        for b in bs:
            D[:, inv[off:off + len(b.cols)]] += b.g      # a block's columns are distinct
            off += len(b.cols)
        out.append((bs[0].rows, ucols, D))
    return out
