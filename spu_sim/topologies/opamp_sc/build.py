"""Circuit of the switched-capacitor op-amp integrator SPU (equations: spu_sim.topologies.opamp_sc.design).

Element and node names (i, j 1-based; branch tag t = <i>_<j> for coupling, <i>_b for b, <i>_n for noise):

    integrator i  as topology opamp: op-amp I<i> (ideal: instance XI<i> of SPU_OPAMP_IDEAL) with CF<i> from x<i> to
                  sum<i> (spu_sim.parts.amplifiers); nodes sum<i> (virtual ground), x<i> (output V_i)
    clock         VPHI1 / VPHI2: PULSE sources on nodes phi1 / phi2, two non-overlapping phases; model swsc
    branch t      SA<t> source -> a<t>; SG<t> a<t> -> ground; SP<t> p<t> -> ground (phase 1);
                  SV<t> p<t> -> sum<i> (phase 2). Delay-free (A_ij > 0, b, noise): SA on phase 2, SG on
                  phase 1; delaying (A_ij < 0): SA on phase 1, SG on phase 2.
                  bank CB<t>_<k> (set bits k) from c<t> to p<t>; CPB<t> bottom-plate parasitic p<t> -> 0
                  (every bit's, set or not); CPT<t> top-plate parasitic a<t> -> 0
                  AKTC<t>: held kT/C source (filesource ktc_<t>.txt) from a<t> to c<t>, a fresh
                  N(0, kT/C) value per phase (c<t> is a<t> without kT/C noise)
                  CFT<switch>A / B: clock feedthrough + charge injection capacitors (gate to the terminals
                  that no ideal source holds: a<t>, p<t>, sum<i>)
    b             VDAC<i> on dac<i> -> branch <i>_b
    noise         ANOISE<i>: held noise DAC on nz<i> (noise_<i>.txt, one sample per period) -> branch <i>_n

Clock timing, period T: phase 1 closed on about [nT + t_no/2, nT + T/2 - t_no/2], phase 2 on
[nT + T/2 + t_no/2, (n+1)T - t_no/2]; the held sources change at the gap centres k T/2 while every
capacitor they touch floats, and the readout grid t = nT lies in a gap: the samples are the states V[n].
"""

from __future__ import annotations

import numpy as np

from ...circuit import Capacitor, Circuit, Comment, NoiseSource, PulseVoltageSource, Switch, SwitchModel, Tran
from ...parts.amplifiers import integrator
from ...parts.dacs import dac
from ...parts.element_table import ElementInfo, MissingElement
from ...parts.element_values import group_rng
from ...parts.noise_dacs import noise_dacs
from ...parts.opamp import cell_elements, output_current_saves
from ..base import CircuitRequest
from ..elements import header_tail, nonideal_header
from .design import OpampScDesign, bit_mask

SWITCH_MODEL = "swsc"


def header(design: OpampScDesign) -> list[str]:
    desc = design.describe()
    sc = design.sc
    H = ["Realises x[n+1] = (I + hA+)^-1 ((I + hA-) x[n] + h b + noise) every clock period (h = 1/f_clk_tau tau),",
         "  the clocked form of dx = -(A x - b) dt/tau + sqrt(2 kappa/tau) dW, x = s_x V(x<i>)",
         f"Clock: f_clk = {sc.f_clk_hz:.6g} Hz, f_clk tau = {sc.f_clk_tau:.6g}, tau = {design.tau_s:.6g} s,"
         f" non-overlap {sc.t_nonoverlap_s:.3g} s, edges {sc.t_edge_s:.3g} s, {sc.v_clk_v:.3g} V",
         f"Banks: {design.bits} bits of {sc.c_unit_farad:.6g} F; C_f = {design.c_f_nominal_farad:.6g} F;"
         f" {desc['n_delay_free']} delay-free + {desc['n_delaying']} delaying branches; s_x = {design.s_x:.6g} [x]/V",
         f"Switches: RON = {sc.r_on_ohm:.6g}, ROFF = {sc.r_off_ohm:.6g} ohm; bottom plate {sc.c_bottom_plate_rel:.3g} C,"
         f" top plate {sc.c_top_plate_farad:.3g} F",
         f"Noise: injected {design.injected} (held DAC of {design.noise_v_rms:.6g} V rms per period), kT/C {design.ktc}"
         f" (kT = {design.kt_joule:.6g} J, held per phase)",
         "No .op: a switched-capacitor branch has no DC path (the clocked circuit has no operating point)."]
    if design.dropped:
        H.append(f"Dropped (code 0 at {design.bits} bits): {len(design.dropped)} entries")
    return H + header_tail(design, nonideal_header(design))


def clocks(design: OpampScDesign) -> list:
    """Two non-overlapping phases; the switch threshold (v_clk / 2) is crossed mid-edge."""
    sc = design.sc
    T, tr, tno = design.period_s, sc.t_edge_s, sc.t_nonoverlap_s
    width = 0.5 * T - tno - tr
    return [Comment("two-phase non-overlapping clock"),
            PulseVoltageSource("VPHI1", "phi1", "0", 0.0, sc.v_clk_v, 0.5 * tno, tr, tr, width, T),
            PulseVoltageSource("VPHI2", "phi2", "0", 0.0, sc.v_clk_v, 0.5 * T + 0.5 * tno, tr, tr, width, T),
            SwitchModel(SWITCH_MODEL, 0.5 * sc.v_clk_v, 0.0, sc.r_on_ohm, sc.r_off_ohm)]


def _switch(name: str, n1: str, n2: str, phase: str, c_ft: float, ft1: bool = True, ft2: bool = True) -> list:
    """A clocked switch and its feedthrough capacitors (phase node to terminal) on the terminals that are not
    held by an ideal source (ft1 / ft2): on an ideal source they would only carry source current, and their
    current impulses at a held source's steps stall ngspice's step control."""
    E: list = [Switch(name, n1, n2, phase, "0", SWITCH_MODEL, False)]
    if c_ft > 0:
        E += [Capacitor(f"CFT{name}{s}", phase, n, c_ft) for s, n, on in (("A", n1, ft1), ("B", n2, ft2)) if on]
    return E


def branch(design: OpampScDesign, tag: str, i: int, source: str, caps: list[float], c_all: float,
           delay_free: bool, ktc_samples: np.ndarray | None, dt_half_s: float) -> list:
    """One parasitic-insensitive SC branch into sum<i> (module doc)."""
    sc = design.sc
    c_ft = sc.c_overlap_farad + sc.q_injection_c / (2.0 * sc.v_clk_v)
    a, p = f"a{tag}", f"p{tag}"
    top = f"c{tag}" if ktc_samples is not None else a
    ph_in, ph_gnd = ("phi2", "phi1") if delay_free else ("phi1", "phi2")
    E: list = [Comment(f"branch {tag}: {'delay-free inverting' if delay_free else 'delaying non-inverting'}"
                       f" from {source}")]
    E += _switch(f"SA{tag}", source, a, ph_in, c_ft, ft1=False)
    E += _switch(f"SG{tag}", a, "0", ph_gnd, c_ft, ft2=False)
    E += _switch(f"SP{tag}", p, "0", "phi1", c_ft, ft2=False)
    E += _switch(f"SV{tag}", p, f"sum{i}", "phi2", c_ft)
    if ktc_samples is not None:
        E.append(NoiseSource(f"AKTC{tag}", a, f"ktcsrc{tag}", f"ktc_{tag}.txt", ktc_samples, dt_half_s, held=True,
                             n_neg=top))
    for k, c in enumerate(caps):
        if c > 0:
            E.append(Capacitor(f"CB{tag}_{k}", top, p, float(c), ic_v=0.0))
    if sc.c_bottom_plate_rel > 0:
        E.append(Capacitor(f"CPB{tag}", p, "0", float(sc.c_bottom_plate_rel * c_all)))
    if sc.c_top_plate_farad > 0:
        E.append(Capacitor(f"CPT{tag}", a, "0", float(sc.c_top_plate_farad)))
    return E


def element_info(design: OpampScDesign) -> tuple[dict[str, ElementInfo], list[MissingElement]]:
    """What each bank capacitor realises (spu_sim.parts.element_table): CB<i>_<j>_<k>, bit k of the bank of A[i,j]
    (code and bits the bank's; nominal the unit capacitor times 2^k), and the dropped entries (code 0: no branch)."""
    info: dict[str, ElementInfo] = {}
    unit = design.sc.c_unit_farad
    for i, j in zip(*np.nonzero(design.code)):
        for k in range(design.bits):
            info[f"CB{i + 1}_{j + 1}_{k}"] = ElementInfo(f"A[{i + 1},{j + 1}] bank bit {k}", unit * 2.0 ** k,
                                                        int(design.code[i, j]), design.bits)
    missing = [MissingElement(f"CB{i + 1}_{j + 1}", "capacitor bank", f"x{j + 1} sum{i + 1}",
                              f"A[{i + 1},{j + 1}]", float("nan"), "F", "dropped", 0, design.bits)
               for i, j in design.dropped]
    return info, missing


def _ktc(design: OpampScDesign, tag: str, c: float, n_half: int) -> np.ndarray | None:
    """Held kT/C errors, one per phase (the first, at t = 0, is 0 so the start is noise-free)."""
    if not design.ktc:
        return None
    e = group_rng(design.seed, f"KTC{tag}").standard_normal(n_half) * np.sqrt(design.kt_joule / c)
    e[0] = 0.0
    return e


def build_circuit(design: OpampScDesign, request: CircuitRequest) -> Circuit:
    d = design.d
    T = design.period_s
    tran = "tran" in request.analyses
    noisy = tran and request.noise_u is not None
    n_periods = int(np.ceil(request.t_stop_s / T)) + 2
    n_half = 2 * n_periods
    macro = design.macro
    E: list = cell_elements(macro)
    add = E.append
    for i in range(1, d + 1):
        E.extend(integrator(i, design.c_f_farad[i - 1], design.x0_v[i - 1], macro,
                            0.0 if macro is None else macro.offset_int_v[i - 1]))
    E.extend(clocks(design))
    mask = bit_mask(design.code, design.bits)
    cb = design.c_bit_farad
    ktc = noisy and design.ktc
    if noisy and design.injected:
        # the noise DACs of spu_sim.parts.noise_dacs, clocked: one fresh N(0, u^2) sample held per
        # period (iid, no pre-emphasis: the charge branch samples it once), the first one 0
        u = group_rng(design.seed, "INJECTED").standard_normal((n_periods, d)) * design.noise_v_rms
        u[0] = 0.0
        dacs = noise_dacs(u, T, held=True)
    for i in range(1, d + 1):
        for j in range(1, d + 1):
            if design.code[i - 1, j - 1] == 0:
                continue
            tag = f"{i}_{j}"
            caps = list(np.where(mask[i - 1, j - 1], cb[i - 1, j - 1], 0.0))
            c_sel = float(sum(caps))
            E.extend(branch(design, tag, i, f"x{j}", caps, float(cb[i - 1, j - 1].sum()),
                            design.sign[i - 1, j - 1] > 0, _ktc(design, tag, c_sel, n_half) if ktc else None, T / 2))
        if design.c_in_farad[i - 1] > 0:
            add(dac(f"VDAC{i}", f"dac{i}", design.v_dac_v[i - 1]))
            c = float(design.c_in_farad[i - 1])
            E.extend(branch(design, f"{i}_b", i, f"dac{i}", [c], c, True,
                            _ktc(design, f"{i}_b", c, n_half) if ktc else None, T / 2))
        if noisy and design.injected:
            add(dacs[i - 1])
            c = float(design.c_noise_farad[i - 1])
            E.extend(branch(design, f"{i}_n", i, f"nz{i}", [c], c, True,
                            _ktc(design, f"{i}_n", c, n_half) if ktc else None, T / 2))
    analyses: list = []
    notes = []
    if "op" in request.analyses:
        notes.append("no .op: switched-capacitor branches have no DC path; the discrete-time theory gives the mean")
    if tran:
        analyses.append(Tran(request.step_s, request.t_stop_s, T / 2))
    saves = [f"v(x{i})" for i in range(1, d + 1)] + ["v(phi1)", "v(phi2)"] + output_current_saves(macro,
        [f"I{i}" for i in range(1, d + 1)] if macro is not None else [])
    return Circuit(title=f"spu-sim switched-capacitor op-amp integrator SPU, d = {d}", header=header(design),
                   elements=E, readout_nodes=list(design.readout_nodes), analyses=analyses,
                   options={"reltol": request.reltol}, saves=saves, analysis_notes=notes)
