"""The stages built of an op-amp: integrators, inverters, summers, each around op-amp ``tag`` of
spu_sim.parts.opamp (``m``: its OpampModel; None = ideal), instantiated by ``opamp_cell``: the ideal op-amp (a nullor,
instance X<tag> of SPU_OPAMP_IDEAL), the macromodel, or a subcircuit op-amp (``m.cell``, model: subckt). The feedback
element is outside the op-amp in every case, so the three models are the same stage with another op-amp.

Integrator i (nodes sum<i>, x<i>): op-amp I<i> (inverting input sum<i>, output x<i>) with CF<i> from x<i> to sum<i>.
With the ideal op-amp V(sum<i>) = 0 exactly and C_f dV(x<i>)/dt = -(current into sum<i>): the inverting integrator
with an infinite-gain op-amp.

Summer: op-amp ``tag`` with R_f from out to inn: V(out) = -R_f (current into inn) (+ offset terms).

Inverter: out = -V(node): ideal, a VCVS of gain -1 (``nullor_inverter``: no resistors, so no thermal or i_n noise
of its own; intrinsic_noise plays its e_n at twice the level, the two-equal-resistor inverter's noise gain);
macromodel, the op-amp with R1 (node -> mid) and R2 (mid -> out): out = -(R2/R1) V(node) (+ offset terms).

``nullor_integrator`` and ``nullor_summer``: the integrator, and the inverting summer's output half, with an ideal
op-amp written inline (opamp_factored's ideal stages: docs/opamp_factored.md); the summer's half (a CCCS pushes a sensed
current through R_f, a unity buffer copies it onto out), for a topology that splits the virtual ground and senses
it itself (opamp_factored's wide summing nodes; ngspice's matrix ordering). Element names are the topology's (each
names its own netlist).

Banks (spu_sim.circuit.ElementBank: many cells stated as arrays, for the linear engine's and the writer's speed at
N = 1e5): ``nullor_integrators``, ``nullor_inverters``, ``nullor_summers`` state the same stages for index arrays,
names and nodes as patterns (``"sum{}"``); the per-element functions are the bank of one cell expanded (one
definition of each stage).
"""

from __future__ import annotations

import numpy as np

from ..circuit import CCCS, VCVS, Capacitor, Comment, ElementBank, ONE_CELL, Resistor, Template, VoltageSource
from .opamp import OpampModel, opamp_cell


def integrator(i: int, c_farad: float, ic_v: float, m: OpampModel | None = None, offset_v: float = 0.0,
               comment: bool = True) -> list:
    """Integrator i (1-based) of feedback capacitor c_farad, initial output ic_v (volts): op-amp I<i> of model m
    (None: ideal) with input offset offset_v (module doc); comment: a comment line first."""
    kind = (f"ideal op-amp XI{i}" if m is None else "op-amp macromodel" if m.cell is None
            else f"op-amp subcircuit XI{i}")
    E: list = [Comment(f"integrator {i}: {kind} + feedback capacitor CF{i} (x{i} -> sum{i})")] if comment else []
    E += opamp_cell(m, f"I{i}", f"sum{i}", f"x{i}", float(offset_v), float(ic_v))
    E.append(Capacitor(f"CF{i}", f"x{i}", f"sum{i}", float(c_farad), ic_v=float(ic_v)))
    return E


def nullor_integrator(i: int, c_farad: float, ic_v: float, comment: bool = True) -> list:
    """Integrator i with an ideal op-amp written inline, for opamp_factored (its docstring says why): VSUM<i> holds
    the summing node sum<i> at exactly 0 V and senses the input current, FINT<i> passes it to CF<i> (node st<i> to
    ground), EOUT<i> buffers the capacitor onto x<i>: C_f dV(x<i>)/dt = -(current into sum<i>), the same equation as
    ``integrator`` with the SPU_OPAMP_IDEAL instance, with the state on a grounded capacitor."""
    E: list = [Comment(f"integrator {i} (ideal op-amp written inline)")] if comment else []
    return E + nullor_integrators(np.array([i]), np.array([c_farad], dtype=float), np.array([ic_v], dtype=float)).elements()


def nullor_integrators(index: np.ndarray, c_farad: np.ndarray, ic_v: np.ndarray) -> ElementBank:
    """The integrators nullor_integrator(i, c_farad[p], ic_v[p]) for i = index[p] as one bank (cell p: VSUM<i>,
    FINT<i>, CF<i>, EOUT<i>)."""
    return ElementBank((index,), sensed_ground("VSUM{}", "FINT{}", "sum{}", "st{}") + (
        Template(Capacitor, dict(name="CF{}", n_pos="st{}", n_neg="0", c_farad=np.asarray(c_farad, dtype=float),
                                 ic_v=np.asarray(ic_v, dtype=float))),
        Template(VCVS, dict(name="EOUT{}", n_pos="x{}", n_neg="0", c_pos="st{}", c_neg="0", gain=1.0))))


def sensed_ground(v_name: str, f_name: str, node: str, into: str) -> tuple[Template, Template]:
    """The templates of a sensed virtual ground (names and nodes patterns or plain strings): v_name holds node at 0 V
    and senses its current, the CCCS f_name pushes that current into ``into`` (an ideal op-amp's input stage written
    inline: nullor_integrators, and opamp_factored's summers and split summing nodes)."""
    return (Template(VoltageSource, dict(name=v_name, n_pos=node, n_neg="0", dc_v=0.0)),
            Template(CCCS, dict(name=f_name, n_pos=into, n_neg="0", sense=v_name, gain=1.0)))


def nullor_inverter(name: str, node: str, out: str) -> list:
    """Ideal unity-gain inverter: V(out) = -V(node) (a VCVS of gain -1 named ``name``)."""
    return nullor_inverters(ONE_CELL, name, node, out).elements()


def nullor_inverters(keys: tuple, name: str, node: str, out: str) -> ElementBank:
    """The inverters nullor_inverter for every cell of keys (a tuple of index arrays) as one bank: name, node and out
    are patterns (``"EINVX{}"``, ``"x{}"``, ``"xn{}"``)."""
    return ElementBank(keys, (Template(VCVS, dict(name=name, n_pos=out, n_neg="0", c_pos=node, c_neg="0", gain=-1.0)),))


def macro_inverter(m: OpampModel, tag: str, node: str, mid: str, out: str, r_names: tuple[str, str],
                   r_in_ohm: float, r_fb_ohm: float, offset_v: float, ic_out_v: float | None = None) -> list:
    """Inverter of op-amp ``tag``: R1 = r_names[0] (node -> mid), R2 = r_names[1] (mid -> out), then the op-amp
    (inverting input mid, output out): V(out) = -(R2/R1) V(node) (+ offset terms)."""
    return ([Resistor(r_names[0], node, mid, float(r_in_ohm)), Resistor(r_names[1], mid, out, float(r_fb_ohm))]
            + opamp_cell(m, tag, mid, out, float(offset_v), ic_out_v))


def nullor_summer(names: tuple[str, str], mid: str, out: str, r_f_ohm: float) -> list:
    """The output half of an inverting summer with an ideal op-amp written inline (module doc): names = (R_f from
    mid to ground, the unity buffer onto out); the topology's CCCSs push the sensed input current into mid, so
    V(out) = -R_f (current into the virtual ground)."""
    return ElementBank(ONE_CELL, summer_templates(names, mid, out, float(r_f_ohm))).elements()


def summer_templates(names: tuple[str, str], mid: str, out: str, r_f_ohm) -> tuple[Template, Template]:
    """The cell of nullor_summer (names, mid, out: patterns or plain strings; r_f_ohm: one value or an array per cell),
    for a bank of summers (the topology adds its own sensing elements to the cell)."""
    r_name, e_name = names
    r = np.asarray(r_f_ohm, dtype=float) if np.ndim(r_f_ohm) else float(r_f_ohm)
    return (Template(Resistor, dict(name=r_name, n_pos=mid, n_neg="0", r_ohm=r)),
            Template(VCVS, dict(name=e_name, n_pos=out, n_neg="0", c_pos=mid, c_neg="0", gain=1.0)))


def opamp_summer(m: OpampModel | None, tag: str, inn: str, out: str, r_name: str, r_f_ohm: float, offset_v: float,
                 ic_out_v: float | None = None, feedback_first: bool = False) -> list:
    """Inverting summer of op-amp ``tag`` (m None: ideal) with feedback resistor r_name (out -> inn);
    feedback_first: the resistor before the op-amp in the netlist (else after)."""
    amp = opamp_cell(m, tag, inn, out, float(offset_v), ic_out_v)
    rf = [Resistor(r_name, out, inn, float(r_f_ohm))]
    return rf + amp if feedback_first else amp + rf
