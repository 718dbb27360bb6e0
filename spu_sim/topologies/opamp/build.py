"""Circuit of the op-amp integrator SPU (see spu_sim.topologies.opamp.design for the equations).

Element and node names (i, j are 1-based variable indices):

    integrator i  XI<i> (the ideal op-amp: an instance of SPU_OPAMP_IDEAL, pins 0 sum<i> x<i>) + CF<i> (feedback
                  capacitor, x<i> -> sum<i>); nodes sum<i> (summing node), x<i> (output V_i)
    inverter j    EINV<j>: node xn<j> = -V_j (only where some A_ij < 0)
    coupling      R<i>_<j>: from x<j> (A_ij > 0) or xn<j> (A_ij < 0) into sum<i>
    input b       VDAC<i> (node dac<i>) and RIN<i> into sum<i>
    noise         ANOISE<i> (XSPICE filesource reading noise_<i>.txt) drives nz<i>; RN<i> into sum<i>

The ideal op-amp is a nullor (spu_sim.parts.opamp.ideal_subckt): it holds the summing node at V(inp) = 0 V and
takes no input current, so the summed current flows through CF and C_f dV_i/dt = -I_sum,i with no gain error;
its output drives any load. This is exactly the inverting integrator with an infinite-gain op-amp.

With circuit.opamp.model = macro (spu_sim.parts.opamp): integrator i is op-amp I<i> with CF<i> from x<i> to
sum<i>; inverter j is op-amp N<j> with RI<j>A (x<j> -> ni<j>) and RI<j>B (ni<j> -> xn<j>) (spu_sim.parts.amplifiers).
"""

from __future__ import annotations

import numpy as np

from ...circuit import Circuit, Comment, ResistorArray
from ...parts.amplifiers import integrator, macro_inverter, nullor_inverter
from ...parts.dacs import b_dacs
from ...parts.element_table import ArrayInfo, ElementInfo, MissingElement
from ...parts.noise_dacs import noise_dacs_into_sums
from ...parts.opamp import cell_elements, output_current_saves
from ..base import CircuitRequest
from ..elements import header_tail, nonideal_header
from .design import EXACT_SPECTRUM_MAX_D


def header(design) -> list[str]:
    """The comment lines at the top of the netlist: what it realises and the mapping."""
    A = design.problem.A
    desc = design.describe()
    H = ["Realises dx = -(A x - b) dt/tau + sqrt(2 kappa/tau) dW with x = s_x * V(x<i>).",
         f"Mapping: G_ij = |A_ij| / alpha, alpha = {desc['alpha_ohm_units']:.6g} ohm*[A];"
         f" s_x = {desc['s_x_units_per_volt']:.6g} [x]/V; tau = alpha * C_f = {design.tau_s:.6g} s",
         f"Problem: kappa = {design.problem.kappa:.6g}; max|A_ij| = {np.abs(A).max():.6g};"
         f" max|b_i| = {np.abs(design.problem.b).max():.6g}; cond(A realised) = {design.cond_realized:.4g}"
         + (" (1-norm estimate)" if design.d > EXACT_SPECTRUM_MAX_D else ""),
         f"Elements: C_f = {design.c_farad:.6g} F; {desc['n_resistors']} coupling resistors in"
         f" [{desc['r_coupling_min_ohm']:.6g}, {desc['r_coupling_max_ohm']:.6g}] ohm;"
         f" {desc['n_inverters']} inverters; R_in = {design.r_in_ohm:.6g} ohm"]
    if design.has_noise:
        H.append(f"Noise: filesources noise_<i>.txt: samples of {design.noise_v_rms:.6g} V rms every"
                 f" {design.noise_dt_tau * design.tau_s:.6g} s ({design.noise_dt_tau:.6g} tau), linearly interpolated,"
                 f" through R_noise = {design.r_noise_ohm:.6g} ohm")
    dropped = getattr(design, "dropped", [])
    extra = ([f"Dropped (conductance rounds to code 0 at r_bits = {design.codes['R'][1]}): {len(dropped)} entries"]
             if dropped else [])
    return H + header_tail(design, extra + nonideal_header(design))


def _code(design, group: str, index) -> tuple[int | None, int | None]:
    """(code, bits) of an element of a quantised group (NonidealOpampDesign.codes), else (None, None)."""
    got = getattr(design, "codes", {}).get(group)
    return (None, None) if got is None else (int(got[0][index]), got[1])


def element_info(design) -> tuple[dict, list[MissingElement]]:
    """What each element realises (spu_sim.parts.element_table): R<i>_<j> A[i,j] (fed by x<j> or xn<j>: its nodes), RIN<i> and
    VDAC<i> b[i], RN<i> and ANOISE<i> the noise of x<i>, CF<i> the integrator capacitor, with nominal values and
    codes; the pruned and dropped entries as missing rows."""
    d = design.d
    r_nom = getattr(design, "r_nominal_ohm", None)
    r_nom = design.r_ohm if r_nom is None else r_nom
    v_nom = getattr(design, "v_dac_nominal_v", None)
    v_nom = design.v_dac_v if v_nom is None else v_nom
    codes = getattr(design, "codes", {}).get("R")
    info: dict = {"R": ArrayInfo("A[{i},{j}]", np.asarray(r_nom), *(codes if codes is not None else (None, None)))}
    for i in range(d):
        k = i + 1
        info[f"RIN{k}"] = ElementInfo(f"b[{k}] input resistor", float(design.r_in_ohm), *_code(design, "RIN", i))
        info[f"VDAC{k}"] = ElementInfo(f"b[{k}] DAC voltage", float(v_nom[i]), *_code(design, "VDAC", i))
        info[f"RN{k}"] = ElementInfo(f"noise of x{k} (R_noise)", float(design.r_noise_ohm))
        info[f"ANOISE{k}"] = ElementInfo(f"noise of x{k} (noise DAC, {design.noise_v_rms:.6g} V rms)")
        info[f"CF{k}"] = ElementInfo(f"integrator {k} feedback capacitor (tau = alpha C_f)", float(design.c_farad),
                                     *_code(design, "CF", i))
    missing = []
    for status, entries in (("pruned", design.pruned), ("dropped", getattr(design, "dropped", []))):
        for i, j in entries:
            src = "x" if design.sign[i, j] > 0 else "xn"
            missing.append(MissingElement(f"R{i + 1}_{j + 1}", "resistor", f"{src}{j + 1} sum{i + 1}",
                                          f"A[{i + 1},{j + 1}]", float(design.alpha / abs(design.problem.A[i, j])), "ohm", status,
                                          *_code(design, "R", (i, j))))
    return info, missing


def element_value(design, attr: str, index: int, default: float) -> float:
    """A per-element realised value if the design has one (NonidealOpampDesign), else the nominal scalar."""
    arr = getattr(design, attr, None)
    return default if arr is None else float(arr[index])


def element_values(design, attr: str, default: float) -> list[float]:
    """element_value of every variable i = 0..d-1."""
    return [element_value(design, attr, i, default) for i in range(design.d)]


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


def coupling_arrays(r_ohm: np.ndarray, sign: np.ndarray, prefix: str = "R",
                    wires: tuple[float, float] | None = None) -> list[ResistorArray]:
    """The coupling crossbars <prefix><i>_<j> into sum<i>: from x<j> where sign > 0, from xn<j> where sign < 0
    (r_ohm inf: no resistor). One name per (i, j): the two crossbars' entries are complementary. wires:
    (r_wire_ohm, c_wire_farad) per segment (circuit.wires), None = ideal lines; each of the two crossbars is then
    its own array of lines (column lines from x<j> or xn<j>, row lines ending at sum<i>)."""
    d_rows, d_cols = r_ohm.shape
    rows = tuple(f"sum{i}" for i in range(1, d_rows + 1))
    present = np.isfinite(r_ohm)
    out = []
    for tag, mask in (("", sign > 0), ("n", sign < 0)):
        if (mask & present).any():
            arr = ResistorArray(prefix, rows, tuple(f"x{tag}{j}" for j in range(1, d_cols + 1)),
                                _where_inf(mask, r_ohm), **wire_fields(wires))
            out.append(arr)
    return out


def wire_fields(wires: tuple[float, float] | None) -> dict[str, float]:
    """The ResistorArray keyword arguments of (r_wire_ohm, c_wire_farad) or None (ideal lines: none)."""
    return {} if wires is None else {"r_wire_ohm": wires[0], "c_wire_farad": wires[1]}


def _where_inf(mask: np.ndarray, r_ohm: np.ndarray) -> np.ndarray:
    """r_ohm where mask, inf elsewhere: for positive values r / mask (r / 0 = inf; branch-free: a random sign
    pattern makes np.where 4 ms at d = 1000, this 0.6 ms); np.where otherwise."""
    if (r_ohm > 0).all():
        with np.errstate(divide="ignore"):
            return r_ohm / mask
    return np.where(mask, r_ohm, np.inf)


def build_circuit(design, request: CircuitRequest) -> Circuit:
    """The whole op-amp integrator network for the requested analyses."""
    d = design.d
    macro = design.macro
    E: list = cell_elements(macro)
    add = E.append
    for i in range(1, d + 1):
        E.extend(integrator(i, element_value(design, "c_f_farad", i - 1, design.c_farad), float(design.x0_v[i - 1]),
                            macro, 0.0 if macro is None else macro.offset_int_v[i - 1]))
    inv = design.needs_inverter
    if inv.any():
        add(Comment("unity-gain inverters: xn<j> = -V_j"))
        for j in range(1, d + 1):
            if inv[j - 1] and macro is not None:
                add(Comment(f"inverter {j}: op-amp {'macromodel' if macro.cell is None else 'subcircuit XN' + str(j)}, RI{j}A in, RI{j}B feedback"))
                E.extend(macro_inverter(macro, f"N{j}", f"x{j}", f"ni{j}", f"xn{j}", (f"RI{j}A", f"RI{j}B"),
                                        macro.r_inv_in_ohm[j - 1], macro.r_inv_fb_ohm[j - 1], macro.offset_inv_v[j - 1],
                                        -float(design.x0_v[j - 1])))
            elif inv[j - 1]:
                E.extend(nullor_inverter(f"EINV{j}", f"x{j}", f"xn{j}"))
    if macro is not None and macro.cell is None:
        E.extend(supplies(design))
    add(Comment("coupling resistors R<i>_<j> realise A_ij: a crossbar from x<j> (A_ij > 0), one from xn<j> (A_ij < 0)"))
    E.extend(getattr(design, "wired_arrays", None) or coupling_arrays(design.r_ohm, design.sign))
    if np.isfinite(design.r_in_ohm):
        add(Comment("right-hand side b: DAC voltages through R_in"))
        E.extend(b_dacs(design.v_dac_v, element_values(design, "r_in_each_ohm", design.r_in_ohm)))
    if design.has_noise and request.noise_u is not None:
        add(Comment("injected noise: one noise DAC (XSPICE filesource reading noise_<i>.txt) per integrator, via RN<i>"))
        E.extend(noise_dacs_into_sums(design.noise_v_rms * request.noise_u, design.noise_dt_tau * design.tau_s,
                                      element_values(design, "r_noise_each_ohm", design.r_noise_ohm)))
    analyses = request.integrator_analyses(design.noise_dt_tau * design.tau_s if design.has_noise else None)
    return Circuit(title=f"spu-sim op-amp integrator SPU, d = {d}", header=header(design), elements=E,
                   readout_nodes=list(design.readout_nodes), analyses=analyses, options={"reltol": request.reltol},
                   saves=[f"v(x{i})" for i in range(1, d + 1)] + output_current_saves(macro, opamp_tags(design)),
                   optional_saves=output_current_saves(macro, opamp_tags(design)))
