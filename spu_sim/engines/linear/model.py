"""The circuit model of the linear engine: modified nodal analysis of a linear Circuit and its reduction to a
state-space model (state choice, floating capacitor islands, index-1 reduction).

    mna = assemble(circuit)             # MNA: C_m z' + G_m z = B u (stamps: stamp.py)
    model = build_model(circuit)        # LinearModel: x' = M x + N u,  y = Cx x + Du u (dense; methods modal, loop)
    z_dc = dc_solution(mna, u0)         # the .op (capacitors open, inductors short)

The structured method (krylov.py) takes the same partition (``islands``, ``island_transform``,
``algebraic_labels``, ``initial_state``) without forming M; both solve the algebraic block by the one peeling of
peel.py.

MNA (SPICE conventions): unknowns z = [node voltages (ground excluded), branch currents of the voltage sources,
VCVS, inductors and noise sources]; equations C_m z' + G_m z = B u(t). Rows are KCL (sum of the currents
leaving a node = 0) and one branch equation per branch element. The inputs u are ``[1, u_1(t), ..., u_m(t)]``:
column 0 carries every DC value, column i the i-th NoiseSource (its piecewise-linear samples).

Reduction (index 1, physics.md section 6). The capacitors form a graph on the nodes: a node in a capacitor
component that reaches ground is a dynamic variable (its voltage); a capacitor component that does not reach
ground (a floating island such as the feedback capacitor x-sum of an op-amp integrator) keeps the voltages
relative to one reference node as dynamic variables and its common-mode voltage (the reference) is algebraic;
nodes without capacitors are algebraic. Inductor currents are dynamic. With z = T w (T maps the island
coordinates back to node voltages) the capacitance block of the dynamic rows is the grounded Maxwell matrix
C_11 (positive definite), every other row of T^T C_m T is zero. The algebraic rows G_21 w_1 + G_22 w_2 = B_2 u
are solved by a sparse LU of G_22 (a Schur complement); a singular G_22 is a floating node, a loop of ideal
voltage sources or capacitors, or a cutset of inductors and current sources (index > 1): an error naming it.

Element banks (circuit.ElementBank) are read as arrays (``ElementRows``: node numbers once per pattern, values straight
from the bank's arrays), never expanded into element objects; the unknowns, their numbering and every stamp are those
of the expanded elements, in the same order, so the matrices are identical.

This choice of state handles capacitor loops (the RLC cells' CC_i-CK_ij-CC_j loops): the state is the node
voltages of each island, not the individual capacitor voltages, so a loop costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ...circuit import (CCCS, VCCS, VCVS, BehavioralCurrent, Capacitor, Circuit, ClippedVCVS, Comment, ElementBank,
                        Inductor, NoiseSource, Resistor, flatten, ResistorArray, Switch, SwitchModel, VoltageSource,
                        element_types, stated_elements)
from scipy.sparse.csgraph import connected_components
from ...errors import BadInputError
from .peel import check_structure, factor, solve_algebraic
from .result import NGSPICE_HINT
from .stamp import Block, Triplets, stamp_resistors

GROUND = "0"
MAX_DENSE_STATES = 3000   # the dense model: M, its eigenvectors and inverse (complex): about 4 x 16 n^2 bytes, O(n^3)
NODE_ATTRS = {Resistor: ("n_pos", "n_neg"), Capacitor: ("n_pos", "n_neg"), Inductor: ("n_pos", "n_neg"),
               VoltageSource: ("n_pos", "n_neg"), Switch: ("n_pos", "n_neg", "c_pos", "c_neg"),
               VCVS: ("n_pos", "n_neg", "c_pos", "c_neg"), VCCS: ("n_pos", "n_neg", "c_pos", "c_neg"),
               CCCS: ("n_pos", "n_neg"), NoiseSource: ("node", "n_neg")}
_LINEAR = (Resistor, ResistorArray, Capacitor, Inductor, VoltageSource, VCVS, VCCS, CCCS, SwitchModel, Switch, NoiseSource,
           Comment)


def _refuse(e) -> None:
    if isinstance(e, ClippedVCVS):
        raise BadInputError(f"element {e.name} (clipped output stage, +/-{e.v_max_v:g} V) is nonlinear: the linear"
                            f" engine cannot run it exactly; {NGSPICE_HINT}")
    if isinstance(e, BehavioralCurrent):
        raise BadInputError(f"element {e.name} (behavioural current source, such as the op-amp output clamp of "
                            "circuit.opamp.v_out_max_v) is nonlinear: the linear engine cannot run it exactly; remove "
                            f"circuit.opamp.v_out_max_v or {NGSPICE_HINT}")
    name = getattr(e, "name", type(e).__name__)
    raise BadInputError(f"element {name} ({type(e).__name__}) is not a linear element the linear engine"
                        f" knows; {NGSPICE_HINT}")


class ElementRows:
    """Elements in netlist order read as columns: plain elements and the templates of element banks (a bank's
    cells stay arrays: ``strings`` / ``values`` of a field over every element, ``element(i)`` builds one for a
    message). Iterating gives the elements (a bank's expanded, cached in the bank)."""

    def __init__(self) -> None:
        self.segments: list = []     # [list of plain elements] or (bank, template indices)
        self._n = 0

    def add(self, e) -> None:
        if self.segments and type(self.segments[-1]) is list:
            self.segments[-1].append(e)
        else:
            self.segments.append([e])
        self._n += 1

    def add_bank(self, bank: ElementBank, ts: list[int]) -> None:
        self.segments.append((bank, ts))
        self._n += bank.n * len(ts)

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def strings(self, attr: str) -> list:
        """Field attr of every element, a bank's patterns formatted (ElementBank.strings)."""
        return self._listed(attr, ElementBank.strings)

    def _listed(self, attr: str, of_bank) -> list:
        """Field attr of every element in order: the elements' own, a bank's by of_bank(bank, template, attr)."""
        out: list = []
        for seg in self.segments:
            if type(seg) is list:
                out.extend([getattr(e, attr) for e in seg])
            else:
                bank, ts = seg
                out.extend(bank.interleaved([of_bank(bank, t, attr) for t in ts]))
        return out

    def values(self, attr: str) -> np.ndarray:
        parts = []
        for seg in self.segments:
            if type(seg) is list:
                parts.append(np.fromiter((getattr(e, attr) for e in seg), dtype=float, count=len(seg)))
            else:
                bank, ts = seg
                cols = [bank.values(t, attr) for t in ts]
                parts.append(cols[0] if len(cols) == 1 else np.stack(cols, axis=1).ravel())
        return np.concatenate(parts) if parts else np.zeros(0)

    def indices(self, attr: str, table: dict, memo: dict) -> np.ndarray:
        """table[field attr] of every element (-1 where absent: ground), as int64 (n,). A bank's field is looked up
        once per cell for a pattern (memo: per pattern and cell keys, shared by the banks and calls of one assembly:
        ``sum{}`` of the integrators, the leak and the DACs once), once for a constant (a fixed node such as ground)."""
        get = table.get
        parts = []
        for seg in self.segments:
            if type(seg) is list:
                parts.append(np.fromiter((get(getattr(e, attr), -1) for e in seg), dtype=np.int64, count=len(seg)))
                continue
            bank, ts = seg
            cols = []
            for t in ts:
                v = bank.templates[t].get(attr)
                if isinstance(v, str) and "{" not in v:
                    cols.append(np.full(bank.n, get(v, -1), dtype=np.int64))
                    continue
                key = (id(table), bank.keys_digest, v) if isinstance(v, str) else (id(table), id(bank), t, attr)
                hit = memo.get(key)     # (the keys, the indices): the keys compared, not trusted to the digest
                if hit is None or len(hit[0]) != len(bank.keys) or not all(
                        a is b or np.array_equal(a, b) for a, b in zip(hit[0], bank.keys)):
                    hit = memo[key] = (bank.keys, np.fromiter((get(x, -1) for x in bank.strings(t, attr)),
                                                              dtype=np.int64, count=bank.n))
                cols.append(hit[1])
            parts.append(cols[0] if len(cols) == 1 else np.stack(cols, axis=1).ravel())
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def column(self, attr: str) -> list:
        """Field attr of every element as the elements hold it (None kept; ElementBank.column)."""
        return self._listed(attr, ElementBank.column)

    def element(self, i: int):
        for seg in self.segments:
            k = len(seg) if type(seg) is list else seg[0].n * len(seg[1])
            if i < k:
                if type(seg) is list:
                    return seg[i]
                bank, ts = seg
                return bank.element(i // len(ts), ts[i % len(ts)])
            i -= k
        raise IndexError(i)

    def __getitem__(self, i: int):
        return self.element(int(i))

    def __iter__(self):
        for seg in self.segments:
            if type(seg) is list:
                yield from seg
            else:
                bank, ts = seg
                yield from bank.interleaved([bank.template_elements(t) for t in ts])


def by_type(circuit: Circuit) -> dict:
    """The elements bucketed by type in one pass (refusing unknown and nonlinear ones), each bucket an ElementRows
    (a list for crossbars and switch models); key None: every element other than resistors, comments and switch
    models, in netlist order. Element banks are read as arrays (never expanded)."""
    out: dict = {t: ElementRows() for t in _LINEAR}
    out[ResistorArray], out[SwitchModel], out[Comment] = [], [], []
    out[None] = others = ElementRows()
    skip = (Resistor, ResistorArray, Comment, SwitchModel)
    try:
        elements = flatten(stated_elements(circuit), banks=True)   # subcircuits defined in the circuit, expanded
    except ValueError as err:                   # one defined in an external file: only ngspice reads it
        raise BadInputError(f"{err}; {NGSPICE_HINT}") from None
    if any(e.c_wire_farad > 0 for e in elements if type(e) is ResistorArray):
        elements = _expand_wire_capacitance(elements)
    for e in elements:
        t = type(e)
        if t is ElementBank:
            kinds = [tpl.kind for tpl in e.templates]
            for k in set(kinds):
                if k not in out or k in (ResistorArray, SwitchModel, Comment):
                    _refuse(e.element(0, kinds.index(k)))
                out[k].add_bank(e, [i for i, x in enumerate(kinds) if x is k])
            rest = [i for i, x in enumerate(kinds) if x not in skip]
            if rest:
                others.add_bank(e, rest)
            continue
        bucket = out.get(t)
        if bucket is None:
            _refuse(e)
        if type(bucket) is list:
            bucket.append(e)
        else:
            bucket.add(e)
        if t not in skip:
            others.add(e)
    return out


def check_linear(circuit: Circuit) -> None:
    """BadInputError naming the first element that is not a linear element the engine knows (by_type's refusal,
    from the set of element types: no Python pass per element when every type is known)."""
    try:
        elements = flatten(stated_elements(circuit), banks=True)
    except ValueError as err:
        raise BadInputError(f"{err}; {NGSPICE_HINT}") from None
    bad = element_types(elements) - set(_LINEAR)
    if bad:
        _refuse(next(x for x in flatten(elements) if type(x) in bad))


def _expand_wire_capacitance(elements: list):
    """The elements with every crossbar whose wires have capacitance replaced by its lines (their nodes are then
    states of the model); a crossbar on resistive wires stays one element (stamp.py: its port admittance)."""
    for e in elements:
        if isinstance(e, ResistorArray) and e.c_wire_farad > 0:
            yield from e.line_elements()
        else:
            yield e


@dataclass
class MNA:
    """C_m z' + G_m z = B u; labels name each unknown (``node x1``, ``the current of VDAC1``) for error messages."""

    nodes: dict[str, int]
    branches: dict[str, int]
    C: sp.csr_matrix
    G: sp.csr_matrix
    B: sp.csr_matrix
    labels: "Labels"      # a sequence of str, formed when read
    eq_labels: "Labels"
    noise: list[NoiseSource]
    capacitors: ElementRows     # read as columns (n_pos, n_neg, c_farad, ic_v); iterating gives the elements
    inductors: list[Inductor]
    switches: list[tuple[Switch, SwitchModel]]
    blocks: list[Block] = field(default_factory=list)   # dense parts of G_m held apart (assemble(blocks=True))


def assemble(circuit: Circuit, blocks: bool = False) -> MNA:
    """The MNA matrices of a linear circuit (refuses nonlinear elements and non-positive values). blocks: keep
    the crossbars' off-diagonal entries as dense Blocks (``MNA.blocks``; G_m is then G + the blocks), for the
    structured method (stamp.py)."""
    typed = by_type(circuit)
    els = typed[None]  # resistors are stamped apart, vectorised
    models = {m.name: m for m in typed[SwitchModel]}
    res = typed[Resistor]
    r_ohm = res.values("r_ohm")
    names: list[str] = _node_names_in_order(els)
    names.extend(_ungrounded(res, "n_pos"))
    names.extend(_ungrounded(res, "n_neg"))
    arrays = typed[ResistorArray]
    for e in arrays:   # the nodes of the entries present (a crossbar's unused lines are not in the circuit)
        present = e.r_ohm < np.inf    # not +inf (no resistor), in one pass; a NaN entry is refused by the stamp
        names.extend(e.col_nodes[j] for j in np.flatnonzero(present.any(axis=0)))
        names.extend(e.row_nodes[i] for i in np.flatnonzero(present.any(axis=1)))
    first = dict.fromkeys(names)          # first-use order
    first.pop(GROUND, None)
    nodes = dict(zip(first, range(len(first))))

    nn = len(nodes)
    branch_names = _branch_names_in_order(els)
    branches = dict(zip(branch_names, range(nn, nn + len(branch_names))))
    n = nn + len(branches)
    noise = typed[NoiseSource]

    memo: dict = {}

    def idx(items, attr: str) -> np.ndarray:   # node numbers (ground: -1)
        if isinstance(items, ElementRows):
            return items.indices(attr, nodes, memo)
        return np.fromiter((nodes.get(getattr(e, attr), -1) for e in items), dtype=np.int64, count=len(items))

    def values(items, attr: str) -> np.ndarray:
        return items.values(attr)

    def branch_of(items) -> np.ndarray:   # every such element has a branch (by construction)
        return items.indices("name", branches, memo)

    Cm, Gm, Bm = Triplets(), Triplets(), Triplets()
    # resistors and resistor arrays (the bulk of a dense network) stamped in one vectorised step
    dense: list[Block] | None = [] if blocks else None
    big = stamp_resistors(res, idx(res, "n_pos"), idx(res, "n_neg"), r_ohm, arrays, nodes, n, blocks=dense)
    switches = []
    for e in typed[Switch]:
        if e.model not in models:
            raise BadInputError(f"switch {e.name}: model {e.model} is not defined in the circuit")
        m = models[e.model]
        switches.append((e, m))
        r = m.r_on_ohm if e.on else m.r_off_ohm
        if not (r > 0 and np.isfinite(r)):
            raise BadInputError(f"element {e.name}: resistance {r!r} ohm must be positive and finite")
    if switches:   # each in its programmed state: a resistor
        sw = [e for e, _ in switches]
        g = np.array([1.0 / (m.r_on_ohm if e.on else m.r_off_ohm) for e, m in switches])
        Gm.two_terminal(idx(sw, "n_pos"), idx(sw, "n_neg"), g)
    caps = typed[Capacitor]
    c_f = values(caps, "c_farad")
    bad = ~((c_f > 0) & np.isfinite(c_f))
    if bad.any():
        e = caps[int(np.flatnonzero(bad)[0])]
        raise BadInputError(f"capacitor {e.name}: {e.c_farad!r} F must be positive and finite")
    Cm.two_terminal(idx(caps, "n_pos"), idx(caps, "n_neg"), c_f)
    vccs = typed[VCCS]
    if vccs:
        a, b, cp, cn, gm = (idx(vccs, "n_pos"), idx(vccs, "n_neg"), idx(vccs, "c_pos"), idx(vccs, "c_neg"),
                            values(vccs, "gm_siemens"))
        Gm.add(a, cp, gm), Gm.add(a, cn, -gm), Gm.add(b, cp, -gm), Gm.add(b, cn, gm)
    cccs = typed[CCCS]
    k = cccs.indices("sense", branches, memo)
    if (k < 0).any():
        e = cccs.element(int(np.flatnonzero(k < 0)[0]))
        raise BadInputError(f"CCCS {e.name}: sense {e.sense} is not a voltage source of the circuit")
    if cccs:
        gain = values(cccs, "gain")
        Gm.add(idx(cccs, "n_pos"), k, gain), Gm.add(idx(cccs, "n_neg"), k, -gain)
    for kind in (VoltageSource, VCVS, Inductor):   # branch k leaves n_pos, enters n_neg; its row reads v+ - v-
        items = typed[kind]
        if not items:
            continue
        k = branch_of(items)
        Gm.branch(k, idx(items, "n_pos"), idx(items, "n_neg"))
        if kind is VoltageSource:
            Bm.add(k, np.zeros_like(k), values(items, "dc_v"))
        elif kind is VCVS:
            gain = values(items, "gain")
            Gm.add(k, idx(items, "c_pos"), -gain), Gm.add(k, idx(items, "c_neg"), gain)
        else:
            l_h = values(items, "l_henry")
            bad = ~((l_h > 0) & np.isfinite(l_h))
            if bad.any():
                e = items[int(np.flatnonzero(bad)[0])]
                raise BadInputError(f"inductor {e.name}: {e.l_henry!r} H must be positive and finite")
            Cm.add(k, k, -l_h)
    if noise:   # V(node, n_neg) = the sample (n_neg "0": grounded)
        k = branch_of(noise)
        Gm.branch(k, idx(noise, "node"), idx(noise, "n_neg"))
        Bm.add(k, 1 + np.arange(len(noise)), np.ones(len(noise)))
    C = Cm.csr((n, n))
    B = Bm.csr((n, 1 + len(noise)))
    G = big + Gm.csr((n, n))
    node_list, branch_list = list(nodes), list(branches)
    labels = Labels(node_list, branch_list, "node {}", "the current of {}")
    eq_labels = Labels(node_list, branch_list, "KCL at node {}", "the branch equation of {}")
    return MNA(nodes, branches, C, G, B, labels, eq_labels, list(noise), typed[Capacitor], list(typed[Inductor]),
               switches, dense or [])


def _node_names_in_order(els: ElementRows) -> list[str]:
    """The node names of the elements (each element's NODE_ATTRS in turn), in netlist order; a bank's fields that
    are ground left out (ground is no unknown: the order of the others is the same)."""
    names: list[str] = []
    for seg in els.segments:
        if type(seg) is list:
            for e in seg:
                names.extend([getattr(e, attr) for attr in NODE_ATTRS[type(e)]])
        else:
            bank, ts = seg
            names.extend(bank.interleaved([bank.strings(t, a) for t in ts for a in NODE_ATTRS[bank.templates[t].kind]
                                           if not _is_ground(bank.templates[t].get(a))]))
    return names


def _is_ground(v) -> bool:
    return isinstance(v, str) and v == GROUND


def _ungrounded(rows: ElementRows, attr: str) -> list[str]:
    """Field attr of every element, a bank's constant ground fields left out (as _node_names_in_order)."""
    out: list[str] = []
    for seg in rows.segments:
        if type(seg) is list:
            out.extend([getattr(e, attr) for e in seg])
        else:
            bank, ts = seg
            cols = [bank.strings(t, attr) for t in ts if not _is_ground(bank.templates[t].get(attr))]
            if cols:
                out.extend(bank.interleaved(cols))
    return out


_BRANCH_KINDS = (VoltageSource, VCVS, Inductor, NoiseSource)


def _branch_names_in_order(els: ElementRows) -> list[str]:
    """The names of the elements with a branch current (voltage sources, VCVS, inductors, noise sources), in netlist
    order: the branch unknowns."""
    names: list[str] = []
    for seg in els.segments:
        if type(seg) is list:
            names.extend([e.name for e in seg if type(e) in _BRANCH_KINDS])
        else:
            bank, ts = seg
            cols = [bank.strings(t, "name") for t in ts if bank.templates[t].kind in _BRANCH_KINDS]
            if cols:
                names.extend(bank.interleaved(cols))
    return names


def dc_solution(mna: MNA, u0: np.ndarray) -> np.ndarray:
    """z at DC (capacitors open, inductors short: the C_m term vanishes): G_m z = B u0."""
    G = mna.G.tocsc()
    check_structure(G, mna.labels, mna.eq_labels, "the DC operating point")
    z = factor(G, mna.labels, "the DC operating point").solve(mna.B @ u0)
    return z


@dataclass
class LinearModel:
    """x' = M x + N u for the dynamic variables x; outputs y = Cx x + Du u (one row per output name).

    u = [1, u_1(t), ..., u_m(t)]: column 0 the DC sources, column i the i-th noise source. x0: the uic
    initial state. state_labels name each state (``node n1``, ``x1 - sum1`` for a floating island,
    ``the current of LL1``).
    """

    M: np.ndarray
    N: np.ndarray
    Cx: np.ndarray
    Du: np.ndarray
    x0: np.ndarray
    outputs: list[str]
    noise: list[NoiseSource]
    state_labels: list[str]
    mna: MNA
    dyn_index: np.ndarray   # x_i = z[dyn_index[i]] - z[ref_index[i]] (ref_index -1: ground)
    ref_index: np.ndarray

    def state_of(self, z: np.ndarray) -> np.ndarray:
        """The state of an MNA solution z (e.g. the DC operating point, to start a transient from it)."""
        ref = np.where(self.ref_index >= 0, z[np.maximum(self.ref_index, 0)], 0.0)
        return z[self.dyn_index] - ref


def islands(mna: MNA) -> tuple[np.ndarray, dict[int, int]]:
    """Dynamic node indices and, for floating capacitor islands, node -> reference node (its lowest index): the
    components of the capacitor graph on the nodes (ground the last vertex); a component with ground is dynamic
    throughout, one without keeps its lowest node as the island's (algebraic) reference."""
    caps = mna.capacitors
    nn = len(mna.nodes)
    get = mna.nodes.get
    a = np.fromiter((get(x, nn) for x in caps.strings("n_pos")), dtype=np.int64, count=len(caps))
    b = np.fromiter((get(x, nn) for x in caps.strings("n_neg")), dtype=np.int64, count=len(caps))
    graph = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(nn + 1, nn + 1))
    _, label = connected_components(graph, directed=False)
    has_cap = np.zeros(nn + 1, dtype=bool)
    has_cap[a], has_cap[b] = True, True
    members = np.flatnonzero(has_cap[:nn])          # nodes with a capacitor, ascending
    lab = label[members]
    floating = lab != label[nn]
    order = np.lexsort((members, lab))              # by component, then node index
    m_sorted, l_sorted = members[order], lab[order]
    first = np.r_[True, l_sorted[1:] != l_sorted[:-1]]
    ref = m_sorted[np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))] if len(first) else m_sorted
    fl = floating[order]
    keep = ~(fl & first)                            # a floating component's lowest node is its reference
    dyn = np.sort(m_sorted[keep])
    sel = fl & ~first
    ref_of = dict(zip(m_sorted[sel].tolist(), ref[sel].tolist()))
    return dyn.astype(int), ref_of


def island_transform(n: int, ref_of: dict[int, int]) -> sp.csr_matrix:
    """T with z = T w: v_n = w_n + w_ref(n) for the nodes of floating capacitor islands, identity elsewhere."""
    rows = list(range(n)) + list(ref_of)
    cols = list(range(n)) + list(ref_of.values())
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def algebraic_labels(mna: MNA, alg: np.ndarray, ref_of: dict[int, int]) -> tuple["Labels", "Labels"]:
    """Names of the algebraic unknowns and equations for error messages (an island's reference node is its
    common-mode voltage), formed when read."""
    labels = Labels.subset(mna.labels, alg)
    eq = Labels.subset(mna.eq_labels, alg)
    if ref_of:
        inv_nodes = {v: k for k, v in mna.nodes.items()}
        islands: dict[int, list[str]] = {}
        for m, r in ref_of.items():
            islands.setdefault(r, []).append(inv_nodes[m])
        at = np.searchsorted(alg, list(islands))
        for j, i in zip(at.tolist(), islands):
            if j < len(alg) and alg[j] == i:
                labels.overrides[j] = (f"the common-mode voltage of the capacitor island {{{inv_nodes[i]},"
                                       f" {', '.join(islands[i])}}}")
    return labels, eq


class Labels:
    """Names of the MNA unknowns or equations for error messages, formed when one is read (a circuit has 1e6):
    labels[i] is node_text with the i-th node's name for the node unknowns, then branch_text with the branch's name;
    ``subset`` (rows ``index`` of another Labels) and ``overrides`` ({position: text}) for the algebraic block."""

    def __init__(self, nodes: list, branches: list, node_text: str, branch_text: str) -> None:
        self.nodes, self.branches, self.node_text, self.branch_text = nodes, branches, node_text, branch_text
        self.base: Labels | None = None
        self.index: np.ndarray | None = None
        self.overrides: dict[int, str] = {}

    @classmethod
    def subset(cls, base: "Labels", index: np.ndarray) -> "Labels":
        out = cls([], [], "", "")
        out.base, out.index = base, np.asarray(index)
        return out

    def __len__(self) -> int:
        return len(self.index) if self.base is not None else len(self.nodes) + len(self.branches)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i in self.overrides:
            return self.overrides[i]
        if self.base is not None:
            return self.base[int(self.index[i])]
        nn = len(self.nodes)
        return self.node_text.format(self.nodes[i]) if i < nn else self.branch_text.format(self.branches[i - nn])

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def output_rows(mna: MNA, saves: list[str], extra: list[str] = ()) -> tuple[list[str], sp.csr_matrix]:
    """Selection matrix R (outputs x unknowns) for saved vectors ``v(a)``, ``v(a,b)``, ``i(vname)``; all node
    voltages and branch currents when nothing is saved (ngspice's default); then the ``extra`` vectors."""
    if not saves:
        saves = [f"v({k})" for k in mna.nodes] + [f"i({k})" for k in mna.branches]
    saves = list(saves) + list(extra)
    n = mna.G.shape[0]
    lower: dict = {}

    def lookup(table: dict, name: str, which: str):
        """table[name] for a lower-cased name: the exact name first (the usual case: lower-case node names),
        else through a lower-cased copy of the table (built once, when first needed)."""
        got = table.get(name)
        if got is None:
            if which not in lower:
                lower[which] = {k.lower(): v for k, v in table.items()}
            got = lower[which].get(name)
        return got

    I, J, V, names = [], [], [], []
    for r, s in enumerate(saves):
        key = s.strip().lower().replace(" ", "")
        if key.startswith("v(") and key.endswith(")"):
            parts = key[2:-1].split(",")
            for sign, p in zip((1.0, -1.0), parts):
                if p == GROUND:
                    continue
                j = lookup(mna.nodes, p, "nodes")
                if j is None:
                    raise BadInputError(f"saved vector {s}: node {p} is not in the circuit")
                I.append(r), J.append(j), V.append(sign)
        elif key.startswith("i(") and key.endswith(")") and lookup(mna.branches, key[2:-1], "branches") is not None:
            I.append(r), J.append(lookup(mna.branches, key[2:-1], "branches")), V.append(1.0)
        else:
            raise BadInputError(f"saved vector {s}: the linear engine gives v(node), v(a,b) and i(source) only")
        names.append(key)
    return names, sp.csr_matrix((V, (I, J)), shape=(len(saves), n))


def build_model(circuit: Circuit, saves: list[str] | None = None, extra: list[str] = ()) -> LinearModel:
    """Assemble, reduce (index 1) and return the state-space model with its uic initial state; outputs are
    ``saves`` (default: the circuit's saves) followed by ``extra``."""
    mna = assemble(circuit)
    n = mna.G.shape[0]
    dyn_nodes, ref_of = islands(mna)
    ind = np.array([mna.branches[e.name] for e in mna.inductors], dtype=int)
    dyn = np.concatenate([dyn_nodes, ind]).astype(int)
    if len(dyn) > MAX_DENSE_STATES:
        gb = 4 * 16 * len(dyn) ** 2 / 1e9
        raise BadInputError(f"the circuit has {len(dyn)} dynamic states: the dense state-space model would hold about"
                            f" {gb:.2g} GB and take O(n^3) time (limit {MAX_DENSE_STATES} states); noise_mode samples (the"
                            " default) takes the structured method (method krylov) automatically, with or without"
                            f" noise: use it, a smaller circuit, or {NGSPICE_HINT}")
    alg = np.setdiff1d(np.arange(n), dyn)
    T = island_transform(n, ref_of)
    if ref_of:
        Gw = (T.T @ mna.G @ T).tocsr()
        Bw = (T.T @ sp.csr_matrix(mna.B)).tocsr()
    else:   # no floating capacitor island: T = I (skip two products over a d^2-entry matrix)
        Gw, Bw = mna.G.tocsr(), sp.csr_matrix(mna.B)
    C11 = mna.C[dyn][:, dyn].toarray()
    G_alg, G_dyn = Gw[alg], Gw[dyn]     # row blocks, sliced once (the d^2 crossbar entries live in them)
    G22 = G_alg[:, alg]
    labels, eq = algebraic_labels(mna, alg, ref_of)
    inv_nodes = {v: k for k, v in mna.nodes.items()}
    if len(alg):
        X = solve_algebraic(G22, sp.hstack([G_alg[:, dyn], Bw[alg]]), labels, eq)
        Xg, Xb = X[:, :len(dyn)], X[:, len(dyn):]
    else:
        Xg, Xb = sp.csr_matrix((0, len(dyn))), sp.csr_matrix((0, Bw.shape[1]))
    G12 = G_dyn[:, alg]
    S = G_dyn[:, dyn].toarray() - (G12 @ Xg).toarray()
    Bs = (Bw[dyn] - G12 @ Xb).toarray()
    if len(dyn) == 0:
        raise BadInputError("the circuit has no capacitor or inductor: nothing to integrate in time")
    # C_11 is block diagonal (node Maxwell matrix, then -L per inductor): solve with +L, flip those rows
    flip = np.r_[np.ones(len(dyn_nodes)), -np.ones(len(ind))]
    Cp = C11 * flip[:, None]
    diag = np.diag(Cp).copy()
    if np.count_nonzero(Cp - np.diag(diag)) == 0:   # grounded capacitors only: no factorisation
        def csolve(rhs):
            return rhs / (diag[:, None] if rhs.ndim == 2 else diag)
    else:
        cf = sla.cho_factor(Cp)

        def csolve(rhs):
            return sla.cho_solve(cf, rhs)
    M = -csolve(S) * flip[:, None]
    Nm = csolve(np.asarray(Bs)) * flip[:, None]
    names, R = output_rows(mna, circuit.saves if saves is None else saves, extra)
    RT = (R @ T).tocsr()
    Cx = RT[:, dyn].toarray() - (RT[:, alg] @ Xg).toarray()
    Du = (RT[:, alg] @ Xb).toarray()
    x0 = initial_state(circuit, mna, dyn_nodes, csolve)
    state_labels = []
    for i in dyn_nodes:
        state_labels.append(f"node {inv_nodes[i]}" if i not in ref_of else f"{inv_nodes[i]} - {inv_nodes[ref_of[i]]}")
    state_labels += [f"the current of {e.name}" for e in mna.inductors]
    ref_index = np.array([ref_of.get(int(i), -1) for i in dyn], dtype=int)
    return LinearModel(M, Nm, np.asarray(Cx), np.asarray(Du), x0, names, mna.noise, state_labels, mna, dyn, ref_index)


def initial_state(circuit: Circuit, mna: MNA, dyn_nodes: np.ndarray, csolve) -> np.ndarray:
    """uic initial state as ngspice takes it: each capacitor starts at its IC, or at the difference of the
    .ic node voltages (0 where unset); the node state is the charge-conserving combination
    C_11^-1 D^T diag(C) v_C (exact when the ICs are consistent: a capacitor loop with inconsistent ICs shares
    its charge as ngspice's first uic step does). Inductors start at ic_a (0 when unset)."""
    caps = mna.capacitors
    n_pos, n_neg = caps.strings("n_pos"), caps.strings("n_neg")
    c_f, ic = caps.values("c_farad"), caps.column("ic_v")
    if any(v is None for v in ic):
        get = circuit.ic_v.get
        ic = [get(p, 0.0) - get(m, 0.0) if v is None else v for v, p, m in zip(ic, n_pos, n_neg)]
    v = np.array(ic, dtype=float)
    pos = np.full(len(mna.nodes) + 1, -1)            # node index -> position among the dynamic nodes (-1: none)
    pos[dyn_nodes] = np.arange(len(dyn_nodes))
    get, nn = mna.nodes.get, len(mna.nodes)
    ia = pos[np.fromiter((get(x, nn) for x in n_pos), dtype=np.int64, count=len(caps))]
    ib = pos[np.fromiter((get(x, nn) for x in n_neg), dtype=np.int64, count=len(caps))]
    # the charges in the order of the per-capacitor loop (each capacitor's n_pos, then its n_neg): np.add.at adds in
    # the order given, so the sums round as before
    k = np.stack([ia, ib], axis=1).ravel()
    dq = np.stack([c_f * v, (-1.0 * c_f) * v], axis=1).ravel()
    q = np.zeros(len(dyn_nodes))
    np.add.at(q, k[k >= 0], dq[k >= 0])
    x_ind = np.array([0.0 if e.ic_a is None else e.ic_a for e in mna.inductors])
    # csolve inverts the whole (node, inductor) block; the inductor rows of the charge vector are zero
    return np.concatenate([csolve(np.concatenate([q, np.zeros(len(x_ind))]))[:len(q)], x_ind])


def check_programmed_switches(switches: list[tuple[Switch, SwitchModel]], v_ctl: np.ndarray, varies: np.ndarray) -> None:
    """Every switch's control must be a constant (``varies`` False; each method judges that on its own form of
    the model) on its programmed side of the threshold: ON needs v >= VT - VH, OFF v <= VT + VH (else ngspice
    would toggle it). v_ctl: the control voltages V(c_pos, c_neg), in the order of ``switches``."""
    for (sw, m), v, moving in zip(switches, v_ctl, varies):
        if moving:
            raise BadInputError(f"switch {sw.name}: its control V({sw.c_pos},{sw.c_neg}) varies in time (a clocked"
                                f" switch); the linear engine runs programmed switches only; {NGSPICE_HINT}")
        if (sw.on and v < m.vt_v - m.vh_v) or (not sw.on and v > m.vt_v + m.vh_v):
            raise BadInputError(f"switch {sw.name}: programmed {'ON' if sw.on else 'OFF'} but its control is"
                                f" {v:g} V against VT = {m.vt_v:g} V: ngspice would toggle it; fix the control")
