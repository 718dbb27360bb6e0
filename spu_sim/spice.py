"""The one SPICE writer: a Circuit (spu_sim.circuit) -> standalone, commented ngspice netlist + its noise files.

    text = format_spice(circuit)               # the netlist text
    path = write_circuit(circuit, folder)      # folder/netlist.cir and one noise_<i>.txt per noise source

The netlist runs on its own: ``ngspice -b netlist.cir`` in its folder runs every analysis once and writes
netlist.raw (noise.cir: noise.raw), every plot in ngspice's binary raw format, through the ``.control`` block
at its end (``control_block``: run, then ``write`` each plot, then quit, so batch mode does not run the
analyses a second time). The engines run the same text: ngspice-subprocess as it is (``ngspice -b FILE``,
then it reads ``raw_file_of(text)``), ngspice-shared without the block (``without_control``: it runs the
analyses itself and fetches the vectors from memory). Only numbers (written with ``fmt``: the shortest
round-trip repr, so the netlist holds exactly the designed values) and names checked by
``spu_sim.circuit.check_name`` reach it. An element bank (spu_sim.circuit.ElementBank) is written from its arrays
(``format_bank``): the same lines as its elements, in the same order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import io
from .circuit import (CCCS, EXPR_FUNCS, VCCS, VCVS, BehavioralCurrent, BehavioralVoltage, Capacitor, Circuit,
                      ClippedVCVS, Comment, ElementBank, Expr, Inductor, Instance, Noise, NoiseSource, Op,
                      PulseVoltageSource, Resistor, Param, ResistorArray, Subckt, SubcktFile, Switch, SwitchModel, Tran,
                      VoltageSource, check_name, check_path, stated_elements)

NETLIST_NAME = "netlist.cir"

_PREFIX = {Resistor: "R", ResistorArray: "R", Capacitor: "C", Inductor: "L", VoltageSource: "V", PulseVoltageSource: "V", VCVS: "E",
           ClippedVCVS: "E", VCCS: "G", CCCS: "F", Switch: "S", NoiseSource: "A", BehavioralVoltage: "B",
           BehavioralCurrent: "B", Instance: "X"}


def fmt(x: float) -> str:
    """A float as exact SPICE text: the shortest round-trip repr, integers without a decimal point (a subcircuit
    Param: ``{name}``)."""
    if isinstance(x, Param):
        return "{" + check_name(x.name) + "}"
    x = float(x)
    if not np.isfinite(x):
        raise ValueError(f"non-finite value {x} cannot go into a netlist")
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def format_expr(x: Expr) -> str:
    """A behavioural expression as ngspice B-source text (numbers via fmt, node names checked)."""
    if x.op == "num":
        v = fmt(x.args[0])
        return f"({v})" if v.startswith("-") else v
    if x.op == "v":
        return "V(" + ",".join(check_name(n) for n in x.args) + ")"
    parts = [format_expr(a) for a in x.args]
    if x.op in ("+", "*", "/"):
        return "(" + f" {x.op} ".join(parts) + ")"
    if x.op in EXPR_FUNCS:
        return f"{x.op}(" + ", ".join(parts) + ")"
    raise ValueError(f"{x.op!r} is not an expression operator")


def _names(e) -> None:
    prefix = _PREFIX.get(type(e))
    if prefix is not None and not e.name.upper().startswith(prefix):
        raise ValueError(f"element {e.name!r}: a {type(e).__name__} name must start with {prefix}")
    for attr in ("name", "n_pos", "n_neg", "c_pos", "c_neg", "sense", "model", "control", "node"):
        if hasattr(e, attr):
            check_name(getattr(e, attr))


#: the line of each two-to-four-node element kind from its fields, in this order (format_element takes them from an
#: element, format_bank from a bank's columns: one form per kind)
_LINE_FORMS = {
    Resistor: (("name", "n_pos", "n_neg", "r_ohm", "noisy"),
               lambda a, p, n, r, noisy: f"{a} {p} {n} {fmt(r)}" + ("" if noisy else " noisy=0")),
    Capacitor: (("name", "n_pos", "n_neg", "c_farad", "ic_v"),
                lambda a, p, n, c, ic: f"{a} {p} {n} {fmt(c)}" + ("" if ic is None else f" IC={fmt(ic)}")),
    Inductor: (("name", "n_pos", "n_neg", "l_henry", "ic_a"),
               lambda a, p, n, ind, ic: f"{a} {p} {n} {fmt(ind)}" + ("" if ic is None else f" IC={fmt(ic)}")),
    VoltageSource: (("name", "n_pos", "n_neg", "dc_v", "ac_v"),
                    lambda a, p, n, dc, ac: f"{a} {p} {n} DC {fmt(dc)}" + ("" if ac is None else f" AC {fmt(ac)}")),
    VCVS: (("name", "n_pos", "n_neg", "c_pos", "c_neg", "gain"),
           lambda a, p, n, cp, cn, k: f"{a} {p} {n} {cp} {cn} {fmt(k)}"),
    VCCS: (("name", "n_pos", "n_neg", "c_pos", "c_neg", "gm_siemens"),
           lambda a, p, n, cp, cn, gm: f"{a} {p} {n} {cp} {cn} {fmt(gm)}"),
    CCCS: (("name", "n_pos", "n_neg", "sense", "gain"), lambda a, p, n, v, k: f"{a} {p} {n} {v} {fmt(k)}"),
}
#: the fields that are names (checked by check_name before they reach a netlist)
_NAME_FIELDS = ("name", "n_pos", "n_neg", "c_pos", "c_neg", "sense")


def _array_lines(e: ResistorArray) -> list[str]:
    """One resistor line per entry of a crossbar, row-major (names and nodes checked once per row/column)."""
    if not e.prefix.upper().startswith("R"):
        raise ValueError(f"element {e.prefix!r}: a ResistorArray prefix must start with R")
    check_name(e.prefix)
    rows = [check_name(n) for n in e.row_nodes]
    cols = [check_name(n) for n in e.col_nodes]
    rk = [str(int(k)) for k in e.row_keys]
    ck = [str(int(k)) for k in e.col_keys]
    i, j, r = e.entries()
    tail = "" if e.noisy else " noisy=0"
    p = e.prefix
    return [f"{p}{rk[a]}_{ck[b]} {cols[b]} {rows[a]} {fmt(v)}{tail}" for a, b, v in zip(i.tolist(), j.tolist(), r.tolist())]


def _checked(names: list[str], kind: type | None = None) -> list[str]:
    """The names, each checked (check_name; and, given the element kind, starting with its letter: _names)."""
    for x in names:
        check_name(x)
    if kind is not None:
        prefix = _PREFIX[kind]
        bad = next((x for x in names if not x.upper().startswith(prefix)), None)
        if bad is not None:
            raise ValueError(f"element {bad!r}: a {kind.__name__} name must start with {prefix}")
    return names


def _bank_lines(bank: ElementBank, t: int) -> list[str] | None:
    """The lines of template t of a bank, one per cell, by the kind's _LINE_FORMS from the bank's columns (the names
    checked as _names checks an element's); None: a kind without a line form, written element by element."""
    kind = bank.templates[t].kind
    form = _LINE_FORMS.get(kind)
    if form is None:
        return None
    fields, line = form
    cols = [_checked(bank.strings(t, f), kind if f == "name" else None) if f in _NAME_FIELDS else bank.column(t, f)
            for f in fields]
    return [line(*values) for values in zip(*cols)]


def format_bank(bank: ElementBank) -> list[str]:
    """The lines of a bank's elements, in order (the same text as its expanded elements')."""
    cols = []
    for t in range(len(bank.templates)):
        lines = _bank_lines(bank, t)
        if lines is None:   # element by element (a NoiseSource writes two lines: kept together)
            lines = ["\n".join(format_element(x)) for x in bank.elements()[t::len(bank.templates)]]
        cols.append(lines)
    return "\n".join(bank.interleaved(cols)).split("\n") if cols else []


def format_element(e) -> list[str]:
    """The netlist line(s) of one element (a bank: the lines of its elements)."""
    if isinstance(e, ElementBank):
        return format_bank(e)
    if isinstance(e, Comment):
        return [f"* {e.text}"]
    if isinstance(e, SubcktFile):
        path = check_path(e.path)
        return [f'.include "{path}"'] if e.section is None else [f'.lib "{path}" {check_name(e.section)}']
    if isinstance(e, Subckt):
        head = [f"* {e.comment}"] if e.comment else []
        body = [line for x in e.elements for line in format_element(x)]
        par = "".join(f" {check_name(k)}={fmt(v)}" for k, v in e.params.items())
        return head + [f".subckt {check_name(e.name)} " + " ".join(check_name(p) for p in e.pins)
                       + (f" params:{par}" if par else "")] + body + [f".ends {e.name}"]
    if isinstance(e, Instance):
        _names(e)
        par = "".join(f" {check_name(k)}={fmt(v)}" for k, v in e.params.items())
        return [f"{e.name} " + " ".join(check_name(n) for n in e.nodes) + f" {check_name(e.subckt)}{par}"]
    if isinstance(e, ResistorArray):
        if e.has_wires:   # the lines node by node (ResistorArray doc: the layout)
            return [line for x in e.line_elements() for line in format_element(x)]
        return _array_lines(e)
    _names(e)
    form = _LINE_FORMS.get(type(e))
    if form is not None:
        fields, line = form
        return [line(*(getattr(e, f) for f in fields))]
    if isinstance(e, PulseVoltageSource):
        return [f"{e.name} {e.n_pos} {e.n_neg} PULSE({fmt(e.v1_v)} {fmt(e.v2_v)} {fmt(e.delay_s)} {fmt(e.rise_s)}"
                f" {fmt(e.fall_s)} {fmt(e.width_s)} {fmt(e.period_s)})"]
    if isinstance(e, ClippedVCVS):
        v = fmt(e.v_max_v)
        return [f"{e.name} {e.n_pos} {e.n_neg} TABLE {{V({e.control})}} = (-{v}, -{v}) ({v}, {v})"]
    if isinstance(e, SwitchModel):
        return [f".model {e.name} SW(VT={fmt(e.vt_v)} VH={fmt(e.vh_v)} RON={fmt(e.r_on_ohm)} ROFF={fmt(e.r_off_ohm)})"]
    if isinstance(e, Switch):
        return [f"{e.name} {e.n_pos} {e.n_neg} {e.c_pos} {e.c_neg} {e.model} {'ON' if e.on else 'OFF'}"]
    if isinstance(e, BehavioralVoltage):
        return [f"{e.name} {e.n_pos} {e.n_neg} V = {format_expr(e.expr)}"]
    if isinstance(e, BehavioralCurrent):
        return [f"{e.name} {e.n_pos} {e.n_neg} I = {format_expr(e.expr)}"]
    if isinstance(e, NoiseSource):
        check_name(e.file_name.replace(".", "_"))
        return [f"{e.name} %vd([{e.node} {e.n_neg}]) {e.model}",
                f".model {e.model} filesource (file=\"{e.file_name}\" amploffset=[0] amplscale=[1]"
                f" timeoffset=0 timescale=1 timerelative=false amplstep={'true' if e.held else 'false'})"]
    raise TypeError(f"no SPICE form for {type(e).__name__}")


def _vector(node: str, ref: str | None) -> str:
    return f"v({check_name(node)})" if ref is None else f"v({check_name(node)},{check_name(ref)})"


def format_analyses(circuit: Circuit) -> list[str]:
    """.ic, .temp, .options, .save and the analysis cards."""
    L: list[str] = []
    if circuit.ic_v:
        L.append(".ic " + " ".join(f"v({check_name(n)})={fmt(v)}" for n, v in circuit.ic_v.items()))
    if circuit.temp_c is not None:
        L.append(f".temp {fmt(circuit.temp_c)}")
    for key, value in circuit.options.items():
        L.append(f".options {check_name(key)}={fmt(value)}")
    if circuit.saves:
        for s in circuit.saves:
            check_name(s.replace("(", "_").replace(")", "_").replace(",", "_"))
        L.append(".save " + " ".join(circuit.saves))
    L.extend(f"* {n}" for n in circuit.analysis_notes)
    for a in circuit.analyses:
        if isinstance(a, Op):
            L.append(".op")
        elif isinstance(a, Tran):
            L.append(f".tran {fmt(a.step_s)} {fmt(a.stop_s)} 0 {fmt(a.tmax_s)}" + (" uic" if a.uic else ""))
        elif isinstance(a, Noise):
            L.append(f".noise {_vector(a.output, a.reference)} {check_name(a.source)} dec {int(a.points_per_decade)}"
                     f" {fmt(a.f_start_hz)} {fmt(a.f_stop_hz)}")
        else:
            raise TypeError(f"no SPICE form for analysis {type(a).__name__}")
    return L


def raw_file_name(netlist_name: str) -> str:
    """The raw file a netlist's control block writes: netlist.cir -> netlist.raw."""
    return Path(netlist_name).stem + ".raw"


def plot_names(circuit: Circuit) -> list[str]:
    """ngspice's names of the plots the circuit's analyses create, in creation order: op1, tran1, then two per
    .noise (spectrum, integrated): noise1 ... noise<2K>."""
    names = ["op1"] if circuit.analysis(Op) is not None else []
    names += ["tran1"] if circuit.analysis(Tran) is not None else []
    n_noise = sum(isinstance(a, Noise) for a in circuit.analyses)
    return names + [f"noise{k}" for k in range(1, 2 * n_noise + 1)]


def control_block(circuit: Circuit, raw_name: str) -> list[str]:
    """The ``.control`` block that makes ``ngspice -b FILE`` run every analysis once and write every plot to
    raw_name (binary): ``write`` writes the current plot, so each plot is selected and appended in turn (the
    first write replaces an earlier file). ``quit`` ends batch mode before it would run the analyses again."""
    check_name(raw_name.replace(".", "_"))
    plots = plot_names(circuit)
    if not plots:
        return []
    return [CONTROL_START, "set filetype=binary", "unset appendwrite", "run", f"foreach plot {' '.join(plots)}",
            "  setplot $plot", f"  write {raw_name}", "  set appendwrite", "end", "quit", CONTROL_END]


CONTROL_START, CONTROL_END = ".control", ".endc"


def format_spice(circuit: Circuit, name: str = NETLIST_NAME) -> str:
    """The standalone netlist text of a circuit, to be saved as ``name`` (its control block writes
    raw_file_name(name); the header's last line says how to run it)."""
    raw = raw_file_name(name)
    run = (f"Run: ngspice -b {name} (in this folder) runs every analysis and writes {raw} (ngspice's binary raw"
           f" format; ngspice's load reads it)" if plot_names(circuit) else "Run: ngspice -b " + name)
    L = [f"* {circuit.title}"] + [f"* {h}" for h in circuit.header] + [f"* {run}", ""]
    for e in stated_elements(circuit):
        L.extend(format_element(e))
    L.append("")
    L.extend(format_analyses(circuit))
    L.extend(control_block(circuit, raw))
    L.append(".end")
    return "\n".join(L) + "\n"


def without_control(text: str) -> str:
    """The netlist text without its ``.control`` ... ``.endc`` blocks (what the shared-library engine loads: it
    runs the analyses itself)."""
    out, inside = [], False
    for line in text.splitlines():
        low = line.strip().lower()
        if low.startswith(CONTROL_START):
            inside = True
        elif inside and low.startswith(CONTROL_END):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out) + "\n"


def raw_file_of(text: str) -> str | None:
    """The raw file the netlist's control block (control_block) writes, or None when it has none."""
    inside = False
    for line in text.splitlines():
        low = line.strip().lower()
        if low.startswith(CONTROL_START):
            inside = True
        elif low.startswith(CONTROL_END):
            inside = False
        elif inside and low.startswith("write "):
            return line.split()[1]
    return None


def write_noise_files(folder: Path, circuit: Circuit) -> list[Path]:
    """One XSPICE filesource text per noise source: one row per sample, time in s then the value in volts.

    One filesource element per output, not one element with d outputs: ngspice 39's operating point fails
    to converge with a single filesource of 32 or more outputs (measured), while d single-output elements
    are fine at d = 64.
    """
    paths = []
    for src in circuit.noise_sources:
        path = Path(folder) / src.file_name
        t = np.arange(src.samples_v.shape[0]) * src.dt_s
        rows = np.column_stack([t, src.samples_v]).ravel().tolist()
        with open(path, "w") as fh:   # the text np.savetxt(fmt="%.10e") writes, formatted in one C-level call
            fh.write(("%.10e %.10e\n" * (len(rows) // 2)) % tuple(rows))
        paths.append(path)
    return paths


def write_circuit(circuit: Circuit, folder: Path, name: str = NETLIST_NAME) -> Path:
    """folder/netlist.cir plus the noise files it reads; returns the netlist path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    io.atomic_write_text(path, format_spice(circuit, name))
    write_noise_files(folder, circuit)
    return path


def netlist_in(circuit: Circuit, run_dir: Path) -> Path:
    """run_dir/netlist.cir (absolute), written from the circuit when the pipeline has not written it yet."""
    path = Path(run_dir).resolve() / NETLIST_NAME
    if not path.is_file():
        write_circuit(circuit, path.parent)
    return path
