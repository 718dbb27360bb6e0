"""The per-element table ``elements.csv`` written beside every netlist: one row per element of the netlist, plus
one row per matrix entry the design asked for but has no element (pruned by threshold, dropped by quantisation).

    info, missing = topology.element_info(design)          # what each element realises (Topology hook):
                                                           # {name: ElementInfo, crossbar prefix: ArrayInfo}
    write_element_table(folder / ELEMENTS_NAME, circuit, info, missing, applied)

Columns (values SI, in ``unit``):

    name        the element's netlist name (R3_1, CF2, VDAC1, ...)
    kind        resistor, capacitor, inductor, voltage source, pulse source, VCVS, clipped VCVS, VCCS, CCCS,
                switch, noise DAC, behavioural source
    nodes       its nodes as in the netlist (controlling nodes or sense source after "ctrl")
    realises    the matrix entry or role (A[i,j] and b[i] 1-based, like the element and node names; otherwise the
                netlist section it belongs to)
    code, bits  the programmed integer code and the word length of its quantiser (empty: not quantised)
    nominal     the designed value before quantisation, tolerance and temperature (empty: not known)
    realised    the value in the netlist: quantised, with its tolerance draw and at the configured temperature
    unit        ohm, F, H, V, V/V, A/A, S
    applied     the non-idealities applied to the design (design.json's "nonideal" notes; empty: nominal)
    status      present (an element of the netlist), pruned (below prune_below_relative: no element) or dropped
                (rounded to code 0 by quantisation: no element)

Every topology feeds the same function; a topology without an ``element_info`` hook gets rows with the realised
values and the netlist section as the role.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io
from ..circuit import (CCCS, VCCS, VCVS, BehavioralCurrent, BehavioralVoltage, Capacitor, Circuit, ClippedVCVS, Instance,
                       Comment, Inductor, NoiseSource, PulseVoltageSource, Resistor, ResistorArray, Switch,
                       VoltageSource)

ELEMENTS_NAME = "elements.csv"
COLUMNS = ("name", "kind", "nodes", "realises", "code", "bits", "nominal", "realised", "unit", "applied", "status")

#: element class -> (kind, value attribute, unit)
_KINDS = {Resistor: ("resistor", "r_ohm", "ohm"), Capacitor: ("capacitor", "c_farad", "F"),
          Inductor: ("inductor", "l_henry", "H"), VoltageSource: ("voltage source", "dc_v", "V"),
          PulseVoltageSource: ("pulse source", "v2_v", "V"), VCVS: ("VCVS", "gain", "V/V"),
          ClippedVCVS: ("clipped VCVS", "v_max_v", "V"), VCCS: ("VCCS", "gm_siemens", "S"),
          CCCS: ("CCCS", "gain", "A/A"), Switch: ("switch", None, ""), NoiseSource: ("noise DAC", None, ""),
          BehavioralVoltage: ("behavioural source", None, ""), BehavioralCurrent: ("behavioural source", None, "")}


@dataclass(frozen=True)
class ElementInfo:
    """What one element realises: ``realises`` (A[i,j], b[i] or a role), its designed value ``nominal`` (NaN:
    not known) and its programmed ``code`` of ``bits`` bits (None: not quantised)."""

    realises: str
    nominal: float = math.nan
    code: int | None = None
    bits: int | None = None


@dataclass(frozen=True)
class ArrayInfo:
    """What the entries of a crossbar (circuit.ResistorArray, keyed by its prefix in the info dict) realise:
    ``realises`` a format string of the entry's row and column keys {i}, {j} (1-based, as in its name), ``nominal``
    and ``code`` arrays indexed [i - 1, j - 1] (None: not known / not quantised), ``bits`` the quantiser's."""

    realises: str
    nominal: np.ndarray | None = None
    code: np.ndarray | None = None
    bits: int | None = None


@dataclass(frozen=True)
class MissingElement:
    """A matrix entry the design asked for that has no element: status ``pruned`` or ``dropped`` (see module doc)."""

    name: str
    kind: str
    nodes: str
    realises: str
    nominal: float
    unit: str
    status: str
    code: int | None = None
    bits: int | None = None


def _nodes(e) -> str:
    if isinstance(e, NoiseSource):
        return f"{e.node} {e.n_neg}"
    if isinstance(e, ClippedVCVS):
        return f"{e.n_pos} {e.n_neg} ctrl {e.control}"
    out = f"{e.n_pos} {e.n_neg}"
    if hasattr(e, "c_pos"):
        out += f" ctrl {e.c_pos} {e.c_neg}"
    if hasattr(e, "sense"):
        out += f" ctrl {e.sense}"
    return out


def _num(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))


def _q(text: str) -> str:
    """A CSV field: quoted (quotes doubled) when it holds a comma, quote or newline."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def _line(*fields: str) -> str:
    return ",".join(_q(f) for f in fields)


def element_lines(circuit: Circuit, info: dict, missing: list[MissingElement] = (), applied: str = "") -> list[str]:
    """The table's CSV lines (no header): every element of ``circuit`` in netlist order (a crossbar's entries
    row-major, as the netlist writes them), then the ``missing`` entries. ``info`` maps element names to ElementInfo
    and crossbar prefixes to ArrayInfo; an element in neither gets the netlist section (its preceding comment) as
    its role and no nominal value. A crossbar's lines are formatted in one pass (d = 400: 160,000 lines in about
    the time of the netlist's own)."""
    out: list[str] = []
    section = ""

    def code_text(c) -> str:
        return "" if c is None else str(int(c))

    for e in circuit.elements:
        if isinstance(e, Comment):
            section = e.text
        elif isinstance(e, ResistorArray):
            i, j, r = e.entries()
            rk, ck = e.row_keys[i], e.col_keys[j]
            got = info.get(e.prefix)
            got = got if isinstance(got, ArrayInfo) else None
            tail = "," + _q(applied) + ",present"
            fmt = _q(got.realises) if got is not None else None
            what = [fmt.format(i=a, j=b) for a, b in zip(rk.tolist(), ck.tolist())] if got else [_q(section)] * len(r)
            nominal = ([repr(v) for v in got.nominal[rk - 1, ck - 1].tolist()]
                       if got is not None and got.nominal is not None else [""] * len(r))
            code = ([f"{c},{got.bits}" for c in got.code[rk - 1, ck - 1].tolist()]
                    if got is not None and got.code is not None else [","] * len(r))
            p, rows_n, cols_n = e.prefix, e.row_nodes, e.col_nodes
            out.extend(f"{p}{a}_{b},resistor,{cols_n[y]} {rows_n[x]},{w},{c},{n},{v!r},ohm{tail}"
                       for a, b, x, y, v, w, n, c in zip(rk.tolist(), ck.tolist(), i.tolist(), j.tolist(), r.tolist(),
                                                         what, nominal, code))
        elif isinstance(e, Instance):     # an op-amp: an instance of a subcircuit (its elements are local to it)
            out.append(_line(e.name, f"subcircuit {e.subckt}", " ".join(e.nodes), section, "", "", "", "", "",
                             applied, "present"))
        elif type(e) in _KINDS:
            kind, attr, unit = _KINDS[type(e)]
            got = info.get(e.name)
            got = got if isinstance(got, ElementInfo) else None
            out.append(_line(e.name, kind, _nodes(e), got.realises if got else section,
                             code_text(got.code) if got else "", code_text(got.bits) if got else "",
                             _num(got.nominal) if got else "", _num(None if attr is None else getattr(e, attr)), unit,
                             applied, "present"))
    out.extend(_line(m.name, m.kind, m.nodes, m.realises, code_text(m.code), code_text(m.bits), _num(m.nominal), "",
                     m.unit, applied, m.status) for m in missing)
    return out


def format_element_table(lines: list[str]) -> str:
    """The CSV text: the header line COLUMNS, then the lines of element_lines."""
    return "\n".join([",".join(COLUMNS), *lines]) + "\n"


def write_element_table(path: Path, circuit: Circuit, info: dict, missing: list[MissingElement] = (),
                        applied: str = "") -> Path:
    """Write elements.csv (element_lines, format_element_table) atomically; returns the path."""
    io.atomic_write_text(Path(path), format_element_table(element_lines(circuit, info, missing, applied)))
    return Path(path)


def applied_text(notes: dict) -> str:
    """A design's non-ideality notes as one table cell ("r_bits=3; temp_c=85"); empty for a nominal design."""
    return "; ".join(f"{k}={v}" for k, v in (notes or {}).items())
