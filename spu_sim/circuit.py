"""The circuit description: typed elements plus the analyses to run. Every engine reads this object.

    circuit = topology.build_circuit(design, analyses)    # spu_sim.topologies
    text = spu_sim.spice.format_spice(circuit)             # the one SPICE writer (standalone netlist)
    plots = engine.run(circuit, run_dir)                   # spu_sim.engines (ngspice or the linear engine)

A topology builds a ``Circuit`` from its design; nothing else writes or patches netlist text. Element and
node names are chosen by topology code (never taken from a config) and are checked by ``check_name``:
letters, digits and underscores only, so no text can smuggle a SPICE card into a netlist.

Conventions (SPICE's): a two-terminal element's current flows from ``n_pos`` through the element to
``n_neg``; node ``0`` is ground. Values are SI: ohm, farad, henry, volt, ampere, second, siemens.

Elements
    Resistor(name, n_pos, n_neg, r_ohm, noisy=True)       noisy=False: no thermal noise in .noise
    ResistorArray(prefix, row_nodes, col_nodes, r_ohm, row_keys, col_keys, noisy=True, r_wire_ohm=0, c_wire_farad=0)
                                                           a programmable crossbar: resistor
                                                           <prefix><row_keys[i]>_<col_keys[j]> from col_nodes[j]
                                                           to row_nodes[i] for each finite r_ohm[i, j] (inf:
                                                           no resistor); one element for up to millions of
                                                           resistors (written one line each, row-major);
                                                           r_wire_ohm > 0: built on real lines (wire segments
                                                           between cross-points, ``ResistorArray`` doc)
    Capacitor(name, n_pos, n_neg, c_farad, ic_v=None)      ic_v: initial voltage (transient with uic)
    Inductor(name, n_pos, n_neg, l_henry, ic_a=None)       ic_a: initial current
    VoltageSource(name, n_pos, n_neg, dc_v, ac_v=None)     ac_v: small-signal amplitude (.noise input)
    PulseVoltageSource(name, n_pos, n_neg, v1_v, v2_v, delay_s, rise_s, fall_s, width_s, period_s)
                                                           SPICE PULSE: a periodic clock (v1 low, v2 high)
    VCVS(name, n_pos, n_neg, c_pos, c_neg, gain)           E: V(n_pos, n_neg) = gain V(c_pos, c_neg)
    ClippedVCVS(name, n_pos, n_neg, control, v_max_v)      E TABLE: V = clip(V(control), -v_max, v_max); nonlinear
    VCCS(name, n_pos, n_neg, c_pos, c_neg, gm_siemens)     G: current gm V(c_pos, c_neg) from n_pos to n_neg
    CCCS(name, n_pos, n_neg, sense, gain)                  F: current gain * I(sense) from n_pos to n_neg
    SwitchModel(name, vt_v, vh_v, r_on_ohm, r_off_ohm)     .model NAME SW(...)
    Switch(name, n_pos, n_neg, c_pos, c_neg, model, on)    S: r_on when V(c_pos, c_neg) > vt, else r_off
    NoiseSource(name, node, model, file_name, samples_v, dt_s, held=False, n_neg="0")
                                                           XSPICE filesource: V(node, n_neg) follows samples_v[k]
                                                           (an array, or a SampleColumn of a streamed SampleBlock)
                                                           at t = k dt_s, linearly interpolated (first-order
                                                           hold), or held for [k dt_s, (k+1) dt_s) (held=True)
    BehavioralVoltage(name, n_pos, n_neg, expr)            B source: V(n_pos, n_neg) = expr (nonlinear)
    BehavioralCurrent(name, n_pos, n_neg, expr)            B source: current expr from n_pos to n_neg
    Comment(text)                                          a comment line in the netlist (readability)

Element banks (a vectorised circuit description: n cells of the same elements stated as arrays)
    ElementBank(keys, templates)                           cell p: one element per Template(kind, fields), each field
                                                           a pattern ("sum{}", formatted with keys[.][p]), a per-
                                                           element list / array (Columns(matrix): its columns, e.g. the
                                                           noise samples), or a constant ("0", a gain); exact shorthand:
                                                           bank.elements() are the per-element objects, cell after
                                                           cell, in netlist order
    ElementBank.of(kind, keys, **fields)                   a bank of one element per cell
    Circuit.elements                                       banks expanded (every reader that does not know banks sees
                                                           the per-element circuit); Circuit.banked: as given, banks
                                                           kept, for the readers that take the arrays (the linear
                                                           engine's assembly, the SPICE writer, check_physical,
                                                           of_type, node_names, saved_vectors); flatten expands banks
                                                           unless called with banks=True

Subcircuits
    Subckt(name, pins, elements)                           .subckt name pins / local elements / .ends
    SubcktFile(path, section=None)                         .include "path", or .lib "path" section (an external
                                                           file only ngspice reads; path absolute, check_path)
    Instance(name, subckt, nodes)                          X line: nodes[k] on the subcircuit's pin k
    flatten(elements)                                      Instances of Subckts expanded into plain elements, for
                                                           engines that take flat elements

Behavioural expressions are trees (``Expr``) built with ``num``, ``volt``, ``add``, ``mul``, ``div`` and
``call`` (functions in EXPR_FUNCS): only numbers and checked node names reach the netlist, never text.

Structure a builder may state (an engine checks it against its own model before using it):
    Circuit.drift_factors                                  a callable -> DriftFactors: the state equation
                                                           x' = -(d x + U W V^T x) + inputs in the voltages of
                                                           N nodes, U, V of width m << N (engines.linear.lowrank)

Analyses: Op(), Tran(step_s, stop_s, tmax_s, uic=True), Noise(output, reference, source, points_per_decade,
f_start_hz, f_stop_hz) -- one ``.noise`` line per output pair.

Names a user asks for (simulation.save_nodes) are checked against the circuit's own: ``node_names(circuit)``,
``saved_vectors(circuit, wanted)``.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .errors import BadInputError, DesignError


# ---------------------------------------------------------------- names

_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def check_name(name: str) -> str:
    """A node or element name as it may appear in a netlist (letters, digits, underscores)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{name!r} is not a valid circuit name (letters, digits and underscores only)")
    return name


@dataclass(frozen=True)
class Resistor:
    name: str
    n_pos: str
    n_neg: str
    r_ohm: float
    noisy: bool = True


@dataclass(frozen=True, eq=False)
class ResistorArray:
    """A crossbar of resistors held as arrays (a programmable resistor array of the hardware).

    Entry (i, j) with finite r_ohm[i, j] is the resistor ``<prefix><row_keys[i]>_<col_keys[j]>`` from
    ``col_nodes[j]`` to ``row_nodes[i]`` (current flows col -> row, as Resistor(name, col, row, r)); inf means
    no resistor there. row_keys / col_keys are the integers the names carry (default 1..rows, 1..cols), so a
    block of a larger array keeps the larger array's names. Equivalent to the Resistor elements it expands to
    (``resistors()``), which the SPICE writer emits row-major; engines and checks use the arrays directly.

    Wires (r_wire_ohm > 0; c_wire_farad >= 0): the crossbar is built on real lines, one wire segment of
    r_wire_ohm between neighbouring cross-points. Layout: column line j is driven from its terminal
    col_nodes[j] at the top edge and runs down through cross-points (1, j), (2, j), ..., (rows, j); row line i
    leaves its terminal row_nodes[i] at the left edge and runs right through (i, 1), ..., (i, cols). So each
    line has one segment from its terminal to the first cross-point and one between each pair of neighbours:
    cols x rows + rows x cols segments and 2 rows cols line nodes (``lc_<col>_<row>`` on column lines,
    ``lr_<row>_<col>`` on row lines). The cross-point resistor (i, j) joins line nodes lc_<col j>_<row i> and
    lr_<row i>_<col j>; every cross-point position keeps its line nodes and segments, present or not, on a line
    that serves at least one cell; a line without any cell (e.g. the column of an inverted copy no entry uses) is
    not built: it would float and carry no current (ngspice's .op of a floating line was measured 2 % off). Each line
    node has c_wire_farad to ground (the segment before it, lumped at its far end). The far cell of a long line
    sees the largest drop: the realised conductance matrix is the array's DC transfer (``port_admittance``),
    not 1 / r_ohm.
    """

    prefix: str
    row_nodes: tuple
    col_nodes: tuple
    r_ohm: np.ndarray
    row_keys: np.ndarray | None = None
    col_keys: np.ndarray | None = None
    noisy: bool = True
    r_wire_ohm: float = 0.0
    c_wire_farad: float = 0.0

    def __post_init__(self) -> None:
        r = np.asarray(self.r_ohm, dtype=float)
        if r.ndim != 2 or r.shape != (len(self.row_nodes), len(self.col_nodes)):
            raise ValueError(f"ResistorArray {self.prefix}: r_ohm of shape {r.shape} for {len(self.row_nodes)} row"
                             f" and {len(self.col_nodes)} column nodes")
        object.__setattr__(self, "r_ohm", r)
        object.__setattr__(self, "row_nodes", tuple(self.row_nodes))
        object.__setattr__(self, "col_nodes", tuple(self.col_nodes))
        for attr, n in (("row_keys", r.shape[0]), ("col_keys", r.shape[1])):
            k = getattr(self, attr)
            k = np.arange(1, n + 1) if k is None else np.asarray(k, dtype=np.int64)
            if k.shape != (n,):
                raise ValueError(f"ResistorArray {self.prefix}: {attr} must hold {n} integers")
            object.__setattr__(self, attr, k)
        for attr in ("r_wire_ohm", "c_wire_farad"):
            v = float(getattr(self, attr))
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"ResistorArray {self.prefix}: {attr} = {v} must be finite and >= 0")
            object.__setattr__(self, attr, v)
        if self.c_wire_farad > 0 and self.r_wire_ohm == 0:
            raise ValueError(f"ResistorArray {self.prefix}: wire capacitance needs a wire resistance > 0")

    @property
    def name(self) -> str:
        return f"{self.prefix}<i>_<j>"

    @property
    def has_wires(self) -> bool:
        return self.r_wire_ohm > 0

    def scatter_transfer(self, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """(G (rows, cols), Y_rr (rows, rows)) of port_admittance placed by the keys (key k -> index k - 1) into the
        whole array's shape: G[a, b] the DC current into row terminal a per volt on column terminal b, every other
        terminal at 0 V; Y_rr the row terminals' own block."""
        Y = self.port_admittance()
        R = len(self.row_nodes)
        ri, ci = self.row_keys - 1, self.col_keys - 1
        G, Yrr = np.zeros((rows, cols)), np.zeros((rows, rows))
        G[np.ix_(ri, ci)] = -Y[:R, R:]
        Yrr[np.ix_(ri, ri)] = Y[:R, :R]
        return G, Yrr

    def line_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) arrays of names: the column-line node lc_<col>_<row> and the row-line node lr_<row>_<col>
        at each cross-point (i, j)."""
        rows, cols = np.array(self.row_nodes, dtype=object), np.array(self.col_nodes, dtype=object)
        lc = "lc_" + cols[None, :] + "_" + rows[:, None]
        lr = "lr_" + rows[:, None] + "_" + cols[None, :]
        return lc, lr

    def line_elements(self) -> list:
        """The wired crossbar as plain elements: segments RWc_<col>_<row> (column lines), RWr_<row>_<col> (row
        lines), cross-point resistors <prefix><i>_<j> between the line nodes, CWc_/CWr_ wire capacitors (when
        c_wire_farad > 0); for engines that take the lines node by node (class doc: the layout)."""
        lc, lr = self.line_nodes()
        R, C = self.r_ohm.shape
        rw, cw = self.r_wire_ohm, self.c_wire_farad
        out: list = []
        present = ~np.isposinf(self.r_ohm)
        used_c, used_r = np.flatnonzero(present.any(axis=0)), np.flatnonzero(present.any(axis=1))
        for j in used_c:
            prev = self.col_nodes[j]
            for i in range(R):
                out.append(Resistor(f"RW{lc[i, j][1:]}", prev, lc[i, j], rw, self.noisy))
                prev = lc[i, j]
        for i in used_r:
            prev = self.row_nodes[i]
            for j in range(C):
                out.append(Resistor(f"RW{lr[i, j][1:]}", prev, lr[i, j], rw, self.noisy))
                prev = lr[i, j]
        i, j, r = self.entries()
        out += [Resistor(self.entry_name(a, b), lc[a, b], lr[a, b], float(v), self.noisy) for a, b, v in zip(i, j, r)]
        if cw > 0:
            nodes = np.concatenate([lc[:, used_c].ravel(), lr[used_r, :].ravel()])
            out += [Capacitor(f"CW{n[1:]}", n, "0", cw) for n in nodes]
        return out

    def port_admittance(self) -> np.ndarray:
        """The DC port admittance Y ((rows + cols) x (rows + cols), row terminals first) of the crossbar as built:
        the currents into the array at its terminals are Y @ [V(row_nodes), V(col_nodes)].

        Without wires: Y = [[diag(G 1), -G], [-G^T, diag(G^T 1)]], G = 1 / r_ohm (0 where absent). With wires: the
        nodal solve of the lines (a Schur complement; wire capacitance is open at DC): interior unknowns v (the
        2 rows cols line nodes), K v + P p = 0 with K the lines' and cross-points' conductance Laplacian and P the
        segments into the terminals p, so Y = g_w I - P^T K^-1 P (g_w = 1 / r_wire_ohm). P touches only the 2 n_t
        line nodes t next to a terminal, and (K^-1)_tt = S_tt^-1 with S_tt the Schur complement of K onto t: the
        trailing block of a sparse LU of K ordered with t last (the rest by nested dissection of the grid), so no solve
        with many right-hand sides is needed. Measured: 1.0 s at 256 x 256 (131k line nodes; 1.8 s with leaf 16), 1e-15 against a
        dense solve at 64 x 64. Rounding: about eps g_w / G relative (r_wire 1 ohm, G 1 mS: 1e-13).
        """
        Y = self.__dict__.get("_port_y")
        if Y is None:     # computed once per element (the design and the engine read the same arrays)
            Y = self._port_admittance()
            Y.setflags(write=False)
            object.__setattr__(self, "_port_y", Y)
        return Y

    def _port_admittance(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            G = np.where(np.isposinf(self.r_ohm), 0.0, 1.0 / self.r_ohm)
        R, C = G.shape
        if not self.has_wires:
            return np.block([[np.diag(G.sum(axis=1)), -G], [-G.T, np.diag(G.sum(axis=0))]])
        K, P, keep = self._line_matrices(G)
        gw = 1.0 / self.r_wire_ohm
        new = np.cumsum(keep) - 1                           # full numbering -> the kept line nodes
        K, P = K[keep][:, keep].tocsc(), P[keep].tocoo()
        t, port = P.row, P.col                             # the line node next to each connected terminal, and it
        nd = _nested_dissection(R, C)                      # cells (i, j) as i C + j, a fill-reducing order
        ii, jj = nd // C, nd % C
        cells = np.stack([jj * R + ii, R * C + ii * C + jj], axis=1).ravel()   # both line nodes of each cell
        cells = new[cells[keep[cells]]]
        is_t = np.zeros(K.shape[0], dtype=bool)
        is_t[t] = True
        order = np.concatenate([cells[~is_t[cells]], t])
        lu = spla.splu(K[order][:, order].tocsc(), permc_spec="NATURAL", diag_pivot_thresh=0,
                       options={"SymmetricMode": True})
        if not ((lu.perm_r == np.arange(len(order))).all() and (lu.perm_c == np.arange(len(order))).all()):
            raise RuntimeError(f"ResistorArray {self.prefix}: the line solve pivoted (not expected for a Laplacian)")
        m = len(t)
        # S_tt = L22 U22 = L22 D L22^T (K symmetric, no pivoting): S_tt^-1 = W^T W with W = D^-1/2 L22^-1 (lower
        # triangular), by LAPACK's triangular inverse and triangular product (n_t^3 / 3 flops each)
        L22 = lu.L.tocsc()[-m:, -m:].toarray()
        dd = lu.U.diagonal()[-m:]
        Linv, info = sla.lapack.dtrtri(L22, lower=1, unitdiag=1)
        W = Linv / np.sqrt(dd)[:, None]
        Sinv, info2 = sla.lapack.dlauum(W, lower=1)   # W^T W in the lower triangle
        if info or info2 or not (dd > 0).all():
            raise RuntimeError(f"ResistorArray {self.prefix}: the line solve lost positive definiteness")
        Sinv = np.tril(Sinv) + np.tril(Sinv, -1).T
        Y = np.zeros((R + C, R + C))
        Y[np.ix_(port, port)] = -(gw * gw) * Sinv        # -P_t^T S_tt^-1 P_t
        Y[port, port] += gw
        return 0.5 * (Y + Y.T)

    def _line_matrices(self, G: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
        """(K, P, keep) of ``port_admittance`` on the full numbering lc(i, j) -> j R + i (column lines contiguous),
        lr(i, j) -> R C + i C + j (row lines contiguous); terminals: row i -> i, column j -> R + j. keep: the line
        nodes that exist (a line without any cell has none: it would float; the class doc)."""
        R, C = G.shape
        gw = 1.0 / self.r_wire_ohm
        n = 2 * R * C
        ii, jj = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
        lc = jj * R + ii
        lr = R * C + ii * C + jj
        a = [lc[:-1, :].ravel(), lr[:, :-1].ravel(), lc.ravel()]   # segments between neighbours, cross-points
        b = [lc[1:, :].ravel(), lr[:, 1:].ravel(), lr.ravel()]
        g = [np.full(a[0].size, gw), np.full(a[1].size, gw), G.ravel()]
        a, b, g = np.concatenate(a), np.concatenate(b), np.concatenate(g)
        diag = np.bincount(a, g, n) + np.bincount(b, g, n)
        first = np.concatenate([lc[0, :], lr[:, 0]])     # the line nodes next to a terminal: one segment each
        diag[first] += gw
        K = sp.csr_matrix((np.concatenate([-g, -g, diag]), (np.concatenate([a, b, np.arange(n)]),
                                                              np.concatenate([b, a, np.arange(n)]))), shape=(n, n))
        port = np.concatenate([R + np.arange(C), np.arange(R)])
        P = sp.csr_matrix((np.full(first.size, -gw), (first, port)), shape=(n, R + C))
        used_c, used_r = (G > 0).any(axis=0), (G > 0).any(axis=1)
        keep = np.zeros(n, dtype=bool)
        keep[lc[:, used_c].ravel()] = True
        keep[lr[used_r, :].ravel()] = True
        return K.tocsr(), P.tocsr(), keep

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, r_ohm) of the resistors present (finite or non-physical entries; inf = absent), row-major."""
        present = ~np.isposinf(self.r_ohm)
        i, j = np.nonzero(present)
        return i, j, self.r_ohm[i, j]

    def first_non_physical(self) -> tuple[str, float] | None:
        """(name, value) of the first entry, row-major, that is not finite and > 0 (inf = absent is fine), or None;
        one pass over the array (a reduction, no temporary) when every entry is physical (NaN makes the minimum NaN),
        done once per element: an all-physical answer is kept (check_physical and the linear engine's stamp both ask;
        the element is frozen and its r_ohm not written after construction, as for port_admittance)."""
        if self.__dict__.get("_physical"):
            return None
        if self.r_ohm.size == 0 or self.r_ohm.min() > 0:
            object.__setattr__(self, "_physical", True)
            return None
        i, j, r = self.entries()
        k = int(np.flatnonzero(~(np.isfinite(r) & (r > 0)))[0])
        return self.entry_name(i[k], j[k]), float(r[k])

    def entry_name(self, i: int, j: int) -> str:
        return f"{self.prefix}{int(self.row_keys[i])}_{int(self.col_keys[j])}"

    def __len__(self) -> int:
        return int(np.count_nonzero(~np.isposinf(self.r_ohm)))

    def resistors(self) -> list[Resistor]:
        """The equivalent Resistor elements (row-major; slow for large arrays: for tests and small tools)."""
        i, j, r = self.entries()
        return [Resistor(self.entry_name(a, b), self.col_nodes[b], self.row_nodes[a], float(v), self.noisy)
                for a, b, v in zip(i, j, r)]


def _nested_dissection(rows: int, cols: int, leaf: int = 8) -> np.ndarray:
    """A nested-dissection order of the cells of a rows x cols grid (cell (i, j) numbered i cols + j): each block
    is cut across its longer side, both halves ordered first, the cut line last; blocks of at most leaf x leaf
    cells in row-major order. For the 2-layer grid of a wired crossbar it keeps the sparse LU's fill O(n log n)."""
    out: list[np.ndarray] = []

    def part(i0: int, i1: int, j0: int, j1: int) -> None:
        if i1 - i0 <= leaf and j1 - j0 <= leaf:
            out.append((np.arange(i0, i1)[:, None] * cols + np.arange(j0, j1)[None, :]).ravel())
        elif i1 - i0 >= j1 - j0:
            m = (i0 + i1) // 2
            part(i0, m, j0, j1), part(m + 1, i1, j0, j1)
            out.append(m * cols + np.arange(j0, j1))
        else:
            m = (j0 + j1) // 2
            part(i0, i1, j0, m), part(i0, i1, m + 1, j1)
            out.append(np.arange(i0, i1) * cols + m)
    part(0, rows, 0, cols)
    return np.concatenate(out)


@dataclass(frozen=True)
class Capacitor:
    name: str
    n_pos: str
    n_neg: str
    c_farad: float
    ic_v: float | None = None


@dataclass(frozen=True)
class Inductor:
    name: str
    n_pos: str
    n_neg: str
    l_henry: float
    ic_a: float | None = None


@dataclass(frozen=True)
class VoltageSource:
    name: str
    n_pos: str
    n_neg: str
    dc_v: float
    ac_v: float | None = None


@dataclass(frozen=True)
class PulseVoltageSource:
    """SPICE PULSE(v1 v2 delay rise fall width period): v1 until delay_s, a ramp of rise_s to v2, v2 for
    width_s, a ramp of fall_s back to v1, repeating every period_s (a clock phase)."""

    name: str
    n_pos: str
    n_neg: str
    v1_v: float
    v2_v: float
    delay_s: float
    rise_s: float
    fall_s: float
    width_s: float
    period_s: float


@dataclass(frozen=True)
class VCVS:
    name: str
    n_pos: str
    n_neg: str
    c_pos: str
    c_neg: str
    gain: float


@dataclass(frozen=True)
class ClippedVCVS:
    """Output V(n_pos, n_neg) = clip(V(control), -v_max_v, v_max_v): a limited output stage (nonlinear)."""

    name: str
    n_pos: str
    n_neg: str
    control: str
    v_max_v: float


@dataclass(frozen=True)
class VCCS:
    name: str
    n_pos: str
    n_neg: str
    c_pos: str
    c_neg: str
    gm_siemens: float


@dataclass(frozen=True)
class CCCS:
    """Current gain * I(sense) from n_pos through the source to n_neg; ``sense`` names a VoltageSource."""

    name: str
    n_pos: str
    n_neg: str
    sense: str
    gain: float


@dataclass(frozen=True)
class SwitchModel:
    name: str
    vt_v: float
    vh_v: float
    r_on_ohm: float
    r_off_ohm: float


@dataclass(frozen=True)
class Switch:
    """Voltage-controlled switch: r_on while V(c_pos, c_neg) > vt of its model, else r_off. ``on`` is the
    state the switch starts in (and, with a DC control, keeps: its programmed state)."""

    name: str
    n_pos: str
    n_neg: str
    c_pos: str
    c_neg: str
    model: str
    on: bool


@dataclass(frozen=True)
class NoiseLaw:
    """The statistical law of a NoiseSource's samples, for an engine that draws the noise instead of playing the
    samples (the linear engine's aggregated mode, spu_sim/engines/linear/dense.py): white noise of two-sided
    intensity ``q_white_v2_s`` (V^2 s) plus independent stationary Ornstein-Uhlenbeck processes, one per corner
    ``ou_poles_hz[k]`` (rate 2 pi f_k per second) of stationary variance ``ou_var_v2[k]`` (V^2), started in that
    variance. The 1/f construction (spu_sim.parts.intrinsic_noise) is of this form, exactly."""

    q_white_v2_s: float
    ou_poles_hz: tuple[float, ...] = ()
    ou_var_v2: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        vals = (self.q_white_v2_s, *self.ou_poles_hz, *self.ou_var_v2)
        if len(self.ou_poles_hz) != len(self.ou_var_v2) or not all(math.isfinite(v) and v >= 0 for v in vals) \
                or not all(f > 0 for f in self.ou_poles_hz):
            raise ValueError(f"NoiseLaw: intensities, poles and variances must be finite and >= 0 (poles > 0), "
                             f"one variance per pole: {self}")


def _available_bytes() -> float:
    """MemAvailable of /proc/meminfo in bytes (inf when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return math.inf


_ALL_ROWS = slice(None)


class SampleBlock:
    """A (rows, columns) matrix of noise samples defined by a seeded generator and read in row order, never held
    whole unless an engine asks for it (streamed noise: the linear engine's method lowrank reads it chunk by chunk).

    stream(chunk_rows, scale) yields consecutive row blocks times scale (the rows in order, each block at most
    chunk_rows rows; the same numbers whatever chunk_rows: a generator consumed in row order; each value is the
    unscaled value times scale, rounded once, as ``scale * array`` gives; a block may live in a buffer the stream
    reuses for the block after next); scale multiplies every value (``v_rms * block`` is a scaled block). ``block[:, i]`` is a SampleColumn, what NoiseSource.samples_v holds; np.asarray of a
    block or a column materialises the whole matrix once (cached), refused with BadInputError when it does not fit
    in the machine's free memory."""

    __array_ufunc__ = None     # numpy defers to the operators below (a scalar times a block stays a block)

    def __init__(self, shape: tuple[int, int], stream: Callable, scale: float = 1.0, what: str = "noise samples") -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self._stream = stream
        self.scale = float(scale)
        self.what = what
        self._array: np.ndarray | None = None

    def __mul__(self, k) -> "SampleBlock":
        if not np.isscalar(k) and np.ndim(k) != 0:
            return NotImplemented
        return SampleBlock(self.shape, self._stream, self.scale * float(k), self.what)

    __rmul__ = __mul__

    def __getitem__(self, key):
        if type(key) is tuple and len(key) == 2:             # block[:, i], once per noise DAC: kept cheap
            s, i = key
            if s == _ALL_ROWS:
                if type(i) is int and 0 <= i < self.shape[1]:
                    return SampleColumn(self, i)
                if isinstance(i, (int, np.integer)):
                    return SampleColumn(self, int(i) % self.shape[1])
        return np.asarray(self)[key]

    def chunks(self, chunk_rows: int):
        """(first row, block (rows, columns), scaled) in row order (the stream's own buffer: valid until the block
        after next, stream doc)."""
        k, stream = 0, self._stream(max(1, int(chunk_rows)), self.scale)
        try:
            for b in stream:
                yield k, b
                k += b.shape[0]
        finally:
            stream.close()        # a stream that draws ahead (parts/noise_dacs.noise_rows) stops now

    def __array__(self, dtype=None, copy=None):
        if self._array is None:
            need = 8.0 * self.shape[0] * self.shape[1]
            free = _available_bytes()
            if need > 0.9 * free:
                raise BadInputError(f"{self.what}: {self.shape[0]} x {self.shape[1]} samples ({need / 1e6:.4g} MB) do not "
                                    f"fit in the {free / 1e6:.4g} MB free; only the linear engine's method lowrank reads "
                                    "them in chunks (ideal op-amps, uniform leak and capacitors, the readout step a "
                                    "multiple of the noise step): shorten the run or raise the noise step")
            out = np.empty(self.shape)
            for k, b in self.chunks(max(1, int(2 ** 24 // max(self.shape[1], 1)))):
                out[k:k + b.shape[0]] = b
            self._array = out
        return self._array if dtype is None else self._array.astype(dtype, copy=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_array"] = None          # regenerated where it is needed
        return state


class SampleColumn:
    """Column ``index`` of a SampleBlock: one noise DAC's samples (len, shape, indexing and arithmetic as an array,
    which materialise the block; SampleBlock doc)."""

    __array_ufunc__ = None
    __slots__ = ("block", "index")

    def __init__(self, block: SampleBlock, index: int) -> None:
        self.block, self.index = block, index

    @property
    def shape(self) -> tuple[int]:
        return (self.block.shape[0],)

    def __len__(self) -> int:
        return self.block.shape[0]

    def __array__(self, dtype=None, copy=None):
        col = np.asarray(self.block)[:, self.index]
        return col if dtype is None else col.astype(dtype, copy=False)

    def __getitem__(self, key):
        return np.asarray(self)[key]

    def __add__(self, o):
        return np.asarray(self) + o

    def __radd__(self, o):
        return o + np.asarray(self)

    def __sub__(self, o):
        return np.asarray(self) - o

    def __rsub__(self, o):
        return o - np.asarray(self)

    def __mul__(self, o):
        return np.asarray(self) * o

    def __rmul__(self, o):
        return o * np.asarray(self)

    def __neg__(self):
        return -np.asarray(self)


def _samples_finite(samples) -> bool:
    """Every sample finite (a streamed column: its generator's Gaussian draws times a finite scale are)."""
    if isinstance(samples, SampleColumn):
        return bool(np.isfinite(samples.block.scale))
    return bool(np.all(np.isfinite(samples)))


@dataclass(frozen=True, eq=False)
class NoiseSource:
    """A noise DAC: V(node) = samples_v[k] at t = k dt_s, linearly interpolated in between (ground referenced).

    samples_v is part of the description: the ngspice engines write it to ``file_name`` (an XSPICE
    filesource) and the linear engine integrates the same piecewise-linear input exactly. It is an array, or a
    SampleColumn of a SampleBlock (streamed noise: generated in row order, materialised only when an engine asks).
    held=True: a zero-order hold instead (filesource amplstep=true): samples_v[k] for k dt_s <= t < (k+1) dt_s
    (a sampled-and-held value, e.g. a kT/C charge error that lasts one clock phase). n_neg: the source's
    negative terminal (default ground; another node makes it a floating source in series with a branch).
    """

    name: str
    node: str
    model: str
    file_name: str
    samples_v: np.ndarray
    dt_s: float
    held: bool = False
    n_neg: str = "0"
    #: what an engine that draws the noise instead of playing the samples draws (None: white noise of the samples'
    #: low-frequency intensity, spu_sim.engines.linear.noise.noise_intensity_v2_s)
    law: NoiseLaw | None = None


# ---------------------------------------------------------------- behavioural-source expressions
#
# Expressions are trees (``Expr``) built with ``num``, ``volt``, ``add``, ``mul``, ``div`` and ``call`` (functions in
# EXPR_FUNCS): only numbers and checked node names reach a netlist (spu_sim.spice.format_expr), never text.

EXPR_FUNCS = ("exp", "tanh", "min", "max", "abs")


@dataclass(frozen=True)
class Expr:
    """A behavioural-source expression: op "num" (args (x,)), "v" (args (node,) or (node, ref)), "+", "*",
    "/" (two args) or a function of EXPR_FUNCS applied to its args (Expr each)."""

    op: str
    args: tuple

    def __post_init__(self) -> None:
        if self.op == "num":
            if len(self.args) != 1 or not np.isfinite(float(self.args[0])):
                raise ValueError("num: one finite number")
        elif self.op == "v":
            if len(self.args) not in (1, 2):
                raise ValueError("v: a node and an optional reference node")
            for n in self.args:
                check_name(n)
        elif self.op in ("+", "*", "/") or self.op in EXPR_FUNCS:
            if not self.args or not all(isinstance(a, Expr) for a in self.args):
                raise ValueError(f"{self.op}: arguments must be expressions")
            if self.op == "/" and len(self.args) != 2:
                raise ValueError("/: exactly two arguments")
        else:
            raise ValueError(f"{self.op!r} is not an expression operator")


def num(x: float) -> Expr:
    return Expr("num", (float(x),))


def volt(node: str, ref: str | None = None) -> Expr:
    return Expr("v", (node,) if ref is None else (node, ref))


def add(*terms: Expr) -> Expr:
    return Expr("+", tuple(terms))


def mul(*factors: Expr) -> Expr:
    return Expr("*", tuple(factors))


def div(a: Expr, b: Expr) -> Expr:
    return Expr("/", (a, b))


def call(fn: str, *args: Expr) -> Expr:
    return Expr(fn, tuple(args))


@dataclass(frozen=True)
class BehavioralVoltage:
    """B source: V(n_pos, n_neg) = expr (an ``Expr``; nonlinear in general)."""

    name: str
    n_pos: str
    n_neg: str
    expr: Expr


@dataclass(frozen=True)
class BehavioralCurrent:
    """B source: the current expr flows from n_pos through the source to n_neg."""

    name: str
    n_pos: str
    n_neg: str
    expr: Expr


@dataclass(frozen=True)
class Comment:
    text: str


# ---------------------------------------------------------------- subcircuits

#: characters a file path may not hold where it goes into a netlist between double quotes
_PATH_BAD = re.compile(r'["\n\r\x00-\x1f\x7f]')


def check_path(path: str, key: str = "file") -> str:
    """An absolute file path as it may appear in a ``.include`` / ``.lib`` line: no quote, no control character,
    nothing after it can start a new card. ``key`` names the config key in the BadInputError."""
    text = str(path)
    if not text or _PATH_BAD.search(text):
        raise BadInputError(f"{key}: {text[:80]!r} is not a usable file path (no quotes or control characters); "
                            "rename the file or its folder")
    if not text.startswith("/"):
        raise ValueError(f"{text!r}: a netlist includes absolute paths only (resolve it first)")
    return text


@dataclass(frozen=True)
class SubcktFile:
    """An external file the netlist includes: ``.include "path"`` (section None) or ``.lib "path" section`` (one
    section of a process library, e.g. a corner). Nothing of it is part of the description: only ngspice reads it."""

    path: str
    section: str | None = None


@dataclass(frozen=True)
class Param:
    """A value inside a Subckt that each Instance sets (``{name}`` in the netlist, a number after flatten)."""

    name: str


@dataclass(frozen=True, eq=False)
class Subckt:
    """A subcircuit definition ``.subckt name pins params: p=default ... .ends``: elements whose names and nodes are
    local to it (a node is a pin, a local node, or ground ``0``, which is global); an element value may be a
    ``Param`` of ``params`` ({name: default})."""

    name: str
    pins: tuple
    elements: tuple
    comment: str = ""
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    """An X line: an instance of subcircuit ``subckt`` (a ``Subckt`` of the circuit or one defined in a
    ``SubcktFile``) whose pin k connects to nodes[k] (the pin map, in the order of the definition's pins), with
    parameter values ``params`` ({name: value}; the definition's defaults otherwise)."""

    name: str
    subckt: str
    nodes: tuple
    params: dict = field(default_factory=dict, hash=False, compare=True)


# ---------------------------------------------------------------- element banks


class Columns:
    """A per-element field of an ElementBank given as the columns of a (rows, n) matrix: element at position p of the
    bank gets ``matrix[:, p]`` (a SampleBlock's SampleColumn; an array's column, a view of it)."""

    def __init__(self, matrix) -> None:
        self.matrix = matrix

    def __len__(self) -> int:
        return self.matrix.shape[1]

    def column(self, p: int):
        m = self.matrix
        return m[:, p] if isinstance(m, SampleBlock) else np.asarray(m[:, p])

    def tolist(self) -> list:
        return [self.column(p) for p in range(len(self))]


@dataclass(frozen=True, eq=False)
class Template:
    """One element of each cell of an ElementBank: its kind (Resistor, Capacitor, VoltageSource, VCVS, CCCS,
    NoiseSource, ...) and its fields, each one of: a pattern (a str holding ``{}``: formatted with the cell's keys, e.g.
    ``"sum{}"``), a per-element value (a list or a 1-D array of n values; ``Columns`` for the columns of a matrix), or
    a constant (anything else: a fixed node such as ``"0"``, a gain, None)."""

    kind: type
    fields: dict

    def get(self, attr: str):
        """The field as given, or the kind's default (KeyError: neither)."""
        if attr in self.fields:
            return self.fields[attr]
        f = next((f for f in dataclasses.fields(self.kind) if f.name == attr), None)
        if f is None or f.default is dataclasses.MISSING:
            raise KeyError(f"{self.kind.__name__} has no field {attr!r} with a default")
        return f.default


def _is_pattern(v) -> bool:
    return isinstance(v, str) and "{" in v


def _is_per_element(v) -> bool:
    return isinstance(v, (list, np.ndarray, Columns))


#: the keys of a bank of one cell whose names and nodes are plain strings (no pattern): the per-element form of a bank's
#: cell, ElementBank(ONE_CELL, templates).elements()
ONE_CELL = (np.zeros(1, dtype=np.int64),)


@dataclass(frozen=True, eq=False)
class ElementBank:
    """n cells of the same elements, stated as arrays: exact shorthand for the elements ``elements()`` expands to,
    cell after cell, each cell the templates' elements in order (the netlist order of the per-element form).

        ElementBank.of(Resistor, np.arange(1, n + 1), name="RL{}", n_pos="x{}", n_neg="sum{}", r_ohm=r)
        ElementBank((keys,), (Template(VoltageSource, {...}), Template(CCCS, {...})))    # a cell of two elements

    keys: a tuple of integer arrays (n,) each: cell p formats every pattern with (keys[0][p], keys[1][p], ...) (a
    1-based variable index; two keys for names such as VSU<k>_<g>). The arrays are held, not copied (as a
    ResistorArray's): do not change them after building the bank. Consumers that know banks read the arrays (the
    linear engine's assembly, the SPICE writer, check_physical: ``Circuit.banked``); every other reader sees the
    expanded elements (``Circuit.elements``, ``flatten``, ``Circuit.of_type``), built once and cached.
    """

    keys: tuple
    templates: tuple

    def __post_init__(self) -> None:
        keys = tuple(np.asarray(k, dtype=np.int64).ravel() for k in self.keys)
        if not keys or len({len(k) for k in keys}) != 1:
            raise ValueError("ElementBank: keys must be one or more integer arrays of the same length")
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "templates", tuple(self.templates))
        n = len(keys[0])
        for t in self.templates:
            names = {f.name for f in dataclasses.fields(t.kind)}
            required = {f.name for f in dataclasses.fields(t.kind)
                        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
            if set(t.fields) - names or required - set(t.fields):
                raise ValueError(f"ElementBank of {t.kind.__name__}: fields {sorted(t.fields)}, the kind has "
                                 f"{sorted(names)} (required {sorted(required)})")
            for attr, v in t.fields.items():
                if _is_per_element(v) and len(v) != n:
                    raise ValueError(f"ElementBank of {t.kind.__name__}: {attr} holds {len(v)} values for {n} cells")

    @classmethod
    def of(cls, kind: type, keys, **fields) -> "ElementBank":
        """A bank of one element per cell (keys: one integer array, or a tuple of them)."""
        return cls(keys if isinstance(keys, tuple) else (keys,), (Template(kind, fields),))

    @property
    def n(self) -> int:
        """The number of cells."""
        return len(self.keys[0])

    @property
    def keys_digest(self) -> tuple:
        """A hashable digest of the keys (equal for banks of the same cells: a reader may share work between them)."""
        d = self.__dict__.get("_keys_digest")
        if d is None:
            d = (self.n,) + tuple(hash(k.tobytes()) for k in self.keys)
            object.__setattr__(self, "_keys_digest", d)
        return d

    @property
    def kinds(self) -> set:
        return {t.kind for t in self.templates}

    @property
    def name(self) -> str:
        return "/".join(str(t.fields["name"]) for t in self.templates)

    def __len__(self) -> int:
        """The number of elements it expands to."""
        return self.n * len(self.templates)

    def strings(self, t: int, attr: str) -> list[str]:
        """Field attr of template t for every cell: a pattern formatted with the keys, a per-element list, or the
        constant repeated."""
        v = self.templates[t].get(attr)
        if _is_pattern(v):
            return self._formatted(v)
        if _is_per_element(v):
            return list(v)
        return [v] * self.n

    def _formatted(self, pattern: str) -> list[str]:
        """The pattern formatted with every cell's keys (cached per pattern: callers must not change the list)."""
        cache = self.__dict__.setdefault("_formatted_cache", {})
        out = cache.get(pattern)
        if out is None:
            if len(self.keys) == 1 and pattern.count("{}") == 1:
                pre, post = pattern.split("{}")
                out = [f"{pre}{k}{post}" for k in self.keys[0].tolist()]
            else:
                out = [pattern.format(*ks) for ks in zip(*(k.tolist() for k in self.keys))]
            cache[pattern] = out
        return out

    def values(self, t: int, attr: str) -> np.ndarray:
        """Field attr of template t for every cell as a float array (n,)."""
        v = self.templates[t].get(attr)
        if _is_per_element(v):
            return np.asarray(v, dtype=float)
        return np.full(self.n, float(v))

    def column(self, t: int, attr: str) -> list:
        """Field attr of template t for every cell, as the expanded elements hold it (Python scalars)."""
        v = self.templates[t].get(attr)
        if _is_pattern(v):
            return self.strings(t, attr)
        if isinstance(v, Columns):
            return v.tolist()
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, list):
            return v
        return [v] * self.n

    def has(self, kind: type | tuple) -> bool:
        return any(issubclass(t.kind, kind) for t in self.templates)

    def element(self, p: int, t: int):
        """The element of template t in cell p."""
        tpl = self.templates[t]
        return tpl.kind(**{a: self.column(t, a)[p] if (_is_pattern(v) or _is_per_element(v)) else v
                           for a, v in tpl.fields.items()})

    def template_elements(self, t: int) -> list:
        """The elements of template t, one per cell (cached: built once)."""
        cache = self.__dict__.setdefault("_per_template", {})
        out = cache.get(t)
        if out is None:
            tpl = self.templates[t]
            cols = {a: self.column(t, a) for a in tpl.fields}
            collecting = gc.isenabled()
            gc.disable()     # 1e5 new objects without cycles: no collection of the (large) heap while they are made
            try:
                out = cache[t] = [_make(tpl.kind, dict(zip(cols, vals))) for vals in zip(*cols.values())]
            finally:
                if collecting:
                    gc.enable()
        return out

    def elements(self) -> list:
        """The elements it stands for, cell after cell (each template's built once, cached)."""
        return self.interleaved([self.template_elements(t) for t in range(len(self.templates))])

    def of_kind(self, kind: type | tuple) -> list:
        """The expanded elements of that kind (isinstance), in order (only those templates' elements are built)."""
        ts = [t for t, tpl in enumerate(self.templates) if issubclass(tpl.kind, kind)]
        return self.interleaved([self.template_elements(t) for t in ts]) if ts else []

    def interleaved(self, columns: list[list]) -> list:
        """Per-template columns (one list of n values each) in netlist order: cell by cell."""
        if len(columns) == 1:
            return list(columns[0])
        if not columns:
            return []
        return [x for cell in zip(*columns) for x in cell]


def _make(kind: type, values: dict):
    """kind(**values) without the frozen dataclass's per-field object.__setattr__ (the same object: no kind that a
    bank holds has a __post_init__); a tenth of the cost at 1e5 elements."""
    if hasattr(kind, "__post_init__"):
        return kind(**values)
    e = object.__new__(kind)
    defaults = _DEFAULTS.get(kind)
    if defaults is None:
        defaults = _DEFAULTS[kind] = {f.name: f.default for f in dataclasses.fields(kind)
                                      if f.default is not dataclasses.MISSING}
    e.__dict__.update(defaults)
    e.__dict__.update(values)
    return e


_DEFAULTS: dict = {}


def expand_banks(elements: list) -> list:
    """The elements with every ElementBank replaced by the elements it stands for (in place, in order)."""
    if ElementBank not in set(map(type, elements)):
        return elements if isinstance(elements, list) else list(elements)
    out: list = []
    for e in elements:
        if type(e) is ElementBank:
            out.extend(e.elements())
        else:
            out.append(e)
    return out


Element = Union[Resistor, ResistorArray, Capacitor, Inductor, VoltageSource, PulseVoltageSource, VCVS, ClippedVCVS, VCCS, CCCS,
                SwitchModel, Switch, NoiseSource, BehavioralVoltage, BehavioralCurrent, Comment, SubcktFile, Subckt, Instance,
                ElementBank]


def element_types(elements) -> set:
    """The set of element types in a list, by one C-level pass (no Python call per element): the whole-list scans
    (flatten, Circuit.of_type, the engines' kind checks) ask it first, a circuit of 1e6 elements holds a dozen types.
    An ElementBank counts as the kinds of its elements (the bank itself is not a type of element)."""
    types = set(map(type, elements))
    if ElementBank in types:
        types.discard(ElementBank)
        for e in elements:
            if type(e) is ElementBank:
                types |= e.kinds
    return types


def has_type(types: set, kind: type | tuple) -> bool:
    """Whether some type of ``element_types`` is ``kind`` or a subclass of it."""
    return any(issubclass(t, kind) for t in types)


def flatten(elements: list, keep_external: bool = False, banks: bool = False) -> list:
    """The elements with every Instance of a Subckt among them expanded in place (for engines that take flat
    elements): element ``E`` of instance ``X`` becomes ``E_X``, its local node ``n`` becomes ``X_n``, its pins the
    instance's nodes; the definitions themselves go. An Instance of a subcircuit defined only in an external file
    (SubcktFile) cannot be flattened: ValueError naming it (only ngspice reads such a file), or with keep_external
    it is kept as it is. Every ElementBank is expanded into its elements too, unless the caller reads banks itself
    (banks=True: they are kept as they are)."""
    if not banks:
        elements = expand_banks(elements)
    types = set(map(type, elements))
    if not has_type(types, Instance):
        return [e for e in elements if not isinstance(e, Subckt)] if has_type(types, Subckt) else list(elements)
    defs = {e.name.upper(): e for e in elements if isinstance(e, Subckt)}
    out: list = []
    for e in elements:
        if isinstance(e, Subckt):
            continue
        if not isinstance(e, Instance):
            out.append(e)
            continue
        sub = defs.get(e.subckt.upper())
        if sub is None and keep_external:
            out.append(e)
            continue
        if sub is None:
            raise ValueError(f"instance {e.name}: subcircuit {e.subckt} is defined in an external file, which only "
                             "ngspice reads (an engine that needs flat elements cannot run it)")
        if len(e.nodes) != len(sub.pins):
            raise ValueError(f"instance {e.name}: {len(e.nodes)} nodes for the {len(sub.pins)} pins of {sub.name}")
        pin = dict(zip(sub.pins, e.nodes))
        unknown = set(e.params) - set(sub.params)
        if unknown:
            raise ValueError(f"instance {e.name}: {sorted(unknown)[0]} is not a parameter of {sub.name}")
        par = {**sub.params, **e.params}
        node = lambda n: n if n == "0" else pin.get(n, f"{e.name}_{n}")   # noqa: E731
        names = {x.name for x in sub.elements if hasattr(x, "name")}
        for x in flatten(list(sub.elements)):
            if isinstance(x, Comment):
                continue
            if isinstance(x, (ResistorArray, NoiseSource, SubcktFile, BehavioralVoltage, BehavioralCurrent)):
                raise ValueError(f"subcircuit {sub.name}: a {type(x).__name__} cannot be flattened")
            upd = {"name": f"{x.name}_{e.name}"}
            for f in dataclasses.fields(x):
                v = getattr(x, f.name)
                if isinstance(v, Param):
                    upd[f.name] = float(par[v.name])
            for attr in _NODE_ATTRS + ("control",):
                if isinstance(getattr(x, attr, None), str):
                    upd[attr] = node(getattr(x, attr))
            for attr in ("sense", "model"):
                if isinstance(getattr(x, attr, None), str) and getattr(x, attr) in names:
                    upd[attr] = f"{getattr(x, attr)}_{e.name}"
            out.append(dataclasses.replace(x, **upd))
    return out


@dataclass(frozen=True)
class Op:
    """DC operating point."""


@dataclass(frozen=True)
class Tran:
    """Transient from the initial conditions (uic: capacitor/inductor ICs and .ic, no operating point first).
    step_s: output step; tmax_s: the largest internal step."""

    step_s: float
    stop_s: float
    tmax_s: float
    uic: bool = True


@dataclass(frozen=True)
class Noise:
    """Small-signal noise: the spectrum of V(output) - V(reference) (reference None = ground), referred to
    the input ``source`` (a VoltageSource with an ac value), on a log grid."""

    output: str
    reference: str | None
    source: str
    points_per_decade: int
    f_start_hz: float
    f_stop_hz: float


Analysis = Union[Op, Tran, Noise]


@dataclass
class DriftFactors:
    """A builder's statement of a circuit's state equation in factors (never N x N): with x the voltages of ``nodes``
    (volts, time in seconds), x' = -(d_per_s * x + U (W (VT x))) + (terms of the sources), U (N, m) per second,
    W (m, m) or None (identity), VT (m, N), d_per_s (N,). An engine checks it against its own model (random probes
    of its operator) before using it, so a stale or wrong statement costs time, never accuracy."""

    nodes: tuple[str, ...]
    U: np.ndarray
    W: np.ndarray | None
    VT: np.ndarray
    d_per_s: np.ndarray


@dataclass
class Circuit:
    """A whole circuit: header comments, elements in netlist order, initial node voltages, options, the
    vectors to save and the analyses.

    readout_nodes: the nodes whose voltages the readout turns into the problem's variables, in order.
    analysis_notes: comment lines written with the analyses (e.g. why an analysis is absent).
    optional_saves: saved vectors only a metric reads (the op-amp output currents of the supply energy), which an
    engine that cannot give them leaves out (linear-aggregated: they follow white noise directly) instead of refusing.

    Element banks: ``elements`` may be given ElementBanks (n cells of the same elements as arrays). Reading
    ``circuit.elements`` gives the expanded elements (built once, cached; without banks, the list as given), so every
    reader that does not know banks sees exactly the per-element circuit; ``circuit.banked`` is the list as given,
    banks kept, for the readers that take them natively (the linear engine's assembly, the SPICE writer,
    check_physical, of_type, node_names). dataclasses.replace keeps the banks unless ``elements`` is given anew; the
    expanded list is a view: edit a copy and pass it as ``elements``.
    """

    title: str
    elements: list[Element]
    readout_nodes: list[str]
    analyses: list[Analysis] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    ic_v: dict[str, float] = field(default_factory=dict)
    options: dict[str, float] = field(default_factory=dict)
    temp_c: float | None = None
    saves: list[str] = field(default_factory=list)
    analysis_notes: list[str] = field(default_factory=list)
    optional_saves: list[str] = field(default_factory=list)
    #: the state equation in factors, computed when an engine asks (None: not stated): a callable -> DriftFactors
    drift_factors: Callable[[], DriftFactors] | None = None

    def of_type(self, kind: type) -> list:
        """The elements of one type, in order (none: one C-level pass, circuit.element_types); a bank's elements of
        that type expanded (cached in the bank)."""
        items = self.banked
        if not has_type(element_types(items), kind):
            return []
        out: list = []
        for e in items:
            if type(e) is ElementBank:
                if e.has(kind):
                    out.extend(e.of_kind(kind))
            elif isinstance(e, kind):
                out.append(e)
        return out

    def count_of_type(self, kind: type | tuple) -> int:
        """len(of_type(kind)) without building a bank's elements."""
        items = self.banked
        if not has_type(element_types(items), kind):
            return 0
        return sum(sum(issubclass(t.kind, kind) for t in e.templates) * e.n if type(e) is ElementBank
                   else isinstance(e, kind) for e in items)

    @property
    def banked(self) -> list:
        """The elements as given: ElementBanks kept (class doc)."""
        return self.__dict__["_banked"]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_expanded", None)     # rebuilt where it is read
        return state

    @property
    def noise_sources(self) -> list[NoiseSource]:
        return self.of_type(NoiseSource)

    def analysis(self, kind: type):
        """The first analysis of that type, or None."""
        return next((a for a in self.analyses if isinstance(a, kind)), None)


def stated_elements(circuit) -> list:
    """The elements as given, banks kept (Circuit.banked; an object with elements only: its elements)."""
    items = getattr(circuit, "banked", None)
    return circuit.elements if items is None else items


class _Expanded(list):
    """Circuit.elements of a circuit with banks: the expanded elements, remembering the list as given (so that
    dataclasses.replace, which reads circuit.elements, keeps the banks while this list is unchanged in length)."""

    stated: list = []
    length: int = 0


def _get_elements(self: Circuit) -> list:
    items = self.__dict__["_banked"]
    cache = self.__dict__.get("_expanded")
    if cache is None:
        if ElementBank not in set(map(type, items)):
            return items
        cache = _Expanded(expand_banks(items))
        cache.stated, cache.length = items, len(cache)
        self.__dict__["_expanded"] = cache
    return cache


def _set_elements(self: Circuit, value) -> None:
    if isinstance(value, _Expanded) and len(value) == value.length:
        value = value.stated
    self.__dict__["_banked"] = value
    self.__dict__.pop("_expanded", None)


# a property over the dataclass field: the constructor and dataclasses.replace go through _set_elements
Circuit.elements = property(_get_elements, _set_elements, doc="The elements, banks expanded (Circuit doc).")

_NODE_ATTRS = ("n_pos", "n_neg", "c_pos", "c_neg", "node")


def node_names(circuit: Circuit) -> list[str]:
    """Every node the elements connect (ground ``0`` included), in first-use order."""
    seen: dict[str, None] = {}
    for e in stated_elements(circuit):
        if type(e) is ElementBank:
            seen.update(dict.fromkeys(e.interleaved(
                [e.strings(t, a) for t, tpl in enumerate(e.templates) for a in _NODE_ATTRS
                 if isinstance(tpl.fields.get(a), str)])))
            continue
        if isinstance(e, ResistorArray):
            seen.update(dict.fromkeys(e.row_nodes))
            seen.update(dict.fromkeys(e.col_nodes))
            continue
        if isinstance(e, Instance):
            seen.update(dict.fromkeys(e.nodes))
            continue
        for attr in _NODE_ATTRS:
            v = getattr(e, attr, None)
            if isinstance(v, str):
                seen[v] = None
    return list(seen)


def saved_vectors(circuit: Circuit, wanted: list[str]) -> list[str]:
    """simulation.save_nodes -> vectors for circuit.saves: ``sum1`` -> ``v(sum1)``; ``v(a)``, ``v(a,b)`` with
    nodes of the circuit; ``i(name)`` with a voltage source of the circuit (its branch current; case-insensitive
    as in SPICE). An unknown name is a BadInputError naming it and listing some valid ones."""
    nodes = {n.lower(): n for n in node_names(circuit)}
    sources = {e.name.lower(): e.name for e in stated_elements(circuit) if isinstance(e, (VoltageSource, PulseVoltageSource))}
    for b in stated_elements(circuit):
        if type(b) is ElementBank:
            sources.update({k.lower(): k for t, tpl in enumerate(b.templates)
                            if issubclass(tpl.kind, (VoltageSource, PulseVoltageSource)) for k in b.strings(t, "name")})
    out = []
    for w in wanted:
        key = w.strip().lower().replace(" ", "")
        if key.startswith("i(") and key.endswith(")"):
            if key[2:-1] not in sources:
                some = ", ".join(sorted(sources.values())[:8]) or "none"
                raise BadInputError(f"simulation.save_nodes: {w!r}: the circuit has no voltage source "
                                    f"{key[2:-1]!r} (i() takes a voltage source; some: {some})")
            out.append(f"i({sources[key[2:-1]]})")
            continue
        parts = key[2:-1].split(",") if key.startswith("v(") and key.endswith(")") else [key]
        for n in parts:
            if n not in nodes:
                some = ", ".join(sorted((v for v in nodes.values() if v != "0"), key=_natural)[:10])
                raise BadInputError(f"simulation.save_nodes: {w!r}: the circuit has no node {n!r}; its nodes "
                                    f"include {some} ({len(nodes) - 1} in all)")
        out.append("v(" + ",".join(check_name(nodes[n]) for n in parts) + ")")
    return out


def _natural(name: str) -> tuple:
    """Sort key: x2 before x10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


_POSITIVE = {Resistor: ("r_ohm", "R", "ohm"), Capacitor: ("c_farad", "C", "F"), Inductor: ("l_henry", "L", "H")}
_FINITE = {VoltageSource: ("dc_v", "ac_v"), VCVS: ("gain",), ClippedVCVS: ("v_max_v",), VCCS: ("gm_siemens",),
           CCCS: ("gain",), SwitchModel: ("vt_v", "vh_v", "r_on_ohm", "r_off_ohm")}


_WHY = ("; check circuit.tolerance / circuit.temperature (they can drive a value below 0) and the problem's "
        "scale against the element ranges")


def check_physical(circuit: Circuit) -> None:
    """Every resistor, capacitor and inductor finite and > 0, every other value and initial condition finite,
    every noise sample finite: else a DesignError naming the element (the knobs that usually cause it: tolerance,
    temperature, quantisation, or a problem whose scale the element ranges cannot reach). A bank is checked on its
    arrays; its first bad element (in netlist order) is named as the per-element form would name it."""
    for e in flatten(stated_elements(circuit), keep_external=True, banks=True):
        if type(e) is ElementBank:
            bad = _first_bad_in_bank(e)
            if bad is not None:
                _check_element(e.element(*bad))
            continue
        if isinstance(e, ResistorArray):
            bad = e.first_non_physical()
            if bad is not None:
                raise DesignError(f"element {bad[0]}: R = {bad[1]:.4g} ohm is not physical (must be finite and > 0){_WHY}")
            continue
        _check_element(e)
    for node, v in circuit.ic_v.items():
        if not np.isfinite(v):
            raise DesignError(f"initial condition of node {node}: {v} is not finite{_WHY}")


def _check_element(e) -> None:
    """check_physical of one element."""
    isfinite = math.isfinite   # scalars: a tenth of np.isfinite's call cost, and a circuit has 1e4 elements
    rule = _POSITIVE.get(type(e))
    if rule is not None:
        attr, sym, unit = rule
        v = getattr(e, attr)
        if not (isfinite(v) and v > 0):
            raise DesignError(f"element {e.name}: {sym} = {v:.4g} {unit} is not physical (must be finite and > 0){_WHY}")
        ic = getattr(e, "ic_v", None) if sym != "L" else e.ic_a
        if ic is not None and not isfinite(ic):
            raise DesignError(f"element {e.name}: initial condition {ic} is not finite{_WHY}")
    for attr in _FINITE.get(type(e), ()):
        v = getattr(e, attr)
        if v is not None and not isfinite(v):
            raise DesignError(f"element {e.name}: {attr} = {v} is not finite{_WHY}")
    if isinstance(e, NoiseSource) and not _samples_finite(e.samples_v):
        raise DesignError(f"element {e.name}: noise samples are not finite{_WHY}")


def _not_finite(bank: ElementBank, t: int, attr: str) -> np.ndarray:
    """(n,) True where field attr of template t is set (not None) and not finite."""
    v = bank.templates[t].fields.get(attr)
    if isinstance(v, np.ndarray) and v.dtype.kind in "fiu":
        return ~np.isfinite(v)
    if _is_per_element(v):
        return np.array([x is not None and not math.isfinite(x) for x in v], dtype=bool)
    return np.full(bank.n, v is not None and not math.isfinite(v))


def _first_bad_in_bank(bank: ElementBank) -> tuple[int, int] | None:
    """(cell, template) of the first element (netlist order) check_physical refuses, or None: the checks on arrays."""
    T = len(bank.templates)
    first = None
    for t, tpl in enumerate(bank.templates):
        bad = np.zeros(bank.n, dtype=bool)
        rule = _POSITIVE.get(tpl.kind)
        if rule is not None:
            v = bank.values(t, rule[0])
            bad |= ~(np.isfinite(v) & (v > 0))
            bad |= _not_finite(bank, t, "ic_a" if rule[1] == "L" else "ic_v")
        for attr in _FINITE.get(tpl.kind, ()):
            bad |= _not_finite(bank, t, attr)
        if tpl.kind is NoiseSource:
            s = tpl.fields["samples_v"]
            if isinstance(s, Columns):
                m = s.matrix
                bad |= (np.full(bank.n, not math.isfinite(m.scale)) if isinstance(m, SampleBlock)
                        else ~np.isfinite(np.asarray(m)).all(axis=0))
            elif isinstance(s, list):
                bad |= np.array([not _samples_finite(x) for x in s], dtype=bool)
            else:
                bad |= not _samples_finite(s)
        hit = np.flatnonzero(bad)
        if len(hit) and (first is None or hit[0] * T + t < first[0] * T + first[1]):
            first = (int(hit[0]), t)
    return first
