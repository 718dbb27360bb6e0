"""A transistor-level (or any user-written) op-amp as a SPICE subcircuit: ``circuit.opamp.model: subckt`` (the
designer's own ``.subckt``) and, through the registry hook ``shipped_cell``, the op-amp cells spu-sim ships.

    cell = subckt_from_config(oc)          # a SubcktOpamp; scans the file first (scan_subckt_file)
    cell.netlist_elements()                # the include (.include / .lib FILE CORNER) and the +/- supply sources
    cell.instance("I1", "sum1", "x1")      # one X line: inp at ground, inn, out, the supplies

Nothing of the user's file is interpreted beyond the include: the netlist says ``.include "FILE"`` (or
``.lib "FILE" CORNER``) and instantiates the subcircuit by name for every integrator, summer and inverter. Before
any engine runs, ``scan_subckt_file`` reads the file as text (and the files it includes) only to refuse what would
make ngspice fail or do something else: a missing file, a ``.control`` block (it would run its own commands inside
the run), a missing subcircuit, a pin the config names that the ``.subckt`` line does not have, a pin of the
``.subckt`` line the config does not connect, a missing ``.lib`` section (corner). Each is a BadInputError naming
the config key.

Names: each op-amp is ``X<tag>`` (tags as the topology names its op-amps: I<i>, N<j>, S<k>, ...); the supplies are
``VDDA`` (node ``vdda`` at +supply_v) and ``VSSA`` (node ``vssa`` at -supply_v). Everything inside the subcircuit is
local to it (ngspice prefixes it with the instance name), so a ``VOS1`` inside the user's file cannot clash with the
netlist's own ``VOS<k>``.

Shipped cells (spu_sim.parts.opamp_cells): the netlist includes the process-model files the cell's spec names
(``.include`` / ``.lib FILE SECTION``, only the FET files), then the cell's own file; the supplies are the cell's
(``circuit.opamp.supply_v`` defaults to it: 0.9 V for the sky130 cells, 1.65 V for gf180_miller; another value is
exit 2). A missing PDK is exit 2 naming ``pip install 'spu-sim[pdk]'``.

Corner (``circuit.opamp.corner``): for a shipped cell, the corner of its process models (tt, ff, ss, fs, sf; tt when
not given); for a user subcircuit,
the section of ``subckt.file`` itself: with a corner the netlist says ``.lib "FILE" CORNER`` (the file must hold
``.lib CORNER`` ... ``.endl``), without it ``.include "FILE"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..circuit import Comment, Instance, SubcktFile, VoltageSource, check_path
from ..errors import BadInputError, ConfigError
from .opamp_cells import CELL_NAMES, cell_spec

#: the roles of an op-amp's pins, in the order of circuit.opamp.subckt.pins
PIN_ROLES: tuple[str, ...] = ("inp", "inn", "out", "vdd", "vss")
#: the supply nodes every subcircuit op-amp connects to
SUPPLY_NODES = {"vdd": "vdda", "vss": "vssa"}

#: the shipped transistor-level op-amp cells (names for circuit.opamp.model); the registry of
#: spu_sim/parts/opamp_cells/ plugs in here (``shipped_cell``)
SHIPPED_OPAMP_CELLS: tuple = CELL_NAMES

#: the largest file the pre-flight scan reads (a process library is larger: it is included, not scanned)
SCAN_MAX_BYTES = 20_000_000
#: how deep the scan follows .include / .lib files of the user's file
SCAN_MAX_DEPTH = 4


@dataclass(frozen=True)
class SubcktSource:
    """Where a subcircuit op-amp is defined: ``file`` (absolute path), subcircuit ``name``, ``pins`` {role: pin name}
    for every role of PIN_ROLES, and the ``.lib`` sections (process corners) it offers (() = included whole)."""

    file: str
    name: str
    pins: dict
    corners: tuple = ()
    supply_v: float | None = None     # a shipped cell's supplies (None: circuit.opamp.supply_v)


def shipped_cell(name: str) -> SubcktSource:
    """The shipped op-amp cell ``name`` (circuit.opamp.model) as a SubcktSource: its .subckt file, subcircuit name,
    pins, corners (the first is the default) and supplies, its process models present (BadInputError naming
    `pip install 'spu-sim[pdk]'` otherwise; the model files themselves come from the cell registry,
    spu_sim/parts/opamp_cells, in subckt_from_config); an unknown name is a ConfigError naming the models there are."""
    if name in SHIPPED_OPAMP_CELLS:
        spec = cell_spec(name)
        return SubcktSource(str(spec.file), spec.subckt, {r: r for r in PIN_ROLES}, spec.corners, spec.supply_v)
    raise ConfigError(f"circuit.opamp.model: {name!r} is not available (models: ideal, macro, subckt, shipped cells "
                      f"{', '.join(SHIPPED_OPAMP_CELLS)}); use model: subckt with circuit.opamp.subckt for your own "
                      "op-amp")


@dataclass(frozen=True)
class SubcktOpamp:
    """One subcircuit op-amp model of a design: subcircuit ``name`` in ``file`` (absolute), included whole or as
    ``.lib`` section ``section``; ``pin_roles`` the role of each pin of its ``.subckt`` line, in that line's order;
    supplies +/- supply_v; ``label`` the circuit.opamp.model it came from (subckt or a cell name)."""

    name: str
    file: str
    pin_roles: tuple
    supply_v: float
    section: str | None = None
    label: str = "subckt"
    models: tuple = ()              # a shipped cell's process-model files, (path, .lib section or None), included first
    corner: str | None = None       # a shipped cell's process corner

    def netlist_elements(self) -> list:
        """The include lines (a shipped cell's process models first) and the two supply sources (once per netlist,
        before the op-amps)."""
        how = f".lib section {self.section}" if self.section else ".include"
        models = ([Comment(f"process models of {self.label}, corner {self.corner} (only the FET files it needs)")]
                  + [SubcktFile(check_path(str(p), "circuit.opamp.model"), sec) for p, sec in self.models]
                  if self.models else [])
        return models + [Comment(f"op-amp subcircuit {self.name} ({self.label}, {how} of {Path(self.file).name}); "
                                 f"supplies +/-{self.supply_v:.6g} V on nodes vdda / vssa"),
                SubcktFile(check_path(self.file, "circuit.opamp.subckt.file"), self.section),
                VoltageSource("VDDA", SUPPLY_NODES["vdd"], "0", float(self.supply_v)),
                VoltageSource("VSSA", SUPPLY_NODES["vss"], "0", -float(self.supply_v))]

    def instance(self, tag: str, inn: str, out: str, inp: str = "0") -> list:
        """Op-amp ``tag``: X<tag> with its inverting input on ``inn``, output on ``out``, non-inverting input on
        ``inp`` and the supplies on vdda / vssa."""
        node = {"inp": inp, "inn": inn, "out": out, **SUPPLY_NODES}
        return [Instance(f"X{tag}", self.name, tuple(node[r] for r in self.pin_roles))]

    def header_line(self) -> str:
        how = (f", .lib section {self.section}" if self.section else "") + (
            f", process corner {self.corner}" if self.corner else "")
        return (f"Op-amp: subcircuit {self.name} from {self.file}{how} (model {self.label}), supplies "
                f"+/-{self.supply_v:.6g} V")

def resolve_file(file: str, base_dir: Path | None = None) -> str:
    """subckt.file as an absolute path: relative paths against base_dir (the config file's folder; None: the current
    folder)."""
    p = Path(file).expanduser()
    if not p.is_absolute():
        p = (Path(base_dir) if base_dir is not None else Path.cwd()) / p
    return str(p.resolve())


def subckt_from_config(oc) -> SubcktOpamp:
    """The SubcktOpamp of a ``circuit.opamp`` section whose model is subckt or a shipped cell, its file scanned
    (scan_subckt_file) so every problem with it is a BadInputError before any engine runs."""
    corner = oc.corner
    if oc.model == "subckt":
        sc = oc.subckt
        path = sc.file          # absolute: resolved at config load (spu_sim.parts.config.SubcktConfig)
        src = SubcktSource(path, sc.name, sc.pins.model_dump(), ())
        key, follow = "circuit.opamp.subckt", True
    else:
        src = shipped_cell(oc.model)
        key, follow = f"circuit.opamp.model ({oc.model})", False     # a shipped cell's includes are the process's
        if src.corners and corner is not None and corner not in src.corners:
            raise BadInputError(f"circuit.opamp.corner: {corner!r} is not a corner of cell {oc.model} (corners: "
                                f"{', '.join(src.corners)}); choose one of them")
        if oc.supply_v != src.supply_v:
            raise BadInputError(f"circuit.opamp.supply_v: cell {oc.model} is designed for +/-{src.supply_v:g} V "
                                f"(got {oc.supply_v:g}); remove supply_v or set it to {src.supply_v:g}")
        spec = cell_spec(oc.model)
        corner = corner or spec.default_corner
        roles = scan_subckt_file(src.file, src.name, src.pins, key, None, follow)
        return SubcktOpamp(src.name, src.file, roles, float(src.supply_v), None, oc.model,
                           models=tuple((str(p), sec) for p, sec in spec.model_files(corner)), corner=corner)
    roles = scan_subckt_file(src.file, src.name, src.pins, key, corner, follow)
    return SubcktOpamp(src.name, src.file, roles, float(oc.supply_v), corner, oc.model)


# ---------------------------------------------------------------- the pre-flight scan

_INCLUDE = re.compile(r"^\.(include|inc|lib)\s+(\"[^\"]*\"|'[^']*'|\S+)(?:\s+(\S+))?", re.IGNORECASE)


def _cards(path: Path, key: str) -> list[tuple[int, str]]:
    """(line number, card) of a SPICE file: continuation lines (+) joined, comments (* and ; or $ tails) dropped."""
    try:
        size = path.stat().st_size
    except OSError:
        raise BadInputError(f"{key}.file: {str(path)!r} not found (paths are relative to the config file)") from None
    if not path.is_file():
        raise BadInputError(f"{key}.file: {str(path)!r} is not a file; give the SPICE file that holds the .subckt")
    if size > SCAN_MAX_BYTES:
        raise BadInputError(f"{key}.file: {path.name} is {size / 1e6:.3g} MB, more than the {SCAN_MAX_BYTES / 1e6:g} MB "
                            "an op-amp file may hold; put the op-amp in its own file and .include the process models")
    text = path.read_bytes().decode("utf-8", errors="replace")
    cards: list[tuple[int, str]] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"\s[;$]", raw, maxsplit=1)[0].strip()
        if not line or line.startswith("*"):
            continue
        if line.startswith("+") and cards:
            cards[-1] = (cards[-1][0], cards[-1][1] + " " + line[1:].strip())
        else:
            cards.append((n, line))
    return cards


def scan_subckt_file(file: str, name: str, pins: dict, key: str, section: str | None = None,
                     follow: bool = True) -> tuple[str, ...]:
    """The roles (PIN_ROLES) of the pins of ``.subckt name`` in its line's order, after checking the file (module
    doc); ``pins`` {role: pin name}; ``key`` the config key the messages name; ``section`` the .lib section the netlist
    will include (None: the whole file). follow: also scan the files it .include's / .lib's (relative to the including
    file; up to SCAN_MAX_DEPTH deep, none larger than SCAN_MAX_BYTES) for the subcircuit and any .control block."""
    path = Path(file)
    cards = _cards(path, key)
    if section is not None:
        sections = [c.split()[1] for _, c in cards if re.match(r"^\.lib\s+\S+\s*$", c, re.IGNORECASE)]
        if section.lower() not in {s.lower() for s in sections}:
            raise BadInputError(f"circuit.opamp.corner: {section!r} is not a .lib section of {path.name} (sections: "
                                f"{', '.join(sections) or 'none'}); give a section the file defines, or remove corner to "
                                ".include the whole file")
    found: dict[str, tuple[str, str, list[str]]] = {}    # lower-case name -> (name, where, pins)
    _scan(path, cards, key, found, 0 if follow else SCAN_MAX_DEPTH, set())
    sub = found.get(name.lower())
    if sub is None:
        some = ", ".join(v[0] for v in list(found.values())[:8]) or "none"
        raise BadInputError(f"{key}.name: {path.name} defines no subcircuit {name!r} (it defines: {some}); give the "
                            "name of its .subckt line")
    _, where, line_pins = sub
    low = [p.lower() for p in line_pins]
    for role in PIN_ROLES:
        pin = str(pins[role])
        if pin.lower() not in low:
            raise BadInputError(f"{key}.pins.{role}: {pin!r} is not a pin of subcircuit {name} ({where}: pins "
                                f"{' '.join(line_pins) or 'none'}); name one of its pins")
    by_pin = {str(pins[r]).lower(): r for r in PIN_ROLES}
    extra = [p for p in line_pins if p.lower() not in by_pin]
    if extra or len(line_pins) != len(PIN_ROLES):
        raise BadInputError(f"{key}.pins: subcircuit {name} has {len(line_pins)} pins ({' '.join(line_pins)}) and the "
                            f"op-amp connects 5 (inp, inn, out, vdd, vss); pin {(extra or line_pins)[0]} has no role: "
                            "give the op-amp a .subckt line of exactly these five pins (wrap it in one if needed)")
    return tuple(by_pin[p] for p in low)


def _scan(path: Path, cards: list, key: str, found: dict, depth: int, seen: set) -> None:
    seen.add(path)
    for n, card in cards:
        low = card.lower()
        if low.startswith(".control") or low.startswith(".endc"):
            raise BadInputError(f"{key}.file: {path.name} line {n} holds a .control block, which would run its own "
                                "commands inside every simulation; an op-amp file may hold only subcircuits and models "
                                "(remove the block)")
        if low.startswith(".subckt"):
            tok = card.split()
            if len(tok) < 2:
                continue
            pins = []
            for t in tok[2:]:
                if "=" in t or t.lower().startswith("params:"):
                    break
                pins.append(t)
            found.setdefault(tok[1].lower(), (tok[1], f"{path.name} line {n}", pins))
        m = _INCLUDE.match(card)
        if m and depth < SCAN_MAX_DEPTH:
            target = m.group(2).strip("\"'")
            if m.group(1).lower() == "lib" and m.group(3) is None and not Path(target).suffix:
                continue                       # a section header ".lib NAME", not an include
            inc = Path(target).expanduser()
            inc = inc if inc.is_absolute() else path.parent / inc
            if inc in seen or not inc.is_file() or inc.stat().st_size > SCAN_MAX_BYTES:
                continue                       # a process library is ngspice's to read
            _scan(inc, _cards(inc, key), key, found, depth + 1, seen)
