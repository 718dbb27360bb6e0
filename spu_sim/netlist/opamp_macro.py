"""Netlist pieces of the non-ideal op-amp integrator SPU (used by spu_sim.netlist.opamp).

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
spu_sim.metrics_circuit evaluates this on the saved output currents. (Modelling the rails in the netlist as
B sources ``I = iq + max(i(VO), 0)`` from a VCC source gives the same numbers but made the d = 8 transient
1.8x slower: measured 7.4 s vs 4.2 s for 30 tau.)
"""

from __future__ import annotations

import numpy as np

from . import fmt


def nonideal_header(design) -> list[str]:
    """Comment lines naming every non-ideality applied (none for a nominal design)."""
    notes = getattr(design, "notes", None)
    if not notes:
        return []
    out = ["* Non-idealities (values below are realised element values): "
           + "; ".join(f"{k} = {v}" for k, v in notes.items())]
    m = getattr(design, "macro", None)
    if m is not None:
        out.append(f"* Op-amp macromodel: A0 = {m.gain:.6g}, GBW = {m.gbw_hz} Hz, swing = +/-{m.v_out_max_v} V,"
                   f" supplies +/-{m.supply_v:.6g} V, Iq = {m.i_quiescent_a:.6g} A per op-amp")
    return out


def element_value(design, attr: str, index: int, default: float) -> float:
    """A per-element realised value if the design has one, else the nominal scalar."""
    arr = getattr(design, attr, None)
    return default if arr is None else float(arr[index])


def _opamp(m, tag: str, inn: str, out: str, offset: float, ic_out: float | None) -> list[str]:
    L = [f"VOS{tag} os{tag} 0 DC {fmt(offset)}",
         f"GA{tag} 0 pp{tag} os{tag} {inn} {fmt(m.gain)}",
         f"GP{tag} pp{tag} 0 pp{tag} 0 1"]
    if m.gbw_hz is not None:
        ic = "" if ic_out is None else f" IC={fmt(ic_out)}"
        L.append(f"CP{tag} pp{tag} 0 {fmt(m.gain / (2 * np.pi * m.gbw_hz))}{ic}")
    if m.v_out_max_v is None:
        L.append(f"EO{tag} oo{tag} 0 pp{tag} 0 1")
    else:
        v = fmt(m.v_out_max_v)
        L.append(f"EO{tag} oo{tag} 0 TABLE {{V(pp{tag})}} = (-{v}, -{v}) ({v}, {v})")
    L.append(f"VO{tag} oo{tag} {out} DC 0")
    return L


def macro_integrator(design, i: int) -> list[str]:
    """Integrator i (1-based) with the macromodel op-amp and its feedback capacitor."""
    m = design.macro
    k = i - 1
    x0 = float(design.x0_v[k])
    L = [f"* integrator {i}: op-amp macromodel + feedback capacitor CF{i} (x{i} -> sum{i})"]
    L += _opamp(m, f"I{i}", f"sum{i}", f"x{i}", float(m.offset_int_v[k]), x0)
    L.append(f"CF{i} x{i} sum{i} {fmt(element_value(design, 'c_f_farad', k, design.c_farad))} IC={fmt(x0)}")
    return L


def macro_inverter(design, j: int) -> list[str]:
    """Inverter j (1-based): op-amp + two resistors, xn<j> = -(R2/R1) V_j (+ offset terms)."""
    m = design.macro
    k = j - 1
    L = [f"* inverter {j}: op-amp macromodel, RI{j}A in, RI{j}B feedback"]
    L.append(f"RI{j}A x{j} ni{j} {fmt(m.r_inv_in_ohm[k])}")
    L.append(f"RI{j}B ni{j} xn{j} {fmt(m.r_inv_fb_ohm[k])}")
    L += _opamp(m, f"N{j}", f"ni{j}", f"xn{j}", float(m.offset_inv_v[k]), -float(design.x0_v[k]))
    return L


def opamp_tags(design) -> list[str]:
    """Tags of every macromodel op-amp of a design: I<i> integrators, N<j> inverters that exist."""
    if getattr(design, "macro", None) is None:
        return []
    inv = design.needs_inverter
    return [f"I{i}" for i in range(1, design.d + 1)] + [f"N{j}" for j in range(1, design.d + 1) if inv[j - 1]]


def supplies(design) -> list[str]:
    m = design.macro
    return [f"* supplies: +/-{m.supply_v:.6g} V rails, class-B output stages + {m.i_quiescent_a:.6g} A quiescent"
            " per op-amp, evaluated on the saved output currents i(VO*) (spu_sim.metrics_circuit)"]


def saved_currents(design) -> list[str]:
    return [f"i(VO{t})" for t in opamp_tags(design)]
