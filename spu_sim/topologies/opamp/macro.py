"""Circuit pieces of the non-ideal op-amp integrator SPU (used by spu_sim.topologies.opamp.build).

Op-amp macromodel OA (one per integrator i, prefix ``I``; one per inverter j, prefix ``N``), nodes inp/inn/out:

    VOS<p><k>  os<p><k> 0 DC offset             input offset voltage (in series with the + input, at ground)
    GA<p><k>   0 pp<p><k> os<p><k> inn  A0      transconductance A0 S into the pole node
    GP<p><k>   pp<p><k> 0 pp<p><k> 0 1          a 1 S conductance made of a VCCS: noiseless (a resistor would
                                                add thermal noise to .noise that no real op-amp has)
    CP<p><k>   pp<p><k> 0 A0 / (2 pi GBW)       the dominant pole at GBW / A0 (absent when gbw_hz is null)
    EO<p><k>   oo<p><k> 0 pp<p><k> 0 1          output stage, or E ... TABLE {V(pp)} = (-vmax,-vmax) (vmax,vmax)
    VO<p><k>   oo<p><k> out DC 0                senses the output (load) current; saved as i(VO<p><k>)

so V(out) = A0 (V+ - V-) / (1 + s A0 / (2 pi GBW)), clipped to +/- vmax. The integrator is that op-amp with
CF<i> from x<i> to sum<i> (the feedback capacitor, IC = its initial voltage); the inverter is the op-amp with
RI<j>A (x<j> to ni<j>) and RI<j>B (ni<j> to xn<j>).

Supplies: each output stage sources its load current i(VO) from the +supply_v rail when positive and sinks it
into the -supply_v rail when negative (class-B), plus a quiescent i_quiescent_a from each rail:
I_cc = sum_k iq + max(i(VO_k), 0), I_ee = sum_k iq + max(-i(VO_k), 0), P = supply_v (I_cc + I_ee).
spu_sim.topologies.opamp.metrics evaluates this on the saved output currents. (Modelling the rails in the netlist as
B sources ``I = iq + max(i(VO), 0)`` from a VCC source gives the same numbers but made the d = 8 transient
1.8x slower: measured 7.4 s vs 4.2 s for 30 tau.)
"""

from __future__ import annotations

import numpy as np

from ...circuit import VCCS, VCVS, Capacitor, ClippedVCVS, Comment, Resistor, VoltageSource
from ..elements import notes_lines


def nonideal_header(design) -> list[str]:
    """Header lines naming every non-ideality applied (none for a nominal design)."""
    out = notes_lines(design.notes)
    if not out:
        return []
    m = design.macro
    if m is not None:
        out.append(f"Op-amp macromodel: A0 = {m.gain:.6g}, GBW = {m.gbw_hz} Hz, swing = +/-{m.v_out_max_v} V,"
                   f" supplies +/-{m.supply_v:.6g} V, Iq = {m.i_quiescent_a:.6g} A per op-amp")
    return out


def element_value(design, attr: str, index: int, default: float) -> float:
    """A per-element realised value if the design has one, else the nominal scalar."""
    arr = getattr(design, attr, None)
    return default if arr is None else float(arr[index])


def _opamp(m, tag: str, inn: str, out: str, offset: float, ic_out: float | None) -> list:
    E: list = [VoltageSource(f"VOS{tag}", f"os{tag}", "0", float(offset)),
               VCCS(f"GA{tag}", "0", f"pp{tag}", f"os{tag}", inn, float(m.gain)),
               VCCS(f"GP{tag}", f"pp{tag}", "0", f"pp{tag}", "0", 1.0)]
    if m.gbw_hz is not None:
        E.append(Capacitor(f"CP{tag}", f"pp{tag}", "0", float(m.gain / (2 * np.pi * m.gbw_hz)),
                           ic_v=None if ic_out is None else float(ic_out)))
    if m.v_out_max_v is None:
        E.append(VCVS(f"EO{tag}", f"oo{tag}", "0", f"pp{tag}", "0", 1.0))
    else:
        E.append(ClippedVCVS(f"EO{tag}", f"oo{tag}", "0", f"pp{tag}", float(m.v_out_max_v)))
    E.append(VoltageSource(f"VO{tag}", f"oo{tag}", out, 0.0))
    return E


def macromodel(m, tag: str, inn: str, out: str, offset: float, ic_out: float | None = None) -> list:
    """One op-amp macromodel (module doc) with tag ``tag``, inverting input ``inn``, output ``out`` (for other
    topologies' amplifiers)."""
    return _opamp(m, tag, inn, out, offset, ic_out)


def macro_integrator(design, i: int) -> list:
    """Integrator i (1-based) with the macromodel op-amp and its feedback capacitor."""
    m = design.macro
    k = i - 1
    x0 = float(design.x0_v[k])
    E: list = [Comment(f"integrator {i}: op-amp macromodel + feedback capacitor CF{i} (x{i} -> sum{i})")]
    E += _opamp(m, f"I{i}", f"sum{i}", f"x{i}", float(m.offset_int_v[k]), x0)
    E.append(Capacitor(f"CF{i}", f"x{i}", f"sum{i}", element_value(design, "c_f_farad", k, design.c_farad), ic_v=x0))
    return E


def macro_inverter(design, j: int) -> list:
    """Inverter j (1-based): op-amp + two resistors, xn<j> = -(R2/R1) V_j (+ offset terms)."""
    m = design.macro
    k = j - 1
    E: list = [Comment(f"inverter {j}: op-amp macromodel, RI{j}A in, RI{j}B feedback"),
               Resistor(f"RI{j}A", f"x{j}", f"ni{j}", float(m.r_inv_in_ohm[k])),
               Resistor(f"RI{j}B", f"ni{j}", f"xn{j}", float(m.r_inv_fb_ohm[k]))]
    E += _opamp(m, f"N{j}", f"ni{j}", f"xn{j}", float(m.offset_inv_v[k]), -float(design.x0_v[k]))
    return E


def opamp_tags(design) -> list[str]:
    """Tags of every macromodel op-amp of a design: I<i> integrators, N<j> inverters that exist."""
    if design.macro is None:
        return []
    inv = design.needs_inverter
    return [f"I{i}" for i in range(1, design.d + 1)] + [f"N{j}" for j in range(1, design.d + 1) if inv[j - 1]]


def supplies(design) -> list:
    m = design.macro
    return [Comment(f"supplies: +/-{m.supply_v:.6g} V rails, class-B output stages + {m.i_quiescent_a:.6g} A quiescent"
            " per op-amp, evaluated on the saved output currents i(VO*) (spu_sim.topologies.opamp.metrics)")]


def saved_currents(design) -> list[str]:
    return [f"i(VO{t})" for t in opamp_tags(design)]
