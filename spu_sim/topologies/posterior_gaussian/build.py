"""Circuit of the posterior samplers (equations: spu_sim.topologies.posterior_gaussian.design).

Element and node names (i, j: 1-based parameter indices; k: 1-based data row):

    integrator i   opamp's ideal nullor integrator (VSUM<i>, FINT<i>, CF<i>, EOUT<i>): sum<i>, st<i>, x<i>
    inverter j     EINV<j>: xn<j> = -V(x<j>) (where a negative entry needs it)
    prior          RP<i>_<j>: from x<j> / xn<j> into sum<i> (the leak, P0 = prior precision)
    summer k       VRS<k> holds rs<k> at 0 V and senses the input current, FRS<k> drives it through
                   RF<k> (node rf<k>), ERS<k> buffers it onto r<k>: V(r<k>) = -R_f (input current);
                   with opamp.model: macro every op-amp is opamp's macromodel (tags I<i>, N<j>, S<k>, L<k>;
                   the summer's RF<k> then runs from r<k> to rs<k>, the line inverter is RL<k>A/B)
                   RX<k>_<j>: from x<j> / xn<j> into rs<k> (the array X); VY<k> + RY<k>: -y_k (gaussian)
    line output    gaussian: r<k>; logistic: the sigmoid element BSIG<k> (node s<k>, from r<k>)
                   ERN<k>: the inverted copy ln<k> = -(line output) where a feedback entry needs it
    feedback       RT<i>_<k>: from the line output or its copy into sum<i> (the array X^T)
    bias           VDAC<i> + RIN<i> into sum<i>
    noise          ANOISE<i> (filesource noise_<i>.txt) on nz<i>, RN<i> into sum<i>
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...circuit import CCCS, VCVS, Circuit, Comment, Resistor, VoltageSource
from ..base import CircuitRequest
from ..elements import header_tail, notes_lines
from ..noise_sources import noise_dacs
from ..opamp.build import ideal_integrator, ideal_inverter
from ..opamp.macro import macro_integrator, macro_inverter, macromodel

LineOutput = Callable[[object, int], tuple[list, str]]


def header(design) -> list[str]:
    desc = design.describe()
    H = [f"Posterior sampler ({design.model} model, data: {desc['data_source']}), d = {design.d} parameters,"
         f" n = {design.n} data rows; theta = s_th V(x<i>), temperature 1 (kappa = 1)",
         f"Scaling: s_th = {design.s_th:.6g} [theta]/V; line scale {design.s_line:.6g} per V;"
         f" tau = {design.tau_s:.6g} s; C_f = {design.c_nominal:.6g} F",
         f"Elements: {desc['n_resistors']} resistors in [{desc['r_min_used_ohm']:.6g}, {desc['r_max_used_ohm']:.6g}]"
         f" ohm; {design.n_opamps} op-amps ({'ideal nullors' if design.macro is None else 'macromodels'})"]
    if design.link is not None:
        H.append(f"Sigmoid element: {design.link} (full scale {design.v_sig:.6g} V)")
    if design.has_noise:
        H.append(f"Noise: filesources noise_<i>.txt, {design.noise_v_rms:.6g} V rms every"
                 f" {design.noise_dt_tau * design.tau_s:.6g} s ({design.noise_dt_tau:.6g} tau), through"
                 f" R_n = {float(design.r_n[0]):.6g} ohm")
    return H + header_tail(design, notes_lines(design.notes))


def macro_summer(design, k: int) -> list:
    """Summer k with opamp's macromodel (tag S<k>): inverting input rs<k>, output r<k>, RF<k> from r<k> to rs<k>."""
    m = design.macro
    return ([Comment(f"summer {k}: op-amp macromodel, RF{k} feedback")]
            + macromodel(m, f"S{k}", f"rs{k}", f"r{k}", float(m.offset_sum_v[k - 1]))
            + [Resistor(f"RF{k}", f"r{k}", f"rs{k}", float(design.r_f[k - 1]))])


def macro_line_inverter(design, k: int, node: str) -> list:
    """Line inverter k with opamp's macromodel (tag L<k>): ln<k> = -(R2/R1) V(node)."""
    m = design.macro
    return ([Resistor(f"RL{k}A", node, f"nl{k}", float(m.r_line_in_ohm[k - 1])),
             Resistor(f"RL{k}B", f"nl{k}", f"ln{k}", float(m.r_line_fb_ohm[k - 1]))]
            + macromodel(m, f"L{k}", f"nl{k}", f"ln{k}", float(m.offset_line_v[k - 1])))


def opamp_tags(design) -> list[str]:
    """Tags of every macromodel op-amp (integrators I, theta inverters N, summers S, line inverters L)."""
    if design.macro is None:
        return []
    return ([f"I{i}" for i in range(1, design.d + 1)]
            + [f"N{j}" for j in range(1, design.d + 1) if design.needs_inverter[j - 1]]
            + [f"S{k}" for k in range(1, design.n + 1)]
            + [f"L{k}" for k in range(1, design.n + 1) if design.line_needs_inverter[k - 1]])


def summer(k: int, r_f_ohm: float) -> list:
    """Inverting summing amplifier k with an ideal op-amp (nullor): V(r<k>) = -R_f (current into rs<k>)."""
    return [Comment(f"summer {k}"),
            VoltageSource(f"VRS{k}", f"rs{k}", "0", 0.0),
            CCCS(f"FRS{k}", f"rf{k}", "0", f"VRS{k}", 1.0),
            Resistor(f"RF{k}", f"rf{k}", "0", float(r_f_ohm)),
            VCVS(f"ERS{k}", f"r{k}", "0", f"rf{k}", "0", 1.0)]


def residual_output(design, k: int) -> tuple[list, str]:
    """The gaussian line output: the summer's node itself."""
    return [], f"r{k}"


def _array(prefix: str, r: np.ndarray, sign: np.ndarray, src, dst) -> list:
    E = []
    for a in range(r.shape[0]):
        for b in range(r.shape[1]):
            if np.isfinite(r[a, b]):
                E.append(Resistor(f"{prefix}{a + 1}_{b + 1}", src(b + 1, sign[a, b]), dst(a + 1), float(r[a, b])))
    return E


def build_circuit(design, request: CircuitRequest, line_output: LineOutput = residual_output) -> Circuit:
    """The whole posterior sampler for the requested analyses."""
    d, n = design.d, design.n
    E: list = []
    macro = design.macro is not None
    for i in range(1, d + 1):
        E.extend(macro_integrator(design, i) if macro else
                 ideal_integrator(i, float(design.c_f[i - 1]), float(design.x0_v[i - 1])))
    inv = design.needs_inverter
    if inv.any():
        E.append(Comment("unity-gain inverters: xn<j> = -V(x<j>)"))
        for j in range(1, d + 1):
            if inv[j - 1]:
                E.extend(macro_inverter(design, j) if macro else ideal_inverter(f"x{j}", f"xn{j}", f"EINV{j}"))
    theta = lambda j, s: f"x{j}" if s > 0 else f"xn{j}"  # noqa: E731
    E.append(Comment("prior precision: RP<i>_<j> into the integrators"))
    E.extend(_array("RP", design.r_p, design.sign_p, theta, lambda i: f"sum{i}"))
    outs: list[str] = []
    for k in range(1, n + 1):
        E.extend(macro_summer(design, k) if macro else summer(k, float(design.r_f[k - 1])))
        if np.isfinite(design.r_y[k - 1]):
            E.append(VoltageSource(f"VY{k}", f"dy{k}", "0", float(design.v_y[k - 1])))
            E.append(Resistor(f"RY{k}", f"dy{k}", f"rs{k}", float(design.r_y[k - 1])))
        extra, out = line_output(design, k)
        E.extend(extra)
        outs.append(out)
    E.append(Comment("the array X: RX<k>_<j> into the summers"))
    E.extend(_array("RX", design.r_x, design.sign_x, theta, lambda k: f"rs{k}"))
    linv = design.line_needs_inverter
    for k in range(1, n + 1):
        if linv[k - 1]:
            E.extend(macro_line_inverter(design, k, outs[k - 1]) if macro
                     else ideal_inverter(outs[k - 1], f"ln{k}", f"ERN{k}"))
    line = lambda k, s: outs[k - 1] if s > 0 else f"ln{k}"  # noqa: E731
    E.append(Comment("the array X^T: RT<i>_<k> feeds the lines back into the integrators"))
    E.extend(_array("RT", design.r_t, design.sign_t, line, lambda i: f"sum{i}"))
    if np.all(np.isfinite(design.r_in)):
        E.append(Comment("bias: DAC voltages through R_in"))
        for i in range(1, d + 1):
            E.append(VoltageSource(f"VDAC{i}", f"dac{i}", "0", float(design.v_dac[i - 1])))
            E.append(Resistor(f"RIN{i}", f"dac{i}", f"sum{i}", float(design.r_in[i - 1])))
    if design.has_noise and request.noise_u is not None:
        E.append(Comment("injected noise at temperature 1: one noise DAC per integrator, via RN<i>"))
        E.extend(noise_dacs(design.noise_v_rms * request.noise_u, design.noise_dt_tau * design.tau_s))
        for i in range(1, d + 1):
            E.append(Resistor(f"RN{i}", f"nz{i}", f"sum{i}", float(design.r_n[i - 1])))
    analyses = request.integrator_analyses(design.noise_dt_tau * design.tau_s if design.has_noise else None)
    return Circuit(title=f"spu-sim posterior sampler ({design.model}), d = {d}, n = {n}", header=header(design),
                   elements=E, readout_nodes=list(design.readout_nodes), analyses=analyses,
                   options={"reltol": request.reltol},
                   saves=[f"v(x{i})" for i in range(1, d + 1)] + [f"v(r{k})" for k in range(1, n + 1)]
                   + [f"v({o})" for o in outs if not o.startswith("r")] + [f"i(VO{t})" for t in opamp_tags(design)])
