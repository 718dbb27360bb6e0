"""Circuit of the factorised TNGD SPU (equations and scaling: spu_sim.topologies.opamp_factored.design).

Element and node names (i: 1..N variables, k, l: 1..m rows of J and H; 1-based):

    integrator i   VSUM<i> + FINT<i> + CF<i> + EOUT<i> (ideal op-amp written inline, parts.amplifiers.nullor_integrator),
                   nodes sum<i>, st<i>, x<i>
    summer u_k     VSU<k> (virtual ground su<k>, senses the input current) + FU<k> (CCCS pushing it through the
                   feedback resistor RFU<k>, node ru<k>: V = -R_fu I) + EU<k> (unity buffer, node u<k>): the
                   inverting summer with an infinite-gain op-amp, its output unaffected by the H array's load
    summer z_l     VSZ<l>, FZ<l>, RFZ<l>, EZ<l> likewise, nodes sz<l>, rz<l>, z<l>
    inverters      EINVX<j> xn<j> = -V(x<j>),  EINVU<k> un<k> = -V(u<k>),  EINVZ<l> zn<l> = -V(z<l>)  (only where
                   a negative entry needs them)
    J array        RJ<k>_<j>: x<j> (J_kj > 0) or xn<j> (J_kj < 0) -> su<k>
    H array        RH<l>_<k>: u<k> or un<k> -> sz<l>
    J^T array      RT<i>_<l>: z<l> or zn<l> -> sum<i>
    leak           RL<i>: x<i> -> sum<i>  (the damping lambda)
    input b        VDAC<i> (node dac<i>) and RIN<i> into sum<i>
    noise          ANOISE<i> (XSPICE filesource noise_<i>.txt) drives nz<i>; RN<i> into sum<i>

Why the ideal stages are written inline here, not as instances of SPU_OPAMP_IDEAL (the other topologies' ideal
op-amp subcircuit; with model: macro or subckt they are op-amp instances as everywhere): the TNGD circuit runs at
N up to 1e5 inside the training loop, and with the subcircuit's feedback capacitor C_f from x<i> to the virtual
ground the integrator outputs become the states, which moved the J crossbar out of the linear engine's dense
algebraic blocks: a factorised TNGD step at N = 4810, m = 320 took 2.4 s instead of 0.68 s CPU (measured on the
merged branches, 2026-12-06), and still 1.3-1.6x the inline form's with the engine's state-fed crossbar blocks
(engines/linear/state_blocks.py); the inline form holds the state on a grounded capacitor st<i> and is the same
equation.

Netlist layout for ngspice's Sparse 1.3 (ideal op-amps, N >= FANOUT_MIN_N): the u summers' virtual ground is
G = FANOUT_GROUPS parts su<k>p<g> (each VSU<k>_<g> senses its block of J resistors, every FU<k>_<g> pushes its
current into RFU<k> from node ru<k> to ground, and EU<k> buffers ru<k> onto u<k>: V(u<k>) = -R_fu I), and z<l> / zn<l> reach the J^T array through G ideal unity
buffers EBZ<l>_<g> / EBZN<l>_<g> (nodes z<l>b<g>, zn<l>b<g>): exactly the same equations (the currents add
in ru<k>; an ideal buffer is exact), but no node of the matrix has N entries. Measured (N = 1024, m = 32):
ngspice's matrix reordering (its spOrderAndFactor, the whole cost of a short run: the factorisation itself
takes 0.03 s) fell from 5.5 s to 1.2 s CPU; at N = 2048 from 93 s to 4.3 s. G = 8 was the best of the
counts tried (4, 6, 8, 12, 16, 32, 64; Sparse's Markowitz ordering is sensitive to it: 12 groups took 19 s at
N = 2048). With the macromodel the summing node is one op-amp input and stays whole.

With ideal op-amps the per-node parts (integrators, summers, inverters, the split summing nodes and buffers, leak, b
DACs, noise DACs) are element banks (spu_sim.circuit.ElementBank: the same elements, in the same netlist order, stated
as arrays), so the circuit holds no Python object per node for the linear engine and the writer to walk (measured at
N = 101,260, m = 640: docs/opamp_factored.md; the netlist text is byte-identical, the linear engine's matrices and
results bitwise identical).

With circuit.opamp.model = macro every integrator, summer and inverter is the op-amp macromodel of
spu_sim.parts.opamp (tags I<i>, U<k>, Z<l>, NX<j>, NU<k>, NZ<l>; the stages of spu_sim.parts.amplifiers): a summer
is the op-amp with RFU<k> from u<k> to su<k>; an inverter the op-amp with RI<tag>A (in) and RI<tag>B (feedback).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ...circuit import VCVS, Circuit, Comment, ElementBank, Resistor, Template
from ...parts.amplifiers import (integrator, macro_inverter, nullor_integrators, nullor_inverters, opamp_summer,
                                 sensed_ground, summer_templates)
from ...parts.dacs import b_dac_bank
from ...parts.opamp import cell_elements
from ...parts.element_table import ArrayInfo, MissingElement
from ...parts.noise_dacs import noise_dac_banks_into_sums
from ..base import CircuitRequest
from ..elements import header_tail, notes_lines
from .linear import array_elements, circuit_drift_factors, group_of, stage_maps

FANOUT_GROUPS = 8
FANOUT_MIN_N = 128


def fanout_groups(design) -> int:
    """How many parts the wide nodes are split into (module doc): 1 for the macromodel, small N or wires (a row line
    ends at one summing node)."""
    if getattr(design, "wires", None) is not None:
        return 1
    return FANOUT_GROUPS if design.macro is None and design.d >= FANOUT_MIN_N else 1


def header(design) -> list[str]:
    d = design.describe()
    H = ["Realises dx = -((J^T H J + lambda I) x - b) dt/tau + sqrt(2 kappa/tau) dW, x = s_x V(x<i>),"
         " u = J x = -s_u V(u<k>), z = H u = s_z V(z<l>).",
         f"Mapping: G_J = |J|/alpha_J, G_H = |H|/alpha_H, G_T = |J^T|/alpha_T, G_leak = lambda/alpha;"
         f" alpha_J = {design.alpha_j:.6g}, alpha_H = {design.alpha_h:.6g}, alpha_T = {design.alpha_t:.6g},"
         f" alpha = alpha_T s_z/s_x = {design.alpha:.6g} ohm*[A]",
         f"Scales: s_x = {design.s_x:.6g}, s_u = {design.s_u:.6g}, s_z = {design.s_z:.6g} per volt;"
         f" R_fu = {design.r_fu_nominal_ohm:.6g} ohm, R_fz = {design.r_fz_nominal_ohm:.6g} ohm;"
         f" tau = alpha C_f = {design.tau_s:.6g} s",
         f"Problem: N = {design.d}, m = {design.m}, damping = {design.problem.damping:.6g},"
         f" kappa = {design.problem.kappa:.6g}",
         f"Elements: {d['n_array_resistors']} array resistors (J {d['n_resistors_J']}, H {d['n_resistors_H']},"
         f" J^T {d['n_resistors_JT']}; m (m + 2N) = {d['n_array_resistors_dense_formula']}),"
         f" {d['n_resistors_total']} resistors in all, {d['n_inverters']} inverters, {2 * design.m} summers"]
    if design.has_noise:
        H.append(f"Noise: filesources noise_<i>.txt, {design.noise_v_rms:.6g} V rms every"
                 f" {design.noise_dt_tau:.6g} tau through R_noise = {float(design.r_noise_ohm[0]):.6g} ohm")
    return H + header_tail(design, notes_lines(design.notes))


def _summers(design, tag: str, r_f: np.ndarray, group: str, ic: np.ndarray, sense: bool = True) -> list:
    """The m summers of the u (tag "u") or z (tag "z") stage (module doc); sense=False: their virtual grounds are
    split (_split_summer_and_buffers). Ideal: one bank (cell k: VS<T><k>, F<T><k> when sensed, RF<T><k>, E<T><k>)."""
    m, T = design.macro, tag.upper()
    if m is None:          # ideal: written inline (module doc), its virtual ground sensed here unless split
        sensing = sensed_ground(f"VS{T}{{}}", f"F{T}{{}}", f"s{tag}{{}}", f"r{tag}{{}}") if sense else ()
        cell = sensing + summer_templates((f"RF{T}{{}}", f"E{T}{{}}"), f"r{tag}{{}}", f"{tag}{{}}", r_f)
        return [ElementBank((np.arange(1, len(r_f) + 1),), cell)]
    return [x for k in range(1, len(r_f) + 1)
            for x in opamp_summer(m, f"{T}{k}", f"s{tag}{k}", f"{tag}{k}", f"RF{T}{k}", float(r_f[k - 1]),
                                  m.offset_v[group][k - 1], float(ic[k - 1]), feedback_first=True)]


def _inverters(design, src: str, needs: np.ndarray, group: str, ic_v: np.ndarray) -> list:
    m = design.macro
    if m is None:   # ideal: one bank
        keys = np.flatnonzero(needs) + 1
        return [nullor_inverters((keys,), f"EINV{src.upper()}{{}}", f"{src}{{}}", f"{src}n{{}}")] if len(keys) else []
    E: list = []
    for j in np.flatnonzero(needs) + 1:
        tag = f"N{src.upper()}{j}"
        E += macro_inverter(m, tag, f"{src}{j}", f"ni{src}{j}", f"{src}n{j}", (f"RI{tag}A", f"RI{tag}B"),
                            m.r_inv_in_ohm[group][j - 1], m.r_inv_fb_ohm[group][j - 1], m.offset_v[group][j - 1],
                            -float(ic_v[j - 1]))
    return E


#: the three arrays: (design attribute, netlist prefix, factor name in ``realises``, pruned/dropped tag)
ARRAYS = (("r_j_ohm", "RJ", "J", "J"), ("r_h_ohm", "RH", "H", "H"), ("r_t_ohm", "RT", "J^T", "JT"))


def element_info(design) -> tuple[dict, list[MissingElement]]:
    """What the array resistors realise (spu_sim.parts.element_table): RJ<a>_<b> J[a,b], RH<a>_<b> H[a,b], RT<a>_<b>
    J^T[a,b] (1-based), with their nominal values; the pruned entries (a pruned J entry leaves both RJ and RT out)
    and the entries rounded to code 0 (r_bits) as missing rows."""
    info: dict = {prefix: ArrayInfo(factor + "[{i},{j}]", np.asarray(design.r_nominal.get(attr, getattr(design, attr))))
                  for attr, prefix, factor, _ in ARRAYS}
    missing = []
    by_tag = {tag: (prefix, factor) for _, prefix, factor, tag in ARRAYS}
    pruned = []
    for name, i, j in design.pruned:
        pruned.append((name, i, j))
        if name == "J":
            pruned.append(("JT", j, i))      # J's entries are kept or pruned in both arrays together
    for status, entries in (("pruned", pruned), ("dropped", design.dropped)):
        for tag, i, j in entries:
            prefix, factor = by_tag[tag]
            missing.append(MissingElement(f"{prefix}{i + 1}_{j + 1}", "resistor", "", f"{factor}[{i + 1},{j + 1}]",
                                          float("nan"), "ohm", status))
    return info, missing


def _split_summer_and_buffers(design, groups: int) -> list:
    """The split virtual grounds of the u summers and the buffers of the z outputs (module doc)."""
    n, m = design.d, design.m
    E: list = [Comment(f"layout: u summing nodes in {groups} parts, z outputs through {groups} unity buffers")]
    keys = (np.repeat(np.arange(1, m + 1), groups), np.tile(np.arange(groups), m))    # (k, g), k-major
    E.append(ElementBank(keys, sensed_ground("VSU{}_{}", "FU{}_{}", "su{}p{}", "ru{0}")))
    # a buffer per (z line l, row group g, sign) that feeds at least one J^T entry: any() per row group, in the order
    # (l, g, sign) (no index arrays of the m N entries)
    fin, neg = np.isfinite(design.r_t_ohm), design.s_t < 0   # both in r_t's layout (the transposed view of an m x N array)
    g_of = group_of(np.arange(n), n, groups)
    used = np.zeros((m, groups, 2), dtype=bool)
    for g in range(groups):
        sl = slice(int(np.searchsorted(g_of, g)), int(np.searchsorted(g_of, g, side="right")))
        f, ng = fin[sl], neg[sl]
        used[:, g, 0] = (f & ~ng).any(axis=0)
        used[:, g, 1] = (f & ng).any(axis=0)
    srcs = [(f"zn{l + 1}" if neg_k else f"z{l + 1}", g) for l, g, neg_k in zip(*(a.tolist() for a in np.nonzero(used)))]
    if srcs:
        E.append(ElementBank((np.arange(len(srcs)),), (Template(VCVS, dict(
            name=[f"EB{src.upper()}_{g}" for src, g in srcs], n_pos=[f"{src}b{g}" for src, g in srcs], n_neg="0",
            c_pos=[src for src, _ in srcs], c_neg="0", gain=1.0)),)))
    return E


def build_circuit(design, request: CircuitRequest) -> Circuit:
    """The whole factorised network for the requested analyses."""
    n, m_rows = design.d, design.m
    macro = design.macro
    if macro is not None:   # the summers' and inverters' initial outputs (ICs of the macromodels' poles only)
        pu, cu, pz, cz = stage_maps(design, True)[:4]
        vu0 = pu @ design.x0_v + cu
        vz0 = pz @ vu0 + cz
    else:
        vu0 = vz0 = np.zeros(m_rows)
    E: list = (cell_elements(macro) if macro is not None else []) + [Comment(f"{n} integrators")]
    if macro is None:   # one bank of n integrators (parts.amplifiers.nullor_integrators)
        E.append(nullor_integrators(np.arange(1, n + 1), design.c_f_farad[:n], design.x0_v[:n]))
    else:
        for i in range(1, n + 1):
            E += integrator(i, design.c_f_farad[i - 1], design.x0_v[i - 1], macro, macro.offset_v["int"][i - 1],
                            comment=False)
    E.append(Comment(f"{m_rows} summers u = J x (node u<k> = -u_k / s_u) and {m_rows} summers z = H u (z<l> = z_l / s_z)"))
    groups = fanout_groups(design)
    for tag, rf, grp, ic in (("u", design.r_fu_ohm, "sum_u", vu0), ("z", design.r_fz_ohm, "sum_z", vz0)):
        E += _summers(design, tag, np.asarray(rf[:m_rows], dtype=float), grp, ic, sense=not (tag == "u" and groups > 1))
    E.append(Comment("inverters: xn<j> = -V(x<j>), un<k> = -V(u<k>), zn<l> = -V(z<l>) (only where needed)"))
    E += _inverters(design, "x", design.inv_x, "inv_x", design.x0_v)
    E += _inverters(design, "u", design.inv_u, "inv_u", vu0)
    E += _inverters(design, "z", design.inv_z, "inv_z", vz0)
    E.append(Comment("J array RJ<k>_<j> (x -> su), H array RH<l>_<k> (u -> sz), J^T array RT<i>_<l> (z -> sum)"))
    if groups > 1:
        E += _split_summer_and_buffers(design, groups)
    if getattr(design, "wires", None) is not None:
        E.append(Comment("arrays on wires (circuit.wires): line nodes lc_<col>_<row>, lr_<row>_<col> (spu_sim.circuit)"))
        for key in ("J", "H", "T"):
            E += design.wired_arrays[key]
    else:
        E += array_elements("RJ", design.r_j_ohm, design.s_j, "x", "su", dst_groups=groups)
        E += array_elements("RH", design.r_h_ohm, design.s_h, "u", "sz")
        E += array_elements("RT", design.r_t_ohm, design.s_t, "z", "sum", src_groups=groups)
    if np.all(np.isfinite(design.r_leak_ohm)):
        E.append(Comment("damping leak RL<i>: x<i> -> sum<i>"))
        E.append(ElementBank.of(Resistor, np.arange(1, n + 1), name="RL{}", n_pos="x{}", n_neg="sum{}",
                                r_ohm=np.asarray(design.r_leak_ohm[:n], dtype=float)))
    if np.all(np.isfinite(design.r_in_ohm)):
        E.append(Comment("right-hand side b: DAC voltages through R_in"))
        E.append(b_dac_bank(design.v_dac_v, design.r_in_ohm))
    if design.has_noise and request.noise_u is not None:
        E.append(Comment("injected noise: one noise DAC per integrator via RN<i>"))
        E += noise_dac_banks_into_sums(design.noise_v_rms * request.noise_u, design.noise_dt_tau * design.tau_s,
                                       design.r_noise_ohm)
    analyses = request.integrator_analyses(design.noise_dt_tau * design.tau_s if design.has_noise else None)
    return Circuit(title=f"spu-sim factorised TNGD SPU, N = {n}, m = {m_rows}", header=header(design), elements=E,
                   readout_nodes=list(design.readout_nodes), analyses=analyses, options={"reltol": request.reltol},
                   saves=[f"v(x{i})" for i in range(1, n + 1)],
                   # ideal op-amps on ideal lines: the state equation in factors (the linear engine's method lowrank)
                   drift_factors=(partial(circuit_drift_factors, design)
                                  if macro is None and getattr(design, "wires", None) is None else None))
