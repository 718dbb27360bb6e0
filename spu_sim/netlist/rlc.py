"""ngspice netlist of the RLC unit-cell SPU (see spu_sim.design.rlc for the equations and the mapping).

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

from ..config import Config
from . import fmt, format_noise_sources, sample_dt_tau


def format_rlc_netlist(design, cfg: Config) -> str:
    """Standalone ngspice text; runs with `ngspice -b -r out.raw netlist.cir` in its folder."""
    d = design.d
    sim = cfg.simulation
    desc = design.describe()
    switched = design.coupling == "switched"
    L: list[str] = []
    add = L.append
    add(f"* spu-sim RLC unit-cell SPU, d = {d}, coupling = {design.coupling}"
        + (f" ({design.bits}-bit switched-capacitor banks)" if switched else ""))
    add("* Samples v ~ N(0, kT_eff Cm^-1); x = s_x * V(n<i>) ~ N(0, kappa A^-1). Mean 0: inductors short DC.")
    add(f"* Mapping: Cm = gamma * A, gamma = {design.gamma:.6g} F/[A] (c_cell / max A_ii, max A_ii = {design.a_ref:.6g});"
        f" s_x = {design.s_x:.6g} [x]/V")
    add(f"* tau = sqrt(L c_cell) = {design.tau_s:.6g} s; eta = sqrt(L/c_cell)/R = {design.eta:.6g};"
        f" kT_eff = {desc['kt_eff_joule']:.6g} J (T_eff = {desc['t_eff_kelvin']:.4g} K); kappa = {design.problem.kappa:.6g}")
    add(f"* Elements: L = {design.l_henry:.6g} H, R = {design.r_ohm:.6g} ohm, cell C in"
        f" [{desc['c_cell_min_farad']:.6g}, {desc['c_cell_max_farad']:.6g}] F; max coupling {desc['c_coupling_max_farad']:.6g} F")
    if switched:
        add(f"* Banks: {design.bits} bits of c_unit = {design.c_unit_farad:.6g} F (full scale"
            f" {desc['bank_full_scale_farad']:.6g} F); switches RON = {design.r_on_ohm:.6g}, ROFF = {design.r_off_ohm:.6g} ohm,"
            f" control {design.v_control_v:.6g} V; parasitic {design.c_parasitic_farad:.6g} F per switch node;"
            f" {desc['n_switches']} switches")
        add(f"* Realised vs target Maxwell matrix: relative error {desc['cm_rel_err']:.4g} (Frobenius)")
    if design.has_noise:
        add(f"* Noise: filesources noise_<i>.txt: samples of {design.noise_v_rms:.6g} V rms every"
            f" {design.noise_dt_tau * design.tau_s:.6g} s ({design.noise_dt_tau:.6g} tau), linearly interpolated,"
            " in series with each cell resistor (two-sided current intensity 2 kT_eff / R)")
    if design.notes:
        add("* Non-idealities (values below are realised element values): "
            + "; ".join(f"{k} = {v}" for k, v in design.notes.items()))
    add("* Units: ohm, farad, henry, volt, second. Run: ngspice -b -r out.raw netlist.cir")
    add("")
    for i in range(1, d + 1):
        add(f"* cell {i}")
        c = design.c_cell_farad[i - 1]
        if c > 0:
            add(f"CC{i} n{i} 0 {fmt(c)}")
        l_h = design.l_henry if design.l_each_henry is None else design.l_each_henry[i - 1]
        r_o = design.r_ohm if design.r_each_ohm is None else design.r_each_ohm[i - 1]
        add(f"LL{i} n{i} 0 {fmt(l_h)} IC=0")
        add(f"RR{i} n{i} {'nz' + str(i) if design.has_noise else '0'} {fmt(r_o)}")
    if not switched:
        add("* ideal coupling capacitors CK<i>_<j> = -gamma A_ij")
        for i in range(1, d + 1):
            for j in range(i + 1, d + 1):
                c = design.c_coupling_farad[i - 1, j - 1]
                if c > 0:
                    add(f"CK{i}_{j} n{i} n{j} {fmt(c)}")
    else:
        add(f".model swbank SW(VT={fmt(design.v_control_v / 2)} VH=0 RON={fmt(design.r_on_ohm)} ROFF={fmt(design.r_off_ohm)})")
        for i in range(1, d + 1):
            for j in range(i + 1, d + 1):
                code = int(design.code[i - 1, j - 1])
                add(f"* bank {i}-{j}: code {code} = {code:0{design.bits}b}b")
                for k in range(design.bits):
                    tag = f"{i}_{j}_{k}"
                    on = (code >> k) & 1
                    add(f"CB{tag} n{i} s{tag} {fmt(design.bank_capacitor(i - 1, j - 1, k))}")
                    add(f"SB{tag} s{tag} n{j} c{tag} 0 swbank {'ON' if on else 'OFF'}")
                    add(f"VCTL{tag} c{tag} 0 DC {fmt(design.v_control_v if on else 0.0)}")
                    if design.c_parasitic_farad > 0:
                        add(f"CP{tag} s{tag} 0 {fmt(design.c_parasitic_farad)}")
    if design.has_noise:
        add("* injected noise: one filesource (noise_<i>.txt) per cell, in series with RR<i>")
        L.extend(format_noise_sources(d))
    add("")
    x0 = design.x0_v
    if np.any(x0 != 0):
        ics = [f"v(n{i})={fmt(x0[i - 1])}" for i in range(1, d + 1)]
        if switched:
            # on bit: the switch node sits at v_j; off bit: the capacitive divider C_k : c_par from v_i
            for i in range(1, d + 1):
                for j in range(i + 1, d + 1):
                    for k in range(design.bits):
                        ck = design.bank_capacitor(i - 1, j - 1, k)
                        on = (int(design.code[i - 1, j - 1]) >> k) & 1
                        v = x0[j - 1] if on else x0[i - 1] * ck / (ck + design.c_parasitic_farad)
                        ics.append(f"v(s{i}_{j}_{k})={fmt(v)}")
        add(".ic " + " ".join(ics))
    add(f".options reltol={fmt(sim.reltol)}")
    add(".save " + " ".join(f"v(n{i})" for i in range(1, d + 1)))
    add("* no .op: the inductors short DC (operating point v = 0)")
    if "tran" in sim.analyses:
        t_stop_s = sim.t_stop_tau * design.tau_s
        step_s = sample_dt_tau(design, cfg) * design.tau_s
        tmax = design.noise_dt_tau * design.tau_s
        add(f".tran {fmt(step_s)} {fmt(t_stop_s)} 0 {fmt(tmax)} uic")
    add(".end")
    return "\n".join(L) + "\n"
