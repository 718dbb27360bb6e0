"""Sparse solve of the algebraic block G_22 X = R (the Schur complement of the linear engine's reduction).

Circuits of controlled sources are nearly triangular: a voltage source fixes its node, a buffer copies a state,
then each KCL row leaves one unknown branch current. ``solve_algebraic`` peels such rows first (rounds of row
singletons: every row with one remaining unknown gives that unknown as a sparse combination of the right-hand
sides, substituted into the rest by one sparse product per round) and factors only the coupled core that is
left (SuperLU). The result stays sparse: for the all-to-all op-amp SPU at d = 1024 the whole block (9 d unknowns)
peels in a few rounds, where a dense-right-hand-side SuperLU solve took minutes.

Singular blocks (a floating node, a loop of ideal sources or capacitors, an inductor cutset: index > 1) raise
BadInputError naming the unknowns or equations involved.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import BadInputError

NGSPICE_HINT = "use simulation.backend: ngspice-shared"


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


def solve_algebraic(G22: sp.spmatrix, R: sp.spmatrix, labels: list[str], eq_labels: list[str],
                    what: str = "the algebraic part of the circuit") -> sp.csr_matrix:
    """X = G22^-1 R as a sparse matrix (row-singleton peeling, then SuperLU of the remaining core)."""
    G = sp.csr_matrix(G22)
    check_structure(G, labels, eq_labels, what)
    n = G.shape[0]
    R_eff = sp.csr_matrix(R, dtype=float)
    Gc = G.tocsc()
    pattern = sp.csr_matrix((np.ones(G.nnz), G.indices, G.indptr), shape=G.shape)   # stored entries count
    index = np.arange(n, dtype=float)
    known = np.zeros(n, bool)
    done = np.zeros(n, bool)
    pieces: list[tuple[np.ndarray, sp.csr_matrix]] = []
    while True:
        if known.all():
            break
        unknown = (~known).astype(float)
        counts = pattern @ unknown           # unknowns left per row (exact: sums of ones)
        empty = np.flatnonzero((counts == 0) & ~done)
        if len(empty):
            raise BadInputError(f"{what} is singular: {', '.join(eq_labels[i] for i in empty[:5])} involves no"
                                f" unknown left (a loop of ideal sources or index > 1); fix the circuit or {NGSPICE_HINT}")
        rows = np.flatnonzero((counts == 1) & ~done)
        if len(rows) == 0:
            break
        # a row with one unknown left: that unknown's index and its coefficient are the restricted row sums
        cols = (pattern @ (index * unknown))[rows].astype(np.int64)
        piv = (G @ unknown)[rows]
        cols, first = np.unique(cols, return_index=True)  # two rows fixing one unknown: the other stays
        rows, piv = rows[first], piv[first]
        if np.any(np.abs(piv) == 0):
            raise BadInputError(f"{what} is singular at {eq_labels[rows[np.argmin(np.abs(piv))]]}")
        W = sp.diags(1.0 / piv) @ R_eff[rows]
        R_eff = (R_eff - Gc[:, cols] @ W).tocsr()
        known[cols] = True
        done[rows] = True
        pieces.append((cols, sp.csr_matrix(W)))
    core_rows, core_cols = np.flatnonzero(~done), np.flatnonzero(~known)
    if len(core_rows) != len(core_cols):
        raise BadInputError(f"{what} is singular: {len(core_rows)} equations for {len(core_cols)} unknowns left"
                            f" ({', '.join(labels[i] for i in core_cols[:5])}); fix the circuit or {NGSPICE_HINT}")
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
