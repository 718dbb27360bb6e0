"""Non-idealities of the posterior circuits, with the shared element maths of spu_sim.parts.element_values
(the same order as opamp: quantisation -> tolerance -> temperature).

    1. quantisation  programmable conductances (prior RP, X arrays RX and RT, y inputs RY, bias RIN) on the
                     grid k / (r_min (2^r_bits - 1)); DAC voltages (VY, VDAC) on 2 v_dac_max / 2^dac_bits
    2. tolerance     every resistor and capacitor times (1 + g_kind)(1 + l_element), one seeded stream per
                     element group (RP, RX, RT, RF, RY, RIN, RN, C)
    3. temperature   R (1 + r_tc1 (T - Tnom)), C (1 + c_tc1 (T - Tnom))
    4. op-amps       ``opamp.model: macro``: the macromodel of spu_sim.parts.opamp (finite gain, GBW pole, output swing, offsets:
                     ``offset_v`` plus a seeded Gaussian of rms ``offset_sigma_v`` per op-amp) for every
                     integrator, summer and inverter; inverters of two r_inverter_ohm resistors (toleranced)
    5. wires         ``wires``: the arrays RP, RX, RT on real lines (spu_sim.circuit.ResistorArray's layout; one
                     crossbar per source sign); their realised conductances are the lines' DC transfer
                     (design.PosteriorDesign._transfer), checked by spu_sim.parts.wires.check_wires on the longest
                     line (max(d, n) segments) and for a stable realised drift

The design's realised drift (design.PosteriorDesign.realized_parts) is computed from the element arrays,
so it reports exactly what the netlist implements.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ...errors import DesignError
from ...parts.element_values import element_errors, quantize_grid, quantize_resistor_groups, temperature_factor
from ...parts.opamp import MacroOpamp, draw_offsets, has_opamp_model, macro_notes, model_fields, offset_rng
from ...parts.wires import check_wires
from .design import PosteriorDesign


@dataclass(frozen=True)
class PosteriorMacro(MacroOpamp):
    """spu_sim.parts.opamp.MacroOpamp (integrators: offset_int_v, theta inverters: offset_inv_v, r_inv_*) plus the n summers
    (offset_sum_v) and the n line inverters (offset_line_v, r_line_in_ohm, r_line_fb_ohm)."""

    offset_sum_v: np.ndarray
    offset_line_v: np.ndarray
    r_line_in_ohm: np.ndarray
    r_line_fb_ohm: np.ndarray


def _macro(design: PosteriorDesign, c, fr: float) -> PosteriorMacro:
    oc, tol = c.opamp, c.tolerance
    d, n = design.d, design.n
    offs = draw_offsets(oc, offset_rng(tol.seed), 2 * d + 2 * n)
    f = element_errors(tol.seed, "RINV", (2, d + n), tol.global_rel, tol.local_rel, kind="R") * fr
    r = oc.r_inverter_ohm * f
    return PosteriorMacro(**model_fields(oc), offset_int_v=offs[:d], offset_inv_v=offs[d:2 * d], r_inv_in_ohm=r[0, :d],
                          r_inv_fb_ohm=r[1, :d], offset_sum_v=offs[2 * d:2 * d + n], offset_line_v=offs[2 * d + n:],
                          r_line_in_ohm=r[0, d:], r_line_fb_ohm=r[1, d:])


_PROGRAMMABLE = ("r_p", "r_x", "r_t", "r_y", "r_in")
_GROUPS = {"r_p": "RP", "r_x": "RX", "r_t": "RT", "r_f": "RF", "r_y": "RY", "r_in": "RIN", "r_n": "RN"}


def apply_posterior_nonidealities(design: PosteriorDesign, c) -> PosteriorDesign:
    """The realised design; the nominal one unchanged when no knob is set."""
    q, tol, tmp = c.quantization, c.tolerance, c.temperature
    vals = {k: np.array(getattr(design, k), dtype=float) for k in _GROUPS}
    c_f = np.array(design.c_f, dtype=float)
    v_y, v_dac = np.array(design.v_y, dtype=float), np.array(design.v_dac, dtype=float)
    notes: dict[str, object] = {}
    if q.r_bits is not None:
        quantize_resistor_groups(vals, _PROGRAMMABLE, c.integrator.r_min_ohm, q.r_bits, keep=("r_y", "r_in"))
        notes["r_bits"] = q.r_bits
    if q.dac_bits is not None:
        vmax = c.integrator.v_dac_max_v
        v_y = quantize_grid(v_y, 2.0 * vmax / 2 ** q.dac_bits, vmax)
        v_dac = quantize_grid(v_dac, 2.0 * vmax / 2 ** q.dac_bits, vmax)
        notes["dac_bits"] = q.dac_bits
    if tol.global_rel or tol.local_rel:
        for k, group in _GROUPS.items():
            vals[k] = vals[k] * element_errors(tol.seed, group, vals[k].shape, tol.global_rel, tol.local_rel, kind="R")
        c_f = c_f * element_errors(tol.seed, "C", c_f.shape, tol.global_rel, tol.local_rel)
        notes.update(tolerance_global_rel=tol.global_rel, tolerance_local_rel=tol.local_rel, tolerance_seed=tol.seed)
    fr = temperature_factor(tmp.r_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    fc = temperature_factor(tmp.c_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    if fr != 1.0 or fc != 1.0:
        vals = {k: v * fr for k, v in vals.items()}
        c_f = c_f * fc
        notes.update(temp_c=tmp.temp_c, r_factor=fr, c_factor=fc)
    macro = None
    if has_opamp_model(c.opamp):
        macro = _macro(design, c, fr)
        notes.update(macro_notes(c.opamp))
    wires = c.wires
    if wires.on:
        check_wires(max(design.d, design.n), wires.r_ohm_per_segment, c.integrator.r_min_ohm)
        notes.update(wire_r_ohm_per_segment=wires.r_ohm_per_segment, wire_c_farad_per_segment=wires.c_farad_per_segment)
    if not notes:
        return design
    arrays = {"r_p": "prior_precision", "r_x": "X", "r_t": "X^T"}
    dropped = [(name, (int(i), int(j))) for key, name in arrays.items()
               for i, j in np.argwhere(np.isfinite(getattr(design, key)) & ~np.isfinite(vals[key]))]
    real = dataclasses.replace(design, **vals, c_f=c_f, v_y=v_y, v_dac=v_dac, notes=notes, macro=macro, dropped=dropped,
                               wires=(wires.r_ohm_per_segment, wires.c_farad_per_segment) if wires.on else None,
                               r_nominal={k: np.asarray(getattr(design, k)) for k in arrays})
    lam = np.linalg.eigvals(real.A_realized)
    if wires.on and np.any(lam.real <= 0):
        raise DesignError(f"circuit.wires.r_ohm_per_segment = {wires.r_ohm_per_segment:g} ohm: the IR drop of the lines "
                          f"makes the realised drift unstable (eigenvalue {lam.real.min():.3g} <= 0); lower the wire "
                          "resistance or raise circuit.integrator.r_min_ohm")
    if np.any(lam.real <= 0):
        raise DesignError("the realised (non-ideal) drift is not stable; add circuit.quantization.r_bits or lower "
                          "circuit.tolerance")
    return real
