"""The op-amp: its model parameters and the one function that instantiates it in a netlist.

Every non-ideal op-amp of every topology is made by ``opamp_elements`` (integrators, inverters and summers of
spu_sim.parts.amplifiers call it), with the parameters of one ``OpampModel`` per design, built from the
``circuit.opamp`` section by ``model_fields``; an ideal op-amp (``model: ideal``) is a nullor, one instance X<t> of
``.subckt SPU_OPAMP_IDEAL inp inn out`` (``ideal_subckt``, ``ideal_opamp``; below). A change to the op-amp (its noise,
output resistance, a user subcircuit) lands here.

Ideal op-amp (tag ``<t>``), the exact nullor in three SPICE elements, written once per netlist:

    .subckt SPU_OPAMP_IDEAL inp inn out
    VN  inp inn DC 0         the nullator's constraint V(inn) = V(inp); its branch current I is the norator's
    FN  inn out VN 1         I back into inn and out of out: no current flows into inn ...
    FP  0 inp VN 1           ... nor into inp (with inp at ground FP joins 0 to 0 and does nothing)
    .ends

so the op-amp takes no input current, holds V(inn) = V(inp) and its output sources whatever current the feedback
network needs: the infinite-gain op-amp, exactly (not a large finite gain). Instance X<t> inp inn out; the stages
(spu_sim.parts.amplifiers) put the feedback element outside it, as for the macromodel, so a designer can point the
X<t> lines at SPU_OPAMP_MACRO (pins inp inn oo) or a subcircuit of their own.

Macromodel OA (tag ``<t>``: I<i> integrators, N<j> inverters, ... as the topology names them), nodes inp (ground
through the offset source), inn, out. Its core is one subcircuit per netlist, ``.subckt SPU_OPAMP_MACRO inp inn oo
params: ic_v=0`` (``macro_subckt``, written once by ``cell_elements``; a designer can swap it by hand), instantiated
per op-amp as XA<t>; the offset source, the output-current sense source and the parasitics stay outside it, so the
saved currents i(VO<t>) and the intrinsic-noise re-referencing of VOS<t> see the same names as ever:

    VOS<t>   os<t> 0 DC offset             input offset voltage (in series with the + input, at ground)
    XA<t>    os<t> inn oo<t> SPU_OPAMP_MACRO ic_v=<initial output>
      GA     0 pp inp inn  A0              transconductance A0 S into the pole node
      GP     pp 0 pp 0 1                   a 1 S conductance made of a VCCS: noiseless (a resistor would
                                           add thermal noise to .noise that no real op-amp has)
      CP     pp 0 A0 / (2 pi GBW) IC={ic_v}  the dominant pole at GBW / A0 (absent when gbw_hz is null)
      EO     oo 0 pp 0 1                   output stage; without r_out_ohm and with v_out_max_v the swing limit
                                           E ... TABLE {V(pp)} = (-vmax,-vmax) (vmax,vmax) (then oo is the output)
    VO<t>    oo<t> out DC 0                senses the output (load) current; saved as i(VO<t>)
    ROUT<t>  ro<t> out r_out               output resistance (only when r_out_ohm > 0; VO<t> then ends at ro<t>);
                                           noiseless here (the op-amp's noise is its own keys)
    with r_out_pole_hz (the output impedance falls above a pole, as a Miller op-amp's does) instead:
    ROUT<t>  ro<t> rz<t> r_out_hf          the high-frequency output resistance (absent when r_out_hf_ohm is 0:
                                           VO<t> then ends at rz<t>)
    RZO<t>   rz<t> out r_out - r_out_hf    with CZO<t> across it, C = 1 / (2 pi r_out_pole_hz (r_out - r_out_hf)):
    CZO<t>   rz<t> out                     Z_out(f) = r_out_hf + (r_out - r_out_hf) / (1 + j f / r_out_pole_hz),
                                           noiseless; the capacitor starts at 0 V (uic)
    CIN<t>   inn 0 c_in                    input capacitance (only when c_in_farad > 0)

The swing limit (v_out_max_v) with an output impedance limits the output node, as a real op-amp's saturating output
stage does, not the source behind the impedance (a limit there clips on the load current alone: a characterised
r_out of 53 kohm sourcing a few uA already puts the source volts away from the output). EO stays linear, the
impedance ends at node oc<t>, and

    BCL<t>   oc<t> 0 I = CLAMP_SIEMENS (max(V - vmax, 0) + min(V + vmax, 0))   the clamp: no current inside the
                                           swing, 1 kS beyond it (the output exceeds the rail by
                                           (V(oo) - vmax) / (1 + CLAMP_SIEMENS Z_out): 4e-5 V at .op of the d = 2
                                           test design with the characterised sky130_miller and vmax 0.2 V)
    VO<t>    oc<t> out DC 0                the delivered current (after the clamp, whose current is the Thevenin
                                           source's excess, not a current any rail supplies)

The clamp is a B source: nonlinear, so the linear engine refuses it (as the E TABLE); for ngspice it is a
piecewise-linear current (no exponential, unlike a diode clamp).

Engines that take flat elements (the linear engine, the checks) expand the instances (spu_sim.circuit.flatten):
element GA of XA<t> becomes GA_XA<t>, node pp becomes XA<t>_pp.

A subcircuit op-amp (``model: subckt`` or a shipped cell, spu_sim.parts.subckt_opamp) replaces the whole op-amp by
one instance X<t> of the designer's subcircuit (``opamp_cell``), with the include and supplies written once.

so V(out) = A0 (V+ - V-) / (1 + s A0 / (2 pi GBW)) - Z_out I_out, limited to +/- vmax.

Supplies: each output stage sources its load current i(VO) from the +supply_v rail when positive and sinks it
into the -supply_v rail when negative (class-B), plus a quiescent i_quiescent_a from each rail:
I_cc = sum_k iq + max(i(VO_k), 0), I_ee = sum_k iq + max(-i(VO_k), 0), P = supply_v (I_cc + I_ee), evaluated on
the saved output currents (``output_current``; spu_sim.topologies.opamp.metrics). (Modelling the rails in the
netlist as B sources ``I = iq + max(i(VO), 0)`` from a VCC source gives the same numbers but made the d = 8
transient 1.8x slower: measured 7.4 s vs 4.2 s for 30 tau.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..circuit import (CCCS, VCCS, VCVS, BehavioralCurrent, Capacitor, ClippedVCVS, Expr, Instance, Param, Resistor,
                       Subckt, VoltageSource, num)
from .config import OpampConfig
from .element_values import group_rng
from .subckt_opamp import SubcktOpamp, subckt_from_config

OFFSET_GROUP = "OFFSET"   # the random stream of the per-op-amp offsets (spu_sim.parts.element_values.group_rng)
#: the output clamp's conductance beyond the swing (output_clamp): the output then exceeds the rail by
#: (V(oo) - v_out_max_v) / (1 + CLAMP_SIEMENS Z_out)
CLAMP_SIEMENS = 1e3


@dataclass(frozen=True)
class OpampModel:
    """The macromodel every op-amp of one design shares: DC gain A0; gbw_hz (None = no pole): pole at
    gbw_hz / gain; v_out_max_v (None = no swing limit); supplies +/- supply_v, i_quiescent_a per op-amp.
    A topology's own subclass adds its per-op-amp values (offsets, inverter resistors)."""

    gain: float
    gbw_hz: float | None
    v_out_max_v: float | None
    supply_v: float
    i_quiescent_a: float
    r_out_ohm: float = field(default=0.0, kw_only=True)
    r_out_hf_ohm: float | None = field(default=None, kw_only=True)    # with r_out_pole_hz: Z_out falls to it
    r_out_pole_hz: float | None = field(default=None, kw_only=True)
    c_in_farad: float = field(default=0.0, kw_only=True)
    cell: SubcktOpamp | None = field(default=None, kw_only=True)   # a subcircuit op-amp instead of the macromodel


@dataclass(frozen=True)
class MacroOpamp(OpampModel):
    """The op-amps of an integrator network (one integrator and one inverter per variable; offsets in volts):
    offset_int_v (d,) integrators, offset_inv_v (d,) inverters; r_inv_in_ohm / r_inv_fb_ohm (d,) the inverters'
    R1 / R2 (realised)."""

    offset_int_v: np.ndarray
    offset_inv_v: np.ndarray
    r_inv_in_ohm: np.ndarray
    r_inv_fb_ohm: np.ndarray


def model_fields(oc: OpampConfig) -> dict[str, object]:
    """The OpampModel fields of the ``circuit.opamp`` section (``MacroOpamp(**model_fields(oc), ...)``); with a
    subcircuit op-amp (model: subckt or a shipped cell) ``cell``, its file scanned first (a BadInputError before any
    engine runs)."""
    cell = subckt_from_config(oc) if oc.is_subckt else None
    return {"gain": oc.gain, "gbw_hz": oc.gbw_hz, "v_out_max_v": oc.v_out_max_v, "supply_v": oc.supply_v,
            "i_quiescent_a": oc.i_quiescent_a, "cell": cell, **{k: getattr(oc, k) for k in IMPEDANCE_KEYS}}


def has_opamp_model(oc: OpampConfig) -> bool:
    """Whether the op-amps are real stages (macromodel or subcircuit) rather than nullors (model: ideal)."""
    return oc.model != "ideal"


def finite_gain_model(m: OpampModel | None) -> OpampModel | None:
    """The op-amp model the closed-form (finite-gain) predictions may use: m for the macromodel; None for the ideal
    op-amp and for a subcircuit op-amp, whose gain spu-sim does not model (its effect is measured by the ngspice run,
    never predicted: the predictions then are the element values' own)."""
    return None if m is None or m.cell is not None else m


def is_subckt(m: OpampModel | None) -> bool:
    """Whether the op-amps are subcircuit op-amps (model: subckt or a shipped cell)."""
    return m is not None and m.cell is not None


def offset_rng(seed: int) -> np.random.Generator:
    """The random stream of the op-amps' offsets (circuit.tolerance.seed)."""
    return group_rng(seed, OFFSET_GROUP)


def draw_offsets(oc: OpampConfig, rng: np.random.Generator, shape) -> np.ndarray:
    """Input offsets of ``shape`` op-amps: offset_v plus a Gaussian of rms offset_sigma_v per op-amp (no draw,
    and the stream untouched, when offset_sigma_v is 0)."""
    return oc.offset_v + (rng.standard_normal(shape) * oc.offset_sigma_v if oc.offset_sigma_v else np.zeros(shape))


def macro_notes(oc: OpampConfig) -> dict[str, object]:
    """The design.json / netlist-header notes of the macromodel (or of a subcircuit op-amp)."""
    if oc.is_subckt:
        return {"opamp": oc.model, **({"subckt_name": oc.subckt.name, "subckt_file": oc.subckt.file} if oc.subckt else {}),
                "supply_v": oc.supply_v, **({"corner": oc.corner} if oc.corner else {})}
    return {"opamp": "macro", "gain": oc.gain, "gbw_hz": oc.gbw_hz, "v_out_max_v": oc.v_out_max_v,
            "offset_v": oc.offset_v, "offset_sigma_v": oc.offset_sigma_v,
            **{k: getattr(oc, k) for k in IMPEDANCE_KEYS if getattr(oc, k)}}


def header_line(m: OpampModel) -> str:
    """The netlist-header line naming the macromodel's parameters (or the subcircuit op-amp)."""
    if m.cell is not None:
        return m.cell.header_line()
    extra = "".join(f", {k} = {getattr(m, k):.6g}" for k in IMPEDANCE_KEYS if getattr(m, k))
    return (f"Op-amp macromodel: A0 = {m.gain:.6g}, GBW = {m.gbw_hz} Hz, swing = +/-{m.v_out_max_v} V,"
            f" supplies +/-{m.supply_v:.6g} V, Iq = {m.i_quiescent_a:.6g} A per op-amp{extra}")


MACRO_SUBCKT = "SPU_OPAMP_MACRO"
#: the macromodel's output impedance and input capacitance keys (notes and the netlist header name those set)
IMPEDANCE_KEYS: tuple[str, ...] = ("r_out_ohm", "r_out_hf_ohm", "r_out_pole_hz", "c_in_farad")


def macro_subckt(m: OpampModel) -> Subckt:
    """The core of the macromodel (module doc) as the subcircuit every macro op-amp of a netlist instantiates: pins
    inp (the + input behind the offset source), inn, oo (the output stage, before the output-current sense source);
    parameter ic_v: the pole node's initial voltage (the op-amp's initial output)."""
    E: list = [VCCS("GA", "0", "pp", "inp", "inn", float(m.gain)), VCCS("GP", "pp", "0", "pp", "0", 1.0)]
    if m.gbw_hz is not None:
        E.append(Capacitor("CP", "pp", "0", float(m.gain / (2 * np.pi * m.gbw_hz)), ic_v=Param("ic_v")))
    if m.v_out_max_v is None or has_output_clamp(m):
        E.append(VCVS("EO", "oo", "0", "pp", "0", 1.0))
    else:
        E.append(ClippedVCVS("EO", "oo", "0", "pp", float(m.v_out_max_v)))
    return Subckt(MACRO_SUBCKT, ("inp", "inn", "oo"), tuple(E), params={"ic_v": 0.0},
                  comment=f"{MACRO_SUBCKT}, the core of every op-amp (spu_sim.parts.opamp). {header_line(m)}")


IDEAL_SUBCKT = "SPU_OPAMP_IDEAL"


def ideal_subckt() -> Subckt:
    """The ideal op-amp (module doc: the nullor VN, FN, FP) as the subcircuit every ideal op-amp of a netlist
    instantiates: pins inp, inn, out."""
    return Subckt(IDEAL_SUBCKT, ("inp", "inn", "out"),
                  (VoltageSource("VN", "inp", "inn", 0.0), CCCS("FN", "inn", "out", "VN", 1.0),
                   CCCS("FP", "0", "inp", "VN", 1.0)),
                  comment=f"{IDEAL_SUBCKT}, the ideal op-amp (a nullor: V(inn) = V(inp), no input current;"
                          " spu_sim.parts.opamp)")


def ideal_opamp(tag: str, inn: str, out: str, inp: str = "0") -> Instance:
    """Ideal op-amp ``tag``: the instance X<tag> of ideal_subckt (which cell_elements puts into the netlist once),
    inverting input ``inn``, output ``out``, non-inverting input ``inp`` (ground)."""
    return Instance(f"X{tag}", IDEAL_SUBCKT, (inp, inn, out))


def opamp_elements(m: OpampModel, tag: str, inn: str, out: str, offset_v: float, ic_out_v: float | None = None) -> list:
    """One op-amp macromodel (module doc) with tag ``tag``, inverting input ``inn``, output ``out``, input offset
    ``offset_v``; ic_out_v: the initial output (the pole capacitor's IC; None: none, i.e. 0 V under uic). Its core is
    an instance XA<tag> of macro_subckt (which cell_elements puts into the netlist once)."""
    par = {} if ic_out_v is None or m.gbw_hz is None else {"ic_v": float(ic_out_v)}
    E: list = [VoltageSource(f"VOS{tag}", f"os{tag}", "0", float(offset_v)),
               Instance(f"XA{tag}", MACRO_SUBCKT, (f"os{tag}", inn, f"oo{tag}"), par)]
    E += output_impedance(m, tag, out)
    if m.c_in_farad > 0:
        E.append(Capacitor(f"CIN{tag}", inn, "0", float(m.c_in_farad)))
    return E


def has_output_clamp(m: OpampModel) -> bool:
    """Whether the swing limit is the output clamp (module doc): a swing limit with an output impedance. Without
    r_out_ohm the output node is the output stage's, and the clipped stage EO is the same limit."""
    return m.v_out_max_v is not None and m.r_out_ohm > 0


def output_clamp(name: str, node: str, v_max_v: float) -> BehavioralCurrent:
    """The swing limit on an output node (module doc): a current CLAMP_SIEMENS (|V(node)| - v_max_v) from the node
    to ground beyond +/- v_max_v, none inside (a saturated output stage holds its node at the rail)."""
    v, g = float(v_max_v), num(CLAMP_SIEMENS)
    beyond = Expr("+", (Expr("max", (Expr("+", (Expr("v", (node,)), num(-v))), num(0.0))),
                        Expr("min", (Expr("+", (Expr("v", (node,)), num(v))), num(0.0)))))
    return BehavioralCurrent(name, node, "0", Expr("*", (g, beyond)))


def output_impedance(m: OpampModel, tag: str, out: str) -> list:
    """The output-current sense source VO<tag> from the output stage oo<tag> and the output impedance to ``out``
    (module doc): none, r_out_ohm at every frequency, or with r_out_pole_hz the zero/pole pair
    Z_out(f) = r_out_hf + (r_out - r_out_hf) / (1 + j f / f_p) as ROUT<tag> in series with RZO<tag> || CZO<tag>.
    With a swing limit (has_output_clamp) the impedance ends at oc<tag>, the clamp CLAMP<tag> holds that node within
    +/- v_out_max_v, and VO<tag> runs from oc<tag> to ``out`` (it senses the current the output delivers)."""
    if m.r_out_ohm <= 0:
        return [VoltageSource(f"VO{tag}", f"oo{tag}", out, 0.0)]
    clamp = has_output_clamp(m)
    end = f"oc{tag}" if clamp else out
    head = f"oo{tag}" if clamp else f"ro{tag}"     # where the impedance starts (VO<tag> before it without a clamp)
    E: list = [] if clamp else [VoltageSource(f"VO{tag}", f"oo{tag}", f"ro{tag}", 0.0)]
    if m.r_out_pole_hz is None:
        E.append(Resistor(f"ROUT{tag}", head, end, float(m.r_out_ohm), noisy=False))
    else:
        r_hf = float(m.r_out_hf_ohm or 0.0)
        r_fall = float(m.r_out_ohm) - r_hf
        if r_hf > 0:
            E.append(Resistor(f"ROUT{tag}", head, f"rz{tag}", r_hf, noisy=False))
        elif not clamp:
            E[-1] = VoltageSource(f"VO{tag}", f"oo{tag}", f"rz{tag}", 0.0)
        rz = f"rz{tag}" if r_hf > 0 or not clamp else head
        E += [Resistor(f"RZO{tag}", rz, end, r_fall, noisy=False),
              Capacitor(f"CZO{tag}", rz, end, float(1.0 / (2 * np.pi * m.r_out_pole_hz * r_fall)))]
    if clamp:
        E += [output_clamp(f"BCL{tag}", end, float(m.v_out_max_v)), VoltageSource(f"VO{tag}", end, out, 0.0)]
    return E


def opamp_cell(m: OpampModel | None, tag: str, inn: str, out: str, offset_v: float,
               ic_out_v: float | None = None) -> list:
    """Op-amp ``tag`` of model m (inverting input ``inn``, output ``out``): m None, the ideal op-amp (ideal_opamp;
    no offset, no state: offset_v must be 0, ic_out_v is not needed); the macromodel (opamp_elements, with its offset
    and initial output) or, for a subcircuit op-amp, one instance of it (its offset and initial state are its own:
    offset_v must be 0 and ic_out_v is not applied)."""
    if m is None:
        if offset_v != 0.0:
            raise ValueError(f"op-amp {tag}: the ideal op-amp has no offset (offset_v must be 0)")
        return [ideal_opamp(tag, inn, out)]
    if m.cell is None:
        return opamp_elements(m, tag, inn, out, offset_v, ic_out_v)
    if offset_v != 0.0:
        raise ValueError(f"op-amp {tag}: a subcircuit op-amp has its own offset (offset_v must be 0)")
    return m.cell.instance(tag, inn, out)


def cell_elements(m: OpampModel | None) -> list:
    """What a netlist holds once for its op-amps before they are instantiated: the ideal op-amp's subcircuit
    (m None: ideal_subckt), the macromodel's (macro_subckt), or a subcircuit op-amp's include line and supply sources
    (SubcktOpamp.netlist_elements)."""
    if m is None:
        return [ideal_subckt()]
    return [macro_subckt(m)] if m.cell is None else m.cell.netlist_elements()


def output_current_saves(m: OpampModel | None, tags: list[str]) -> list[str]:
    """The vectors to save for the output currents of the op-amps with these tags (macromodel: i(VO<t>); none for the
    ideal op-amp and a subcircuit op-amp, which has no sensing source)."""
    return [f"i(VO{t})" for t in tags] if finite_gain_model(m) is not None else []


def output_current(vectors: dict, tag: str):
    """The output current of op-amp ``tag`` from a waveform's vectors (raw file: i(vo<t>); shared library:
    vo<t>#branch), None when it was not saved."""
    source = f"vo{tag.lower()}"
    for key in (f"i({source})", f"{source}#branch"):
        if key in vectors:
            return vectors[key]
    return None
