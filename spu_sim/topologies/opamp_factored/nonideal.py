"""Non-idealities of the factorised circuit: the element values the fab delivers (same steps as ``opamp``,
spu_sim.topologies.opamp.nonideal, with the shared maths of spu_sim.parts.element_values):

    1. quantisation   the programmable conductances (J, H, J^T arrays, leak, R_in) on k G_max / (2^r_bits - 1);
                      the b-DAC voltages on 2 v_dac_max_v / 2^dac_bits steps (clipped). The summers' feedback
                      resistors and the noise resistors are fixed parts (not programmed, not quantised).
    2. tolerance      value (1 + g_kind)(1 + l_element): groups RJ, RH, RT, RFU, RFZ, RLEAK, RIN, RN, RINV_<group>
                      (kind R) and C (the integrator capacitors), one seeded stream per group.
    3. temperature    R (1 + r_tc1 (T - Tnom)), C (1 + c_tc1 (T - Tnom)).

The op-amp model (circuit.opamp, spu_sim.parts.config.OpampConfig): ``ideal`` (nullors) or ``macro``
(spu_sim.parts.opamp's macromodel for every integrator, summer and inverter: finite gain, GBW pole,
swing limit, offsets of rms offset_sigma_v drawn per op-amp from circuit.tolerance.seed). The design's linear
model (spu_sim.topologies.opamp_factored.linear) then reads the realised values; the effective model adds the
finite gain and the offsets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ...errors import DesignError
from ...parts.element_values import (element_errors, is_default, quantize_grid, quantize_resistor_groups,
                                     temperature_factor)
from ...parts.wires import check_wires
from ...parts.opamp import OpampModel, draw_offsets, finite_gain_model, has_opamp_model, macro_notes, model_fields, offset_rng
from .config import FactoredCircuitConfig
from .design import DENSE_EIG_MAX_N, FactoredDesign
from .linear import drift_eigvals

OPAMP_GROUPS = ("int", "sum_u", "sum_z", "inv_x", "inv_u", "inv_z")


@dataclass(frozen=True)
class FactoredMacro(OpampModel):
    """The macromodel of one design (spu_sim.parts.opamp.OpampModel: gain, gbw_hz, v_out_max_v, supply_v,
    i_quiescent_a) and its op-amps' own values: offset_v[group] (per op-amp, volts; groups OPAMP_GROUPS), the
    inverters' realised R1 / R2 r_inv_in_ohm[inv_*], r_inv_fb_ohm[inv_*]."""

    offset_v: dict
    r_inv_in_ohm: dict
    r_inv_fb_ohm: dict


def apply_factored_nonidealities(design: FactoredDesign, c: FactoredCircuitConfig) -> FactoredDesign:
    """The realised design (module doc); the nominal design itself when every knob is default."""
    wires = c.wires
    if is_default(c) and not wires.on:
        return design
    q, tol, tmp, oc = c.quantization, c.tolerance, c.temperature, c.opamp
    n, m = design.d, design.m
    if wires.on:
        check_wires(max(n, m), wires.r_ohm_per_segment, c.integrator.r_min_ohm)
    notes: dict[str, object] = {}
    v = {k: np.array(getattr(design, k), dtype=float) for k in
         ("r_j_ohm", "r_h_ohm", "r_t_ohm", "r_fu_ohm", "r_fz_ohm", "r_leak_ohm", "r_in_ohm", "r_noise_ohm",
          "c_f_farad", "v_dac_v")}
    sizes = {"inv_x": n, "inv_u": m, "inv_z": m}
    r1 = {g: np.full(k, oc.r_inverter_ohm) for g, k in sizes.items()}
    r2 = {g: np.full(k, oc.r_inverter_ohm) for g, k in sizes.items()}
    programmable = ("r_j_ohm", "r_h_ohm", "r_t_ohm", "r_leak_ohm", "r_in_ohm")
    if q.r_bits is not None:
        quantize_resistor_groups(v, programmable, c.integrator.r_min_ohm, q.r_bits, keep=("r_leak_ohm", "r_in_ohm"))
        notes["r_bits"] = q.r_bits
    if q.dac_bits is not None:
        vmax = c.integrator.v_dac_max_v
        v["v_dac_v"] = quantize_grid(v["v_dac_v"], 2.0 * vmax / 2 ** q.dac_bits, vmax)
        notes["dac_bits"] = q.dac_bits
    if tol.global_rel or tol.local_rel:
        gr, lr, s = tol.global_rel, tol.local_rel, tol.seed
        for key, grp in (("r_j_ohm", "RJ"), ("r_h_ohm", "RH"), ("r_t_ohm", "RT"), ("r_fu_ohm", "RFU"),
                         ("r_fz_ohm", "RFZ"), ("r_leak_ohm", "RLEAK"), ("r_in_ohm", "RIN"), ("r_noise_ohm", "RN")):
            v[key] = v[key] * element_errors(s, grp, v[key].shape, gr, lr, kind="R")
        v["c_f_farad"] = v["c_f_farad"] * element_errors(s, "C", (n,), gr, lr)
        if has_opamp_model(oc):
            for g, k in sizes.items():
                f = element_errors(s, "RINV_" + g, (2, k), gr, lr, kind="R")
                r1[g], r2[g] = r1[g] * f[0], r2[g] * f[1]
        notes.update(tolerance_global_rel=gr, tolerance_local_rel=lr, tolerance_seed=s)
    fr = temperature_factor(tmp.r_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    fc = temperature_factor(tmp.c_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    if fr != 1.0 or fc != 1.0:
        for k in v:
            if k.startswith("r_"):
                v[k] = v[k] * fr
        v["c_f_farad"] = v["c_f_farad"] * fc
        r1 = {g: x * fr for g, x in r1.items()}
        r2 = {g: x * fr for g, x in r2.items()}
        notes.update(temp_c=tmp.temp_c, r_factor=fr, c_factor=fc)
    macro = None
    if has_opamp_model(oc):
        rng = offset_rng(tol.seed)
        offs = {g: draw_offsets(oc, rng, n if g in ("int", "inv_x") else m) for g in OPAMP_GROUPS}
        macro = FactoredMacro(**model_fields(oc), offset_v=offs, r_inv_in_ohm=r1, r_inv_fb_ohm=r2)
        notes.update(macro_notes(oc))
    if wires.on:
        notes.update(wire_r_ohm_per_segment=wires.r_ohm_per_segment, wire_c_farad_per_segment=wires.c_farad_per_segment)
    arrays = {"J": "r_j_ohm", "H": "r_h_ohm", "JT": "r_t_ohm"}
    dropped = [(name, int(i), int(j)) for name, key in arrays.items()
               for i, j in np.argwhere(np.isfinite(getattr(design, key)) & ~np.isfinite(v[key]))]
    real = dataclasses.replace(design, **v, macro=macro, notes=notes, dropped=dropped,
                               r_nominal={key: np.asarray(getattr(design, key)) for key in arrays.values()},
                               wires=(wires.r_ohm_per_segment, wires.c_farad_per_segment) if wires.on else None)
    if n <= DENSE_EIG_MAX_N:
        lam = drift_eigvals(*real.factors_realized(finite_gain_model(macro) is not None)[:3])
        if wires.on and np.any(lam.real <= 0):
            raise DesignError(f"circuit.wires.r_ohm_per_segment = {wires.r_ohm_per_segment:g} ohm: the IR drop of the "
                              f"lines makes the realised drift unstable (eigenvalue {lam.real.min():.3g} <= 0); lower "
                              "the wire resistance or raise circuit.integrator.r_min_ohm")
        if np.any(lam.real <= 0):
            raise DesignError("the realised (non-ideal) drift is not stable (an eigenvalue with real part <= 0); "
                              "add circuit.quantization.r_bits or lower circuit.tolerance")
    return real
