"""The per-element table ``elements.csv`` written beside every netlist: one row per element of the netlist, plus
one row per matrix entry the design asked for but has no element (pruned by threshold, dropped by quantisation).

    info, missing = topology.element_info(design)          # what each element realises (Topology hook)
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

import csv
import io as _io
import math
from dataclasses import dataclass
from pathlib import Path

from .. import io
from ..circuit import (CCCS, VCCS, VCVS, BehavioralCurrent, BehavioralVoltage, Capacitor, Circuit, ClippedVCVS,
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


def element_rows(circuit: Circuit, info: dict[str, ElementInfo], missing: list[MissingElement] = (),
                 applied: str = "") -> list[dict[str, str]]:
    """The table's rows (dicts keyed by COLUMNS, text): every element of ``circuit`` in netlist order (a crossbar's
    entries row-major, as the netlist writes them), then the ``missing`` entries. An element not in ``info`` gets
    the netlist section (its preceding comment) as its role and no nominal value."""
    rows: list[dict[str, str]] = []
    section = ""

    def add(name: str, kind: str, nodes: str, value, unit: str) -> None:
        got = info.get(name)
        rows.append({"name": name, "kind": kind, "nodes": nodes, "realises": got.realises if got else section,
                     "code": "" if got is None or got.code is None else str(int(got.code)),
                     "bits": "" if got is None or got.bits is None else str(int(got.bits)),
                     "nominal": _num(got.nominal) if got else "", "realised": _num(value), "unit": unit,
                     "applied": applied, "status": "present"})

    for e in circuit.elements:
        if isinstance(e, Comment):
            section = e.text
        elif isinstance(e, ResistorArray):
            i, j, r = e.entries()
            for a, b, v in zip(i.tolist(), j.tolist(), r.tolist()):
                add(e.entry_name(a, b), "resistor", f"{e.col_nodes[b]} {e.row_nodes[a]}", v, "ohm")
        elif type(e) in _KINDS:
            kind, attr, unit = _KINDS[type(e)]
            add(e.name, kind, _nodes(e), None if attr is None else getattr(e, attr), unit)
    for m in missing:
        rows.append({"name": m.name, "kind": m.kind, "nodes": m.nodes, "realises": m.realises,
                     "code": "" if m.code is None else str(int(m.code)), "bits": "" if m.bits is None else str(int(m.bits)),
                     "nominal": _num(m.nominal), "realised": "", "unit": m.unit, "applied": applied,
                     "status": m.status})
    return rows


def format_element_table(rows: list[dict[str, str]]) -> str:
    """The rows as CSV text with the header line COLUMNS."""
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_element_table(path: Path, circuit: Circuit, info: dict[str, ElementInfo],
                        missing: list[MissingElement] = (), applied: str = "") -> Path:
    """Write elements.csv (element_rows, format_element_table) atomically; returns the path."""
    io.atomic_write_text(Path(path), format_element_table(element_rows(circuit, info, missing, applied)))
    return Path(path)


def applied_text(notes: dict) -> str:
    """A design's non-ideality notes as one table cell ("r_bits=3; temp_c=85"); empty for a nominal design."""
    return "; ".join(f"{k}={v}" for k, v in (notes or {}).items())
