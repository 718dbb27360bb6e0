"""Non-idealities of the op-amp integrator SPU: tolerance/mismatch, quantisation, temperature, op-amp macromodel.

``apply_opamp_nonidealities(design, circuit)`` follows spu_sim.topologies.opamp.design: it takes the nominal
design and returns it unchanged when every knob is at its default (so the default run stays bit-for-bit
the same), else a ``NonidealOpampDesign`` whose element arrays are the *realised* values that go into the
netlist, and whose ``A_realized`` / ``b_realized`` / ``realized_sde`` describe what those values implement.

Order of the steps (each element: programmed value -> what the fab delivers -> what it is when hot):

    1. quantisation   G -> round(G / G_lsb) G_lsb, G_lsb = (1 / r_min_ohm) / (2^r_bits - 1)   (k = 0: no resistor)
                      V_dac -> round(V / V_lsb) V_lsb clipped at +/- v_dac_max_v, V_lsb = 2 v_dac_max_v / 2^dac_bits
    2. tolerance      value -> value (1 + g_kind)(1 + l_element), g ~ N(0, global_rel^2) once per kind
                      (resistor, capacitor, inductor), l ~ N(0, local_rel^2) per element
    3. temperature    R -> R (1 + r_tc1 (T - Tnom)),  C -> C (1 + c_tc1 (T - Tnom))

Random draws: spu_sim.parts.element_values.element_errors (one seeded stream per element group, shared by
every topology). The op-amp macromodel's parameters: spu_sim.parts.opamp.MacroOpamp.

Realised drift of the integrator network with per-integrator capacitors C_i (C_nom the nominal value,
tau_s = alpha C_nom), coupling conductances G_ij and, with the macromodel, inverters of R1 (input) and
R2 (feedback) with ideal gain -R2/R1 (all voltage units; x = s_x V):

    A_realized_ij = alpha (C_nom / C_i) s_ij G_ij k_j,  k_j = R2_j / R1_j for s_ij = -1 (else 1)
    b_realized_i  = -alpha s_x (C_nom / C_i) G_in,i V_dac,i
    D_realized    = diag(2 kappa_i),  kappa_i = kappa_nom (C_nom / C_i)^2 (R_noise,nom / R_noise,i)^2

Effective drift with a finite-gain op-amp (quasi-static: the gain-bandwidth pole is left out; see
``macro_state_space`` for the exact linear model with the pole). Integrator i with input offset os_i: the
summing node sits at s_i = os_i - V_i / A0 instead of 0. KCL at s_i, with Gsum_i the total conductance
into the node (coupling, R_in and the noise resistor, whose far ends are at DC 0):

    C_i (1 + 1/A0) dV_i/dt = -sum_j G_ij u_ij - G_in V_dac,i + Gsum_i (os_i - V_i / A0)

with u_ij = V_j (s_ij = +1) or the inverter output u = -k_j V_j + o_j (s_ij = -1), where for an inverter of
gain A0 and offset osn_j:  k_j = A0 G1 / (G1 + G2 + A0 G2),  o_j = A0 (G1 + G2) osn_j / (G1 + G2 + A0 G2).
So C_i (1 + 1/A0) dV/dt = -M V + c with M_ij = G_ij (or -G_ij k_j), M_ii += Gsum_i / A0,
c_i = -G_in V_dac,i + Gsum_i os_i - sum_{s_ij<0} G_ij o_j, and in problem units (t in tau)

    A_effective = alpha C_nom / (C_i (1 + 1/A0)) M        b_effective = s_x alpha C_nom / (C_i (1 + 1/A0)) c
    kappa_i,effective = kappa_i / (1 + 1/A0)^2

Finite gain adds Gsum_i / A0 to the diagonal (a leak: x* shrinks by about Gsum/(A0 G)) and the offset adds
alpha s_x Gsum_i os_i to b. An output-swing limit is not linear: it is in the netlist only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...errors import DesignError
from ...ideal import LinearSDE
from ...parts.element_values import (check_tolerance_draw, conductance_codes, element_errors, grid_codes, is_default,
                                     quantize_conductance, quantize_grid, temperature_factor)
from ...parts.wires import check_wires
from ...parts.opamp import MacroOpamp, draw_offsets, finite_gain_model, has_opamp_model, macro_notes, model_fields, offset_rng
from .build import coupling_arrays
from .config import OpampCircuitConfig
from .design import OpampDesign


@dataclass(frozen=True)
class NonidealOpampDesign(OpampDesign):
    """An OpampDesign whose element arrays are realised values (see module doc).

    r_ohm (d, d) realised coupling resistors; r_nominal_ohm (d, d) the nominal ones; c_f_farad (d,);
    r_in_each_ohm (d,); r_noise_each_ohm (d,); v_dac_v the (quantised) DAC voltages; macro: the op-amp
    macromodel or None (ideal nullor); notes: what was applied (netlist header, design.json).
    """

    r_nominal_ohm: np.ndarray = None
    c_f_farad: np.ndarray = None
    r_in_each_ohm: np.ndarray = None
    r_noise_each_ohm: np.ndarray = None
    v_dac_nominal_v: np.ndarray = None     # the DAC voltages before dac_bits
    codes: dict = dataclasses.field(default_factory=dict)   # group (R, RIN, VDAC, CF) -> (integer codes, bits)
    dropped: list = dataclasses.field(default_factory=list)  # (i, j) entries whose resistor rounded to code 0
    wires: tuple | None = None      # (r_ohm_per_segment, c_farad_per_segment) of circuit.wires; None: ideal lines

    @cached_property
    def wired_arrays(self) -> list:
        """The coupling crossbars on their wires, built once: the netlist (build.py) and wired_transfer share them
        (and so their port admittance, computed once)."""
        return coupling_arrays(self.r_ohm, self.sign, wires=self.wires) if self.wires is not None else []

    @cached_property
    def wired_transfer(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(G_pos, G_neg, Y_rr) of the coupling crossbars as built on their wires: G_pos[i, j] the DC current into
        sum<i> per volt on x<j> (G_neg: on xn<j>) with every other terminal at 0 V, and Y_rr the summing nodes'
        own (dense) admittance block; from ResistorArray.port_admittance of the very arrays the netlist holds (a
        nodal solve of the lines), not from the element values. Without wires: G_pos = G where A_ij > 0, G_neg =
        G where A_ij < 0, Y_rr = diag(sum_j G_ij)."""
        d = self.d
        gp, gn, yrr = np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, d))
        for arr in self.wired_arrays:
            g, y = arr.scatter_transfer(d, d)
            if arr.col_nodes[0].startswith("xn"):
                gn += g
            else:
                gp += g
            yrr += y
        return gp, gn, yrr

    # --- element-value model (ideal op-amps)
    @property
    def _row(self) -> np.ndarray:
        return self.c_farad / self.c_f_farad

    @property
    def inverter_gain(self) -> np.ndarray:
        """(d,) ideal-op-amp gain magnitude R2/R1 of each inverter (1 for the ideal E inverter)."""
        if self.macro is None:
            return np.ones(self.d)
        return self.macro.r_inv_fb_ohm / self.macro.r_inv_in_ohm

    @property
    def A_realized(self) -> np.ndarray:
        if self.wires is not None:   # A_ij = alpha (C_nom / C_i) (G_pos,ij - G_neg,ij k_j): the lines' DC transfer
            gp, gn, _ = self.wired_transfer
            return self.alpha * self._row[:, None] * (gp - gn * self.inverter_gain[None, :])
        g = np.where(np.isfinite(self.r_ohm), 1.0 / self.r_ohm, 0.0)
        k = np.where(self.sign < 0, self.inverter_gain[None, :], 1.0)
        return self.alpha * self._row[:, None] * self.sign * g * k

    @property
    def b_realized(self) -> np.ndarray:
        if not np.isfinite(self.r_in_ohm):
            return np.zeros(self.d)
        return -self.alpha * self.s_x * self._row * self.v_dac_v / self.r_in_each_ohm

    @property
    def kappa_each(self) -> np.ndarray:
        """(d,) realised noise level of each variable (low-frequency intensity)."""
        if not self.has_noise:
            return np.zeros(self.d)
        h_s = self.noise_dt_tau * self.tau_s
        q_i = self.noise_v_rms ** 2 * h_s / self.r_noise_each_ohm ** 2
        return q_i * self.tau_s * self.s_x ** 2 / (2.0 * self.c_f_farad ** 2)

    @property
    def kappa_realized(self) -> float:
        return float(np.mean(self.kappa_each))

    def realized_sde(self) -> LinearSDE:
        return LinearSDE(self.A_realized, self.b_realized, np.diag(2.0 * self.kappa_each) + self.intrinsic_diffusion())

    # --- finite-gain op-amps (module doc)
    def _conductances(self, include_noise_resistor: bool = True):
        g = np.where(np.isfinite(self.r_ohm), 1.0 / self.r_ohm, 0.0)
        gin = (1.0 / self.r_in_each_ohm) if np.isfinite(self.r_in_ohm) else np.zeros(self.d)
        gn = (1.0 / self.r_noise_each_ohm) if (self.has_noise and include_noise_resistor) else np.zeros(self.d)
        return g, gin, gn

    def effective_linear(self, include_noise_resistor: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A_effective, b_effective, kappa_each_effective) of the quasi-static finite-gain model."""
        m = finite_gain_model(self.macro)
        if m is None:    # ideal op-amps, or a subcircuit op-amp (not modelled: measured)
            return self.A_realized, self.b_realized, self.kappa_each
        a0 = m.gain
        g, gin, gn = self._conductances(include_noise_resistor)
        g1, g2 = 1.0 / m.r_inv_in_ohm, 1.0 / m.r_inv_fb_ohm
        k = a0 * g1 / (g1 + g2 + a0 * g2)
        o = a0 * (g1 + g2) * m.offset_inv_v / (g1 + g2 + a0 * g2)
        neg = self.sign < 0
        vdac = self.v_dac_v if np.isfinite(self.r_in_ohm) else np.zeros(self.d)
        if self.wires is not None:   # the lines' transfer and the summing nodes' dense admittance (wired_transfer)
            gpos, gneg, yrr = self.wired_transfer
            ysum = yrr + np.diag(gin + gn)
            M = gpos - gneg * k[None, :] + ysum / a0
            c = -gin * vdac + ysum @ m.offset_int_v - gneg @ o
            row = self.alpha * self.c_farad / (self.c_f_farad * (1.0 + 1.0 / a0))
            return row[:, None] * M, self.s_x * row * c, self.kappa_each / (1.0 + 1.0 / a0) ** 2
        M = np.where(neg, -g * k[None, :], g)
        gsum = g.sum(axis=1) + gin + gn
        M = M + np.diag(gsum / a0)
        c = -gin * vdac + gsum * m.offset_int_v - (np.where(neg, g, 0.0) * o[None, :]).sum(axis=1)
        row = self.alpha * self.c_farad / (self.c_f_farad * (1.0 + 1.0 / a0))
        return row[:, None] * M, self.s_x * row * c, self.kappa_each / (1.0 + 1.0 / a0) ** 2

    @property
    def A_effective(self) -> np.ndarray:
        return self.effective_linear()[0]

    @property
    def b_effective(self) -> np.ndarray:
        return self.effective_linear()[1]

    def effective_sde(self) -> LinearSDE:
        A, b, kap = self.effective_linear()
        return LinearSDE(A, b, np.diag(2.0 * kap) + self.intrinsic_diffusion())

    def describe(self) -> dict[str, object]:
        out = super().describe()
        out["dropped_entries"] = len(self.dropped)
        out["nonideal"] = self.notes
        return out


def apply_opamp_nonidealities(design: OpampDesign, c: OpampCircuitConfig) -> OpampDesign:
    """The realised design (see module doc); the nominal design itself when every knob is default."""
    wires = c.wires
    if is_default(c) and not wires.on:
        return design
    if wires.on:
        check_wires(design.d, wires.r_ohm_per_segment, c.integrator.r_min_ohm)
    q, tol, tmp = c.quantization, c.tolerance, c.temperature
    d = design.d
    notes: dict[str, object] = {}
    r = np.array(design.r_ohm, dtype=float)
    r_in = np.full(d, design.r_in_ohm)
    v_dac = np.array(design.v_dac_v, dtype=float)
    cf = np.full(d, design.c_farad)
    r_noise = np.full(d, design.r_noise_ohm)
    oc = c.opamp
    r_inv_in = np.full(d, oc.r_inverter_ohm)
    r_inv_fb = np.full(d, oc.r_inverter_ohm)
    codes: dict[str, tuple[np.ndarray, int]] = {}
    # 1. quantisation of the programmed values
    if q.r_bits is not None:
        rmin = c.integrator.r_min_ohm
        codes["R"] = (conductance_codes(r, rmin, q.r_bits), q.r_bits)
        r = quantize_conductance(r, rmin, q.r_bits)
        if np.isfinite(design.r_in_ohm):
            codes["RIN"] = (conductance_codes(r_in, rmin, q.r_bits), q.r_bits)
            r_in = quantize_conductance(r_in, rmin, q.r_bits)
            if not np.all(np.isfinite(r_in)):
                raise DesignError(f"circuit.quantization.r_bits = {q.r_bits}: R_in rounds to no resistor; add bits")
        notes["r_bits"] = q.r_bits
    if q.dac_bits is not None:
        vmax = c.integrator.v_dac_max_v
        codes["VDAC"] = (grid_codes(v_dac, 2.0 * vmax / 2 ** q.dac_bits, vmax), q.dac_bits)
        v_dac = quantize_grid(v_dac, 2.0 * vmax / 2 ** q.dac_bits, vmax)
        notes["dac_bits"] = q.dac_bits
    if q.c_bits is not None:
        codes["CF"] = (grid_codes(cf, design.c_farad / 2 ** (q.c_bits - 1)), q.c_bits)
        cf = quantize_grid(cf, design.c_farad / 2 ** (q.c_bits - 1))
        notes["c_bits"] = q.c_bits
    dropped = [(int(i), int(j)) for i, j in np.argwhere(np.isfinite(design.r_ohm) & ~np.isfinite(r))]
    # 2. tolerance and mismatch (only elements that exist get a factor; the draw covers the full shape)
    if tol.global_rel or tol.local_rel:
        gr, lr, s = tol.global_rel, tol.local_rel, tol.seed
        r = r * element_errors(s, "R", (d, d), gr, lr)
        r_in = r_in * element_errors(s, "RIN", (d,), gr, lr, kind="R")
        r_noise = r_noise * element_errors(s, "RN", (d,), gr, lr, kind="R")
        cf = cf * element_errors(s, "C", (d,), gr, lr)
        if has_opamp_model(oc):
            f = element_errors(s, "RINV", (2, d), gr, lr, kind="R")
            r_inv_in, r_inv_fb = r_inv_in * f[0], r_inv_fb * f[1]
        exists = np.isfinite(design.r_ohm)
        check_tolerance_draw(tol, **{"a coupling resistor": np.where(exists, r, np.inf), "R_in": r_in, "R_noise": r_noise,
                                     "C_f": cf, "an inverter resistor": np.r_[r_inv_in, r_inv_fb]})
        notes.update(tolerance_global_rel=gr, tolerance_local_rel=lr, tolerance_seed=s)
    # 3. temperature
    fr = temperature_factor(tmp.r_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    fc = temperature_factor(tmp.c_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    if fr != 1.0 or fc != 1.0:
        r, r_in, r_noise, cf = r * fr, r_in * fr, r_noise * fr, cf * fc
        r_inv_in, r_inv_fb = r_inv_in * fr, r_inv_fb * fr
        notes.update(temp_c=tmp.temp_c, r_factor=fr, c_factor=fc)
    macro = None
    if has_opamp_model(oc):
        offs = draw_offsets(oc, offset_rng(tol.seed), (2, d))
        macro = MacroOpamp(**model_fields(oc), offset_int_v=offs[0], offset_inv_v=offs[1], r_inv_in_ohm=r_inv_in,
                           r_inv_fb_ohm=r_inv_fb)
        notes.update(macro_notes(oc))
    base = {f.name: getattr(design, f.name) for f in dataclasses.fields(design)}
    base.update(r_ohm=r, v_dac_v=v_dac, macro=macro, notes=notes)
    if wires.on:
        notes.update(wire_r_ohm_per_segment=wires.r_ohm_per_segment, wire_c_farad_per_segment=wires.c_farad_per_segment)
    real = NonidealOpampDesign(**base, r_nominal_ohm=np.array(design.r_ohm), c_f_farad=cf, r_in_each_ohm=r_in,
                               r_noise_each_ohm=r_noise, v_dac_nominal_v=np.array(design.v_dac_v), codes=codes,
                               dropped=dropped, wires=(wires.r_ohm_per_segment, wires.c_farad_per_segment)
                               if wires.on else None)
    lam = np.linalg.eigvals(real.A_effective)
    if wires.on and np.any(lam.real <= 0):
        raise DesignError(f"circuit.wires.r_ohm_per_segment = {wires.r_ohm_per_segment:g} ohm: the IR drop of the lines "
                          f"makes the realised drift unstable (eigenvalue {lam.real.min():.3g} <= 0); lower the wire "
                          "resistance or raise circuit.integrator.r_min_ohm")
    if np.any(lam.real <= 0):
        raise DesignError(f"the realised (non-ideal) drift is not stable (eigenvalue {lam.real.min():.3g} <= 0): the "
                          "tolerance draw, coarse quantization.r_bits or the op-amp model moved A; lower circuit.tolerance, "
                          "add r_bits or check circuit.opamp")
    lam_real = np.abs(np.linalg.eigvals(real.A_realized))   # the header's cond(A realised): of the realised values
    return dataclasses.replace(real, cond_realized=float(lam_real.max() / lam_real.min()) if lam_real.min() > 0
                               else float("inf"))


def macro_state_space(design) -> tuple[LinearSDE, np.ndarray]:
    """Exact linear model of the macromodel circuit including the gain-bandwidth pole (t in tau).

    States z = [V (d) integrator outputs = pole nodes, q (d) feedback-capacitor voltages V - s,
    w (d) inverter outputs]; returns (LinearSDE in volts, the (d, 3d) map z -> x in problem units).
    Equations (seconds; wp = 2 pi gbw / A0):
        dV_i/dt = wp (A0 (os_i - s_i) - V_i),  s_i = V_i - q_i
        C_i dq_i/dt = -sum_j G_ij (u_ij - s_i) - G_in (V_dac - s_i) + G_n s_i   (+ noise current)
        dw_j/dt = wp (A0 (osn_j - n_j) - w_j),  n_j = (G1 V_j + G2 w_j) / (G1 + G2)
    """
    m = finite_gain_model(design.macro)
    d = design.d
    if m is None or m.gbw_hz is None:
        raise ValueError("macro_state_space needs the macro op-amp model with a finite gbw_hz")
    a0, wp = m.gain, 2 * np.pi * m.gbw_hz / m.gain
    g, gin, gn = design._conductances()
    g1, g2 = 1.0 / m.r_inv_in_ohm, 1.0 / m.r_inv_fb_ohm
    n = 3 * d
    # z' = J z + h ; build J and h
    J = np.zeros((n, n))
    h = np.zeros(n)
    iV, iq, iw = np.arange(d), d + np.arange(d), 2 * d + np.arange(d)
    # s_i = V_i - q_i as a row vector over z
    S = np.zeros((d, n))
    S[iV - 0, iV] = 1.0
    S[np.arange(d), iq] = -1.0
    Nn = np.zeros((d, n))
    Nn[np.arange(d), iV] = g1 / (g1 + g2)
    Nn[np.arange(d), iw] = g2 / (g1 + g2)
    for i in range(d):
        J[iV[i]] = wp * (-a0 * S[i])
        J[iV[i], iV[i]] -= wp
        h[iV[i]] = wp * a0 * m.offset_int_v[i]
        # C dq/dt = -sum_j G_ij u_ij + (sum_j G_ij + G_in + G_n) s_i - G_in V_dac
        row = (g[i].sum() + gin[i] + gn[i]) * S[i]
        for j in range(d):
            if g[i, j] == 0:
                continue
            if design.sign[i, j] > 0:
                row[iV[j]] -= g[i, j]
            else:
                row[iw[j]] -= g[i, j]
        J[iq[i]] = row / design.c_f_farad[i]
        vd = design.v_dac_v[i] if np.isfinite(design.r_in_ohm) else 0.0
        h[iq[i]] = -gin[i] * vd / design.c_f_farad[i]
        J[iw[i]] = wp * (-a0 * Nn[i])
        J[iw[i], iw[i]] -= wp
        h[iw[i]] = wp * a0 * m.offset_inv_v[i]
    K = -J * design.tau_s
    f = h * design.tau_s
    # noise: current intensity q_I at each summing node drives q only
    D = np.zeros((n, n))
    kap = design.kappa_each
    # kappa_i (problem units, per tau) -> volts^2 per tau on q: 2 kappa_i / s_x^2
    D[iq, iq] = 2.0 * kap / design.s_x ** 2
    out = np.zeros((d, n))
    out[np.arange(d), iV] = design.s_x
    return LinearSDE(K, f, D), out
