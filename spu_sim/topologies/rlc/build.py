"""Circuit of the RLC unit-cell SPU (see spu_sim.topologies.rlc.design for the equations and the mapping).

Element and node names (i, j 1-based cell indices, i < j; k = 0..B-1 the bank bit):

    cell i        node n<i>; CC<i> grounded cell capacitor, LL<i> inductor to ground (IC = 0),
                  RR<i> cell resistor from n<i> to nz<i> (the noise voltage) or to ground without noise
    ideal         CK<i>_<j>: one coupling capacitor of the exact value between n<i> and n<j>
    switched      bank of pair (i, j), bit k: CB<i>_<j>_<k> (c_unit 2^k) from n<i> to switch node
                  s<i>_<j>_<k>; SB<i>_<j>_<k> (S element, model swbank) from s<i>_<j>_<k> to n<j>, controlled
                  by VCTL<i>_<j>_<k> (node c<i>_<j>_<k>: v_control_v for a set bit, 0 V for a clear bit);
                  CP<i>_<j>_<k> parasitic capacitance from the switch node to ground
    noise         ANOISE<i> (XSPICE filesource reading noise_<i>.txt) drives nz<i>

No .op: the inductors short DC, the operating point is v = 0 whatever the problem (has_mean = False).
"""

from __future__ import annotations

import numpy as np

from ...circuit import Capacitor, Circuit, Comment, Inductor, Resistor, Switch, SwitchModel, Tran, VoltageSource
from ...parts.element_table import ElementInfo, MissingElement
from ...parts.noise_dacs import noise_dacs
from ..base import CircuitRequest
from ..elements import header_tail, notes_lines


def header(design) -> list[str]:
    """The comment lines at the top of the netlist: what it samples and the mapping."""
    desc = design.describe()
    switched = design.coupling == "switched"
    H = ["Samples v ~ N(0, kT_eff Cm^-1); x = s_x * V(n<i>) ~ N(0, kappa A^-1). Mean 0: inductors short DC.",
         f"Mapping: Cm = gamma * A, gamma = {design.gamma:.6g} F/[A] (c_cell / max A_ii, max A_ii = {design.a_ref:.6g});"
         f" s_x = {design.s_x:.6g} [x]/V",
         f"tau = sqrt(L c_cell) = {design.tau_s:.6g} s; eta = sqrt(L/c_cell)/R = {design.eta:.6g};"
         f" kT_eff = {desc['kt_eff_joule']:.6g} J (T_eff = {desc['t_eff_kelvin']:.4g} K); kappa = {design.problem.kappa:.6g}",
         f"Elements: L = {design.l_henry:.6g} H, R = {design.r_ohm:.6g} ohm, cell C in"
         f" [{desc['c_cell_min_farad']:.6g}, {desc['c_cell_max_farad']:.6g}] F; max coupling {desc['c_coupling_max_farad']:.6g} F"]
    if switched:
        H.append(f"Banks: {design.bits} bits of c_unit = {design.c_unit_farad:.6g} F (full scale"
                 f" {desc['bank_full_scale_farad']:.6g} F); switches RON = {design.r_on_ohm:.6g}, ROFF = {design.r_off_ohm:.6g} ohm,"
                 f" control {design.v_control_v:.6g} V; parasitic {design.c_parasitic_farad:.6g} F per switch node;"
                 f" {desc['n_switches']} switches")
        H.append(f"Realised vs target Maxwell matrix: relative error {desc['cm_rel_err']:.4g} (Frobenius)")
    if design.has_noise:
        H.append(f"Noise: filesources noise_<i>.txt: samples of {design.noise_v_rms:.6g} V rms every"
                 f" {design.noise_dt_tau * design.tau_s:.6g} s ({design.noise_dt_tau:.6g} tau), linearly interpolated,"
                 " in series with each cell resistor (two-sided current intensity 2 kT_eff / R)")
    return H + header_tail(design, notes_lines(design.notes), units="ohm, farad, henry, volt, second")


def _initial_conditions(design) -> dict[str, float]:
    """.ic of the cell nodes and, with switched banks, of every switch node (the state at t = 0)."""
    d, x0 = design.d, design.x0_v
    if not np.any(x0 != 0):
        return {}
    ic = {f"n{i}": float(x0[i - 1]) for i in range(1, d + 1)}
    if design.coupling == "switched":
        # on bit: the switch node sits at v_j; off bit: the capacitive divider C_k : c_par from v_i
        for i in range(1, d + 1):
            for j in range(i + 1, d + 1):
                for k in range(design.bits):
                    ck = design.bank_capacitor(i - 1, j - 1, k)
                    on = (int(design.code[i - 1, j - 1]) >> k) & 1
                    ic[f"s{i}_{j}_{k}"] = float(x0[j - 1] if on else x0[i - 1] * ck / (ck + design.c_parasitic_farad))
    return ic


def element_info(design) -> tuple[dict[str, ElementInfo], list[MissingElement]]:
    """What the cell and coupling elements realise (spu_sim.parts.element_table): CC<i> the cell capacitor (with the
    couplings Cm_ii = gamma A_ii), CK<i>_<j> and the bank bits CB<i>_<j>_<k> A[i,j] (code and bits the bank's, the
    bit's state; nominal c_unit 2^k), LL<i> and RR<i> the cell's L and R; no missing rows (a bank of code 0 keeps its
    capacitors, all switched off)."""
    d = design.d
    info: dict[str, ElementInfo] = {}
    for i in range(1, d + 1):
        info[f"CC{i}"] = ElementInfo(f"cell {i} capacitor (Cm[{i},{i}] = gamma A[{i},{i}] with the couplings)")
        info[f"LL{i}"] = ElementInfo(f"cell {i} inductor", float(design.l_henry))
        info[f"RR{i}"] = ElementInfo(f"cell {i} resistor (damping, noise)", float(design.r_ohm))
        for j in range(i + 1, d + 1):
            info[f"CK{i}_{j}"] = ElementInfo(f"A[{i},{j}] = A[{j},{i}] (coupling -gamma A_ij)",
                                             float(design.c_coupling_farad[i - 1, j - 1]))
            code = int(design.code[i - 1, j - 1])
            for k in range(design.bits if code >= 0 else 0):
                state = "on" if (code >> k) & 1 else "off"
                info[f"CB{i}_{j}_{k}"] = ElementInfo(f"A[{i},{j}] bank bit {k} ({state})", design.c_unit_farad * 2.0 ** k,
                                                     code, design.bits)
    return info, []


def build_circuit(design, request: CircuitRequest) -> Circuit:
    """The RLC cell network; no .op (the inductors short DC: the operating point is v = 0)."""
    d = design.d
    switched = design.coupling == "switched"
    noisy = design.has_noise and request.noise_u is not None
    E: list = []
    add = E.append
    for i in range(1, d + 1):
        add(Comment(f"cell {i}"))
        c = design.c_cell_farad[i - 1]
        if c > 0:
            add(Capacitor(f"CC{i}", f"n{i}", "0", float(c)))
        l_h = design.l_henry if design.l_each_henry is None else design.l_each_henry[i - 1]
        r_o = design.r_ohm if design.r_each_ohm is None else design.r_each_ohm[i - 1]
        add(Inductor(f"LL{i}", f"n{i}", "0", float(l_h), ic_a=0.0))
        add(Resistor(f"RR{i}", f"n{i}", f"nz{i}" if noisy else "0", float(r_o)))
    if not switched:
        add(Comment("ideal coupling capacitors CK<i>_<j> = -gamma A_ij"))
        for i in range(1, d + 1):
            for j in range(i + 1, d + 1):
                c = design.c_coupling_farad[i - 1, j - 1]
                if c > 0:
                    add(Capacitor(f"CK{i}_{j}", f"n{i}", f"n{j}", float(c)))
    else:
        add(SwitchModel("swbank", design.v_control_v / 2, 0.0, design.r_on_ohm, design.r_off_ohm))
        for i in range(1, d + 1):
            for j in range(i + 1, d + 1):
                code = int(design.code[i - 1, j - 1])
                add(Comment(f"bank {i}-{j}: code {code} = {code:0{design.bits}b}b"))
                for k in range(design.bits):
                    tag = f"{i}_{j}_{k}"
                    on = bool((code >> k) & 1)
                    add(Capacitor(f"CB{tag}", f"n{i}", f"s{tag}", float(design.bank_capacitor(i - 1, j - 1, k))))
                    add(Switch(f"SB{tag}", f"s{tag}", f"n{j}", f"c{tag}", "0", "swbank", on))
                    add(VoltageSource(f"VCTL{tag}", f"c{tag}", "0", float(design.v_control_v if on else 0.0)))
                    if design.c_parasitic_farad > 0:
                        add(Capacitor(f"CP{tag}", f"s{tag}", "0", float(design.c_parasitic_farad)))
    if noisy:
        add(Comment("injected noise: one filesource (noise_<i>.txt) per cell, in series with RR<i>"))
        E.extend(noise_dacs(design.noise_v_rms * request.noise_u, design.noise_dt_tau * design.tau_s))
    analyses: list = []
    if "tran" in request.analyses:
        analyses.append(Tran(request.step_s, request.t_stop_s, design.noise_dt_tau * design.tau_s))
    title = f"spu-sim RLC unit-cell SPU, d = {d}, coupling = {design.coupling}" + (
        f" ({design.bits}-bit switched-capacitor banks)" if switched else "")
    return Circuit(title=title, header=header(design), elements=E, readout_nodes=list(design.readout_nodes),
                   analyses=analyses, ic_v=_initial_conditions(design), options={"reltol": request.reltol},
                   saves=[f"v(n{i})" for i in range(1, d + 1)],
                   analysis_notes=["no .op: the inductors short DC (operating point v = 0)"])
