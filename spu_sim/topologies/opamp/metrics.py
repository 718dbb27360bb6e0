"""Circuit metrics of one run: settling time and energy, from the result arrays (no simulation here).

    metrics = circuit_metrics(design, problem, arrays)     # arrays: result.npz contents

Settling (problem time unit tau; spu_sim.parts.settling: the criteria shared with other topologies): measured
(the readout stays within SETTLE_TOL of the initial distance plus a noise band), predicted_exact (the same on the
exact mean trajectory of the effective drift), predicted_slowest (ln(1 / tol) / Re(lambda_min)).

Energy over the run (joules):

- supply (op-amp macromodel only): each op-amp's output stage sources its load current from the + rail and
  sinks it into the - rail (class-B), plus a quiescent current iq from both rails:
  P(t) = V_s sum_k (|I_k(t)| + 2 iq), I_k the output current ngspice computed for op-amp k (saved sense
  sources i(VO<k>), spu_sim.parts.opamp); E = int P dt over ngspice's own time points.
  Noise and b DACs are not included.
- resistive (every model): the power dissipated in the coupling and input resistors, whose summing-node ends
  sit at virtual ground: P_R = sum_ij G_ij u_j^2 + sum_i G_in,i V_dac,i^2 (u_j = +/- V_j from the readout).
  A lower bound for any op-amp that drives those resistors.
"""

from __future__ import annotations

import numpy as np

from ...parts.opamp import is_subckt, output_current
from ...parts.settling import settling_metrics
from .build import opamp_tags
from .nonideal import NonidealOpampDesign


def supply_power_w(tran_wave, design) -> tuple[np.ndarray, np.ndarray]:
    """(time_s, power_w) drawn from the +/- supply_v rails by every op-amp (module doc)."""
    m = design.macro
    p = np.zeros(len(tran_wave.axis))
    for tag in opamp_tags(design):
        i_out = np.real(output_current(tran_wave.vectors, tag))
        p += m.supply_v * (np.abs(i_out) + 2.0 * m.i_quiescent_a)
    return np.real(tran_wave.axis), p


def resistive_power_w(design, v: np.ndarray) -> np.ndarray:
    """(n,) power dissipated in coupling and input resistors for node voltages v (n, d) (module doc)."""
    g = np.where(np.isfinite(design.r_ohm), 1.0 / design.r_ohm, 0.0)
    p = (v ** 2) @ g.sum(axis=0)            # sum_ij G_ij V_j^2 (u_j^2 = V_j^2 for either sign)
    if np.isfinite(design.r_in_ohm):
        r_in = design.r_in_each_ohm if isinstance(design, NonidealOpampDesign) else None
        r_in = np.full(design.d, design.r_in_ohm) if r_in is None else r_in
        p = p + float(np.sum(design.v_dac_v ** 2 / r_in))
    return p


def circuit_arrays(design, plots: dict) -> dict[str, np.ndarray]:
    """Extra result.npz arrays of a non-ideal design (empty for a nominal one, which keeps default
    result files unchanged): A_effective, b_effective, and with the macromodel the supply power
    (t_supply_s, p_supply_w) and energy_supply_j."""
    if not isinstance(design, NonidealOpampDesign):
        return {}
    if is_subckt(design.macro):   # the subcircuit's gain is not modelled: the realised matrix is not measured
        return {}
    out: dict[str, np.ndarray] = {"A_effective": design.A_effective, "b_effective": design.b_effective}
    if design.macro is not None and "tran" in plots and output_current(plots["tran"].vectors, "I1") is not None:
        t, p = supply_power_w(plots["tran"], design)
        out.update(t_supply_s=t, p_supply_w=p, energy_supply_j=np.array(np.trapezoid(p, t)))
    return out


def circuit_metrics(design, problem, arrays: dict) -> dict[str, float]:
    """Settling time (measured and predicted, tau and seconds) and energy of one run (module doc)."""
    out: dict[str, float] = settling_metrics(design, problem, arrays)
    if not is_subckt(design.macro):   # a subcircuit op-amp's effective drift is not modelled: not reported
        lam = np.linalg.eigvals(design.effective_sde().K)
        out.update(lambda_min_effective=float(np.min(lam.real)), lambda_max_effective=float(np.max(lam.real)))
    t = np.asarray(arrays.get("t", np.zeros(0)), dtype=float)
    x = np.asarray(arrays.get("x", np.zeros((0, design.d))), dtype=float)
    if t.size:
        v = x / design.s_x
        p = resistive_power_w(design, v)
        out["energy_resistive_j"] = float(np.trapezoid(p, t))
        out["power_resistive_mean_w"] = float(np.mean(p))
    else:
        out["energy_resistive_j"] = out["power_resistive_mean_w"] = float("nan")
    e = arrays.get("energy_supply_j")
    out["energy_supply_j"] = float(e) if e is not None else float("nan")
    if e is not None and t.size:
        out["power_supply_mean_w"] = float(e) / float(t[-1] - t[0]) if t[-1] > t[0] else float("nan")
    out["run_time_s"] = float(t[-1]) if t.size else float("nan")
    if getattr(design, "intrinsic", None) is not None:     # circuit.thermal_noise / op-amp noise on
        out["kappa_intrinsic"] = design.kappa_intrinsic
    return out
