"""ngspice netlist of the op-amp integrator SPU (see spu_sim.design.opamp for the equations).

Element and node names (i, j are 1-based variable indices):

    integrator i  VSUM<i> (virtual ground / current sense), FINT<i> + CF<i> (ideal integrator: the
                  sensed current charges the feedback capacitor), EOUT<i> (output buffer)
                  nodes sum<i> (summing node), st<i> (capacitor), x<i> (output V_i)
    inverter j    EINV<j>: node xn<j> = -V_j (only where some A_ij < 0)
    coupling      R<i>_<j>: from x<j> (A_ij > 0) or xn<j> (A_ij < 0) into sum<i>
    input b       VDAC<i> (node dac<i>) and RIN<i> into sum<i>
    noise         ANOISE<i> (XSPICE filesource reading noise_<i>.txt) drives nz<i>; RN<i> into sum<i>

The ideal op-amp is a nullor: VSUM holds the summing node at exactly 0 V and FINT passes the summed
current to CF, so C_f dV_i/dt = -I_sum,i with no gain error; EOUT buffers the capacitor so that loads do
not discharge it. This is exactly the inverting integrator with an infinite-gain op-amp.
"""

from __future__ import annotations

import numpy as np

from ..config import Config
from . import fmt, format_noise_sources, sample_dt_tau
from .opamp_macro import element_value, macro_integrator, macro_inverter, nonideal_header, saved_currents, supplies


def format_opamp_netlist(design, cfg: Config) -> str:
    """Standalone ngspice text; runs with `ngspice -b -r out.raw netlist.cir` in its folder."""
    d = design.d
    sim = cfg.simulation
    A = design.problem.A
    desc = design.describe()
    L: list[str] = []
    add = L.append
    add(f"* spu-sim op-amp integrator SPU, d = {d}")
    add("* Realises dx = -(A x - b) dt/tau + sqrt(2 kappa/tau) dW with x = s_x * V(x<i>).")
    add(f"* Mapping: G_ij = |A_ij| / alpha, alpha = {desc['alpha_ohm_units']:.6g} ohm*[A];"
        f" s_x = {desc['s_x_units_per_volt']:.6g} [x]/V; tau = alpha * C_f = {design.tau_s:.6g} s")
    add(f"* Problem: kappa = {design.problem.kappa:.6g}; max|A_ij| = {np.abs(A).max():.6g};"
        f" max|b_i| = {np.abs(design.problem.b).max():.6g}; cond(A) = {np.linalg.cond(A):.4g}")
    add(f"* Elements: C_f = {design.c_farad:.6g} F; {desc['n_resistors']} coupling resistors in"
        f" [{desc['r_coupling_min_ohm']:.6g}, {desc['r_coupling_max_ohm']:.6g}] ohm;"
        f" {desc['n_inverters']} inverters; R_in = {design.r_in_ohm:.6g} ohm")
    if design.has_noise:
        add(f"* Noise: filesources noise_<i>.txt: samples of {design.noise_v_rms:.6g} V rms every"
            f" {design.noise_dt_tau * design.tau_s:.6g} s ({design.noise_dt_tau:.6g} tau), linearly interpolated,"
            f" through R_noise = {design.r_noise_ohm:.6g} ohm")
    if design.pruned:
        add(f"* Pruned (no resistor, below prune_below_relative): {len(design.pruned)} entries")
    L.extend(nonideal_header(design))
    add("* Units: ohm, farad, volt, second. Run: ngspice -b -r out.raw netlist.cir")
    add("")
    macro = getattr(design, "macro", None)
    for i in range(1, d + 1):
        if macro is not None:
            L.extend(macro_integrator(design, i))
            continue
        add(f"* integrator {i}")
        add(f"VSUM{i} sum{i} 0 DC 0")
        add(f"FINT{i} st{i} 0 VSUM{i} 1")
        add(f"CF{i} st{i} 0 {fmt(element_value(design, 'c_f_farad', i - 1, design.c_farad))} IC={fmt(design.x0_v[i - 1])}")
        add(f"EOUT{i} x{i} 0 st{i} 0 1")
    inv = design.needs_inverter
    if inv.any():
        add("* unity-gain inverters: xn<j> = -V_j")
        for j in range(1, d + 1):
            if inv[j - 1] and macro is not None:
                L.extend(macro_inverter(design, j))
            elif inv[j - 1]:
                add(f"EINV{j} xn{j} 0 x{j} 0 -1")
    if macro is not None:
        L.extend(supplies(design))
    add("* coupling resistors R<i>_<j> realise A_ij")
    for i in range(1, d + 1):
        for j in range(1, d + 1):
            r = design.r_ohm[i - 1, j - 1]
            if np.isfinite(r):
                src = f"x{j}" if design.sign[i - 1, j - 1] > 0 else f"xn{j}"
                add(f"R{i}_{j} {src} sum{i} {fmt(r)}")
    if np.isfinite(design.r_in_ohm):
        add("* right-hand side b: DAC voltages through R_in")
        for i in range(1, d + 1):
            add(f"VDAC{i} dac{i} 0 DC {fmt(design.v_dac_v[i - 1])}")
            add(f"RIN{i} dac{i} sum{i} {fmt(element_value(design, 'r_in_each_ohm', i - 1, design.r_in_ohm))}")
    if design.has_noise:
        add("* injected noise: one noise DAC (XSPICE filesource reading noise_<i>.txt) per integrator, via RN<i>")
        L.extend(format_noise_sources(d))
        for i in range(1, d + 1):
            add(f"RN{i} nz{i} sum{i} {fmt(element_value(design, 'r_noise_each_ohm', i - 1, design.r_noise_ohm))}")
    add("")
    add(f".options reltol={fmt(sim.reltol)}")
    add(".save " + " ".join([f"v(x{i})" for i in range(1, d + 1)] + saved_currents(design)))
    if "op" in sim.analyses:
        add(".op")
    if "tran" in sim.analyses:
        t_stop_s = sim.t_stop_tau * design.tau_s
        step_s = sample_dt_tau(design, cfg) * design.tau_s
        tmax = design.noise_dt_tau * design.tau_s if design.has_noise else step_s * 10
        add(f".tran {fmt(step_s)} {fmt(t_stop_s)} 0 {fmt(tmax)} uic")
    add(".end")
    return "\n".join(L) + "\n"
