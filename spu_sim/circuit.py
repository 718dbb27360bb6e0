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
    ResistorArray(prefix, row_nodes, col_nodes, r_ohm, row_keys, col_keys, noisy=True)
                                                           a programmable crossbar: resistor
                                                           <prefix><row_keys[i]>_<col_keys[j]> from col_nodes[j]
                                                           to row_nodes[i] for each finite r_ohm[i, j] (inf:
                                                           no resistor); one element for up to millions of
                                                           resistors (written one line each, row-major)
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
                                                           at t = k dt_s, linearly interpolated (first-order
                                                           hold), or held for [k dt_s, (k+1) dt_s) (held=True)
    BehavioralVoltage(name, n_pos, n_neg, expr)            B source: V(n_pos, n_neg) = expr (nonlinear)
    BehavioralCurrent(name, n_pos, n_neg, expr)            B source: current expr from n_pos to n_neg
    Comment(text)                                          a comment line in the netlist (readability)

Behavioural expressions are trees (``Expr``) built with ``num``, ``volt``, ``add``, ``mul``, ``div`` and
``call`` (functions in EXPR_FUNCS): only numbers and checked node names reach the netlist, never text.

Analyses: Op(), Tran(step_s, stop_s, tmax_s, uic=True), Noise(output, reference, source, points_per_decade,
f_start_hz, f_stop_hz) -- one ``.noise`` line per output pair.

Names a user asks for (simulation.save_nodes) are checked against the circuit's own: ``node_names(circuit)``,
``saved_vectors(circuit, wanted)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Union

import numpy as np

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
    """

    prefix: str
    row_nodes: tuple
    col_nodes: tuple
    r_ohm: np.ndarray
    row_keys: np.ndarray | None = None
    col_keys: np.ndarray | None = None
    noisy: bool = True

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

    @property
    def name(self) -> str:
        return f"{self.prefix}<i>_<j>"

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, r_ohm) of the resistors present (finite or non-physical entries; inf = absent), row-major."""
        present = ~np.isposinf(self.r_ohm)
        i, j = np.nonzero(present)
        return i, j, self.r_ohm[i, j]

    def first_non_physical(self) -> tuple[str, float] | None:
        """(name, value) of the first entry, row-major, that is not finite and > 0 (inf = absent is fine), or None;
        one pass over the array when every entry is physical."""
        if (self.r_ohm > 0).all():
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


@dataclass(frozen=True, eq=False)
class NoiseSource:
    """A noise DAC: V(node) = samples_v[k] at t = k dt_s, linearly interpolated in between (ground referenced).

    samples_v is part of the description: the ngspice engines write it to ``file_name`` (an XSPICE
    filesource) and the linear engine integrates the same piecewise-linear input exactly.
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


Element = Union[Resistor, ResistorArray, Capacitor, Inductor, VoltageSource, PulseVoltageSource, VCVS, ClippedVCVS, VCCS, CCCS,
                SwitchModel, Switch, NoiseSource, BehavioralVoltage, BehavioralCurrent, Comment]


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
class Circuit:
    """A whole circuit: header comments, elements in netlist order, initial node voltages, options, the
    vectors to save and the analyses.

    readout_nodes: the nodes whose voltages the readout turns into the problem's variables, in order.
    analysis_notes: comment lines written with the analyses (e.g. why an analysis is absent).
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

    def of_type(self, kind: type) -> list:
        """The elements of one type, in order."""
        return [e for e in self.elements if isinstance(e, kind)]

    @property
    def noise_sources(self) -> list[NoiseSource]:
        return self.of_type(NoiseSource)

    def analysis(self, kind: type):
        """The first analysis of that type, or None."""
        return next((a for a in self.analyses if isinstance(a, kind)), None)


_NODE_ATTRS = ("n_pos", "n_neg", "c_pos", "c_neg", "node")


def node_names(circuit: Circuit) -> list[str]:
    """Every node the elements connect (ground ``0`` included), in first-use order."""
    seen: dict[str, None] = {}
    for e in circuit.elements:
        if isinstance(e, ResistorArray):
            seen.update(dict.fromkeys(e.row_nodes))
            seen.update(dict.fromkeys(e.col_nodes))
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
    sources = {e.name.lower(): e.name for e in circuit.elements if isinstance(e, (VoltageSource, PulseVoltageSource))}
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


def check_physical(circuit: Circuit) -> None:
    """Every resistor, capacitor and inductor finite and > 0, every other value and initial condition finite,
    every noise sample finite: else a DesignError naming the element (the knobs that usually cause it: tolerance,
    temperature, quantisation, or a problem whose scale the element ranges cannot reach)."""
    isfinite = math.isfinite   # scalars: a tenth of np.isfinite's call cost, and a circuit has 1e4 elements
    why = ("; check circuit.tolerance / circuit.temperature (they can drive a value below 0) and the problem's "
           "scale against the element ranges")
    for e in circuit.elements:
        if isinstance(e, ResistorArray):
            bad = e.first_non_physical()
            if bad is not None:
                raise DesignError(f"element {bad[0]}: R = {bad[1]:.4g} ohm is not physical (must be finite and > 0){why}")
            continue
        rule = _POSITIVE.get(type(e))
        if rule is not None:
            attr, sym, unit = rule
            v = getattr(e, attr)
            if not (isfinite(v) and v > 0):
                raise DesignError(f"element {e.name}: {sym} = {v:.4g} {unit} is not physical (must be finite and > 0){why}")
            ic = getattr(e, "ic_v", None) if sym != "L" else e.ic_a
            if ic is not None and not isfinite(ic):
                raise DesignError(f"element {e.name}: initial condition {ic} is not finite{why}")
        for attr in _FINITE.get(type(e), ()):
            v = getattr(e, attr)
            if v is not None and not isfinite(v):
                raise DesignError(f"element {e.name}: {attr} = {v} is not finite{why}")
        if isinstance(e, NoiseSource) and not np.all(np.isfinite(e.samples_v)):
            raise DesignError(f"element {e.name}: noise samples are not finite{why}")
    for node, v in circuit.ic_v.items():
        if not np.isfinite(v):
            raise DesignError(f"initial condition of node {node}: {v} is not finite{why}")
