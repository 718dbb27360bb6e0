"""The stages built of an op-amp: integrators, inverters, summers, each with an ideal op-amp (a nullor) or the
op-amp of spu_sim.parts.opamp (``m``: its OpampModel; None = ideal): the macromodel, or a subcircuit op-amp
(``m.cell``, model: subckt) instantiated by ``opamp_cell``; "macro" below means either.

Ideal integrator i (nodes sum<i>, st<i>, x<i>): VSUM<i> holds the summing node at exactly 0 V and senses the
input current, FINT<i> passes it to CF<i>, EOUT<i> buffers the capacitor onto x<i> so that loads do not discharge
it: C_f dV(x<i>)/dt = -(current into sum<i>), exactly the inverting integrator with an infinite-gain op-amp.
Macromodel integrator: op-amp I<i> (inverting input sum<i>, output x<i>) with CF<i> from x<i> to sum<i>.

Inverter: out = -V(node): ideal, a VCVS of gain -1; macromodel, the op-amp with R1 (node -> mid) and R2
(mid -> out): out = -(R2/R1) V(node) (+ offset terms).

Inverting summer: V(out) = -R_f (current into inn): ideal, a V source holding inn at 0 V and sensing the current,
a CCCS pushing it through R_f (node mid) and a unity buffer onto out; macromodel, the op-amp with R_f from out
to inn. Element names are the topology's (each names its own netlist).
"""

from __future__ import annotations

from ..circuit import CCCS, VCVS, Capacitor, Comment, Resistor, VoltageSource
from .opamp import OpampModel, opamp_cell


def integrator(i: int, c_farad: float, ic_v: float, m: OpampModel | None = None, offset_v: float = 0.0,
               comment: bool = True) -> list:
    """Integrator i (1-based) of feedback capacitor c_farad, initial output ic_v (volts), with an ideal op-amp
    (m None) or op-amp I<i> of model m and input offset offset_v (module doc); comment: a comment line first."""
    if m is None:
        E: list = [Comment(f"integrator {i}")] if comment else []
        return E + [VoltageSource(f"VSUM{i}", f"sum{i}", "0", 0.0),
                    CCCS(f"FINT{i}", f"st{i}", "0", f"VSUM{i}", 1.0),
                    Capacitor(f"CF{i}", f"st{i}", "0", float(c_farad), ic_v=float(ic_v)),
                    VCVS(f"EOUT{i}", f"x{i}", "0", f"st{i}", "0", 1.0)]
    kind = "op-amp macromodel" if m.cell is None else f"op-amp subcircuit XI{i}"
    E = [Comment(f"integrator {i}: {kind} + feedback capacitor CF{i} (x{i} -> sum{i})")] if comment else []
    E += opamp_cell(m, f"I{i}", f"sum{i}", f"x{i}", float(offset_v), float(ic_v))
    E.append(Capacitor(f"CF{i}", f"x{i}", f"sum{i}", float(c_farad), ic_v=float(ic_v)))
    return E


def nullor_inverter(name: str, node: str, out: str) -> list:
    """Ideal unity-gain inverter: V(out) = -V(node) (a VCVS of gain -1 named ``name``)."""
    return [VCVS(name, out, "0", node, "0", -1.0)]


def macro_inverter(m: OpampModel, tag: str, node: str, mid: str, out: str, r_names: tuple[str, str],
                   r_in_ohm: float, r_fb_ohm: float, offset_v: float, ic_out_v: float | None = None) -> list:
    """Inverter of op-amp ``tag``: R1 = r_names[0] (node -> mid), R2 = r_names[1] (mid -> out), then the op-amp
    (inverting input mid, output out): V(out) = -(R2/R1) V(node) (+ offset terms)."""
    return ([Resistor(r_names[0], node, mid, float(r_in_ohm)), Resistor(r_names[1], mid, out, float(r_fb_ohm))]
            + opamp_cell(m, tag, mid, out, float(offset_v), ic_out_v))


def nullor_summer(names: tuple[str, str, str, str], inn: str, mid: str, out: str, r_f_ohm: float,
                  sense: bool = True) -> list:
    """Inverting summer with an ideal op-amp, V(out) = -R_f (current into inn); names = (the V source holding inn
    at 0 V, the CCCS, R_f, the output buffer). sense=False: without the V source and the CCCS (the topology splits
    the virtual ground and senses it itself)."""
    v_name, f_name, r_name, e_name = names
    E = [VoltageSource(v_name, inn, "0", 0.0), CCCS(f_name, mid, "0", v_name, 1.0)] if sense else []
    return E + [Resistor(r_name, mid, "0", float(r_f_ohm)), VCVS(e_name, out, "0", mid, "0", 1.0)]


def macro_summer(m: OpampModel, tag: str, inn: str, out: str, r_name: str, r_f_ohm: float, offset_v: float,
                 ic_out_v: float | None = None, feedback_first: bool = False) -> list:
    """Inverting summer of op-amp ``tag`` with feedback resistor r_name (out -> inn); feedback_first: the resistor
    before the op-amp in the netlist (else after)."""
    amp = opamp_cell(m, tag, inn, out, float(offset_v), ic_out_v)
    rf = [Resistor(r_name, out, inn, float(r_f_ohm))]
    return rf + amp if feedback_first else amp + rf
