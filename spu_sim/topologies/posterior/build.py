"""Circuit of the posterior samplers (equations: spu_sim.topologies.posterior.design).

Element and node names (i, j: 1-based parameter indices; k: 1-based data row):

    integrator i   the integrator of spu_sim.parts.amplifiers: op-amp XI<i> (ideal: SPU_OPAMP_IDEAL) + CF<i> (x<i> -> sum<i>)
    inverter j     EINV<j>: xn<j> = -V(x<j>) (where a negative entry needs it)
    prior          RP<i>_<j>: from x<j> / xn<j> into sum<i> (the leak, P0 = prior precision)
    summer k       op-amp S<k> (ideal: XS<k>, inverting input rs<k>, output r<k>) with RF<k> from r<k> to rs<k>:
                   V(r<k>) = -R_f (input current);
                   with opamp.model: macro every op-amp is the macromodel of spu_sim.parts.opamp (tags I<i>, N<j>, S<k>, L<k>;
                   the line inverter is then RL<k>A/B)
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

from ...circuit import Circuit, Comment, Resistor
from ...parts.amplifiers import integrator, macro_inverter, nullor_inverter, opamp_summer
from ...parts.dacs import b_dacs, resistor_dac
from ...parts.element_table import ElementInfo, MissingElement
from ...parts.noise_dacs import noise_dacs_into_sums
from ...parts.opamp import cell_elements, output_current_saves
from ..base import CircuitRequest
from ..elements import header_tail, notes_lines

LineOutput = Callable[[object, int], tuple[list, str]]


def header(design) -> list[str]:
    desc = design.describe()
    H = [f"Posterior sampler ({design.model} model, data: {desc['data_source']}), d = {design.d} parameters,"
         f" n = {design.n} data rows; theta = s_th V(x<i>), temperature 1 (kappa = 1)",
         f"Scaling: s_th = {design.s_th:.6g} [theta]/V; line scale {design.s_line:.6g} per V;"
         f" tau = {design.tau_s:.6g} s; C_f = {design.c_nominal:.6g} F",
         f"Elements: {desc['n_resistors']} resistors in [{desc['r_min_used_ohm']:.6g}, {desc['r_max_used_ohm']:.6g}]"
         f" ohm; {design.n_opamps} op-amps ({'ideal nullors' if design.macro is None else 'macromodels' if design.macro.cell is None else 'subcircuit X<tag> instances of ' + design.macro.cell.name})"]
    if design.link is not None:
        H.append(f"Sigmoid element: {design.link} (full scale {design.v_sig:.6g} V)")
    if design.has_noise:
        H.append(f"Noise: filesources noise_<i>.txt, {design.noise_v_rms:.6g} V rms every"
                 f" {design.noise_dt_tau * design.tau_s:.6g} s ({design.noise_dt_tau:.6g} tau), through"
                 f" R_n = {float(design.r_n[0]):.6g} ohm")
    return H + header_tail(design, notes_lines(design.notes))


def line_inverter(design, k: int, node: str) -> list:
    """Line inverter k: ln<k> = -V(node); with the macromodel op-amp L<k> (ln<k> = -(R2/R1) V(node))."""
    m = design.macro
    if m is None:
        return nullor_inverter(f"ERN{k}", node, f"ln{k}")
    return macro_inverter(m, f"L{k}", node, f"nl{k}", f"ln{k}", (f"RL{k}A", f"RL{k}B"), m.r_line_in_ohm[k - 1],
                          m.r_line_fb_ohm[k - 1], m.offset_line_v[k - 1])


def theta_inverter(design, j: int) -> list:
    """Inverter j of theta: xn<j> = -V(x<j>); with the macromodel op-amp N<j> (as topology opamp's)."""
    m = design.macro
    if m is None:
        return nullor_inverter(f"EINV{j}", f"x{j}", f"xn{j}")
    return ([Comment(f"inverter {j}: op-amp macromodel, RI{j}A in, RI{j}B feedback")]
            + macro_inverter(m, f"N{j}", f"x{j}", f"ni{j}", f"xn{j}", (f"RI{j}A", f"RI{j}B"), m.r_inv_in_ohm[j - 1],
                             m.r_inv_fb_ohm[j - 1], m.offset_inv_v[j - 1], -float(design.x0_v[j - 1])))


def opamp_tags(design) -> list[str]:
    """Tags of every macromodel op-amp (integrators I, theta inverters N, summers S, line inverters L)."""
    if design.macro is None:
        return []
    return ([f"I{i}" for i in range(1, design.d + 1)]
            + [f"N{j}" for j in range(1, design.d + 1) if design.needs_inverter[j - 1]]
            + [f"S{k}" for k in range(1, design.n + 1)]
            + [f"L{k}" for k in range(1, design.n + 1) if design.line_needs_inverter[k - 1]])


def summer(design, k: int) -> list:
    """Inverting summing amplifier k: V(r<k>) = -R_f (current into rs<k>); with the macromodel op-amp S<k> and RF<k>
    from r<k> to rs<k>."""
    m, r_f = design.macro, float(design.r_f[k - 1])
    kind = f"ideal op-amp XS{k}" if m is None else "op-amp macromodel" if m.cell is None else f"op-amp subcircuit XS{k}"
    return ([Comment(f"summer {k}: {kind}, RF{k} feedback")]
            + opamp_summer(m, f"S{k}", f"rs{k}", f"r{k}", f"RF{k}", r_f, 0.0 if m is None else m.offset_sum_v[k - 1]))


def residual_output(design, k: int) -> tuple[list, str]:
    """The gaussian line output: the summer's node itself."""
    return [], f"r{k}"


#: the programmable arrays: (design attribute, netlist prefix, name in the design's pruned / dropped lists)
ARRAYS = (("r_p", "RP", "prior_precision"), ("r_x", "RX", "X"), ("r_t", "RT", "X^T"))


def element_info(design) -> tuple[dict[str, ElementInfo], list[MissingElement]]:
    """What the array resistors realise (spu_sim.parts.element_table): RP<a>_<b> the prior precision [a,b],
    RX<a>_<b> X[a,b], RT<a>_<b> X^T[a,b] (1-based), with nominal values; pruned and dropped entries as missing rows."""
    info: dict[str, ElementInfo] = {}
    for attr, prefix, name in ARRAYS:
        nominal = design.r_nominal.get(attr, getattr(design, attr))
        for a, b in zip(*np.nonzero(np.isfinite(nominal))):
            info[f"{prefix}{a + 1}_{b + 1}"] = ElementInfo(f"{name}[{a + 1},{b + 1}]", float(nominal[a, b]))
    prefix_of = {name: prefix for _, prefix, name in ARRAYS}
    missing = [MissingElement(f"{prefix_of[name]}{i + 1}_{j + 1}", "resistor", "", f"{name}[{i + 1},{j + 1}]",
                              float("nan"), "ohm", status)
               for status, entries in (("pruned", design.pruned), ("dropped", design.dropped))
               for name, (i, j) in entries]
    return info, missing


def _array(prefix: str, r: np.ndarray, sign: np.ndarray, src, dst) -> list:
    E = []
    for a in range(r.shape[0]):
        for b in range(r.shape[1]):
            if np.isfinite(r[a, b]):
                E.append(Resistor(f"{prefix}{a + 1}_{b + 1}", src(b + 1, sign[a, b]), dst(a + 1), float(r[a, b])))
    return E


def _wired(design, attr: str) -> list:
    """The array attr (r_p, r_x, r_t) as its crossbars on lines (design.wired_arrays; circuit.wires), [] on ideal
    lines."""
    return [arr for _, arr in design.wired_arrays.get(attr, [])]


def build_circuit(design, request: CircuitRequest, line_output: LineOutput = residual_output) -> Circuit:
    """The whole posterior sampler for the requested analyses."""
    d, n = design.d, design.n
    macro = design.macro
    E: list = cell_elements(macro)
    for i in range(1, d + 1):
        E.extend(integrator(i, design.c_f[i - 1], design.x0_v[i - 1], macro,
                            0.0 if macro is None else macro.offset_int_v[i - 1]))
    inv = design.needs_inverter
    if inv.any():
        E.append(Comment("unity-gain inverters: xn<j> = -V(x<j>)"))
        for j in range(1, d + 1):
            if inv[j - 1]:
                E.extend(theta_inverter(design, j))
    theta = lambda j, s: f"x{j}" if s > 0 else f"xn{j}"  # noqa: E731
    E.append(Comment("prior precision: RP<i>_<j> into the integrators"))
    E.extend(_wired(design, "r_p") or _array("RP", design.r_p, design.sign_p, theta, lambda i: f"sum{i}"))
    outs: list[str] = []
    for k in range(1, n + 1):
        E.extend(summer(design, k))
        if np.isfinite(design.r_y[k - 1]):
            E.extend(resistor_dac(f"VY{k}", f"RY{k}", f"dy{k}", f"rs{k}", design.v_y[k - 1], design.r_y[k - 1]))
        extra, out = line_output(design, k)
        E.extend(extra)
        outs.append(out)
    E.append(Comment("the array X: RX<k>_<j> into the summers"))
    E.extend(_wired(design, "r_x") or _array("RX", design.r_x, design.sign_x, theta, lambda k: f"rs{k}"))
    linv = design.line_needs_inverter
    for k in range(1, n + 1):
        if linv[k - 1]:
            E.extend(line_inverter(design, k, outs[k - 1]))
    line = lambda k, s: outs[k - 1] if s > 0 else f"ln{k}"  # noqa: E731
    E.append(Comment("the array X^T: RT<i>_<k> feeds the lines back into the integrators"))
    if design.wires is not None and outs != list(design.line_sources[0]):
        raise ValueError(f"posterior circuit: line outputs {outs[:3]}... differ from the wired X^T array's columns")
    E.extend(_wired(design, "r_t") or _array("RT", design.r_t, design.sign_t, line, lambda i: f"sum{i}"))
    if np.all(np.isfinite(design.r_in)):
        E.append(Comment("bias: DAC voltages through R_in"))
        E.extend(b_dacs(design.v_dac, design.r_in))
    if design.has_noise and request.noise_u is not None:
        E.append(Comment("injected noise at temperature 1: one noise DAC per integrator, via RN<i>"))
        E.extend(noise_dacs_into_sums(design.noise_v_rms * request.noise_u, design.noise_dt_tau * design.tau_s,
                                      design.r_n))
    analyses = request.integrator_analyses(design.noise_dt_tau * design.tau_s if design.has_noise else None)
    return Circuit(title=f"spu-sim posterior sampler ({design.model}), d = {d}, n = {n}", header=header(design),
                   elements=E, readout_nodes=list(design.readout_nodes), analyses=analyses,
                   options={"reltol": request.reltol},
                   saves=[f"v(x{i})" for i in range(1, d + 1)] + [f"v(r{k})" for k in range(1, n + 1)]
                   + [f"v({o})" for o in outs if not o.startswith("r")] + output_current_saves(macro, opamp_tags(design)),
                   optional_saves=output_current_saves(macro, opamp_tags(design)))
