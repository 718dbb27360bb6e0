"""Power and energy of a posterior circuit run, from the saved node voltages (no simulation here).

Resistive power (every resistor's far end on a virtual ground -- the summers' feedback resistors RF<k> from r<k> to
the summing node rs<k> too -- or an inverted copy carrying the same |V| as its source):

    P_R(t) = sum_ij G^p_ij V_j^2 + sum_kj G^x_kj V_j^2 + sum_k V(r<k>)^2 / R_f,k + sum_ik G^t_ik L_k^2
             + sum_k G^y_k V_y,k^2 + sum_i G_in,i V_dac,i^2

(L_k: the line output). Op-amp supply: n_opamps x 2 supply_v x i_quiescent_a (quiescent; the sigmoid
elements are not counted); with the macromodel also the class-B output stages, supply_v sum_k |I(VO<k>)|
from the saved output currents (spu_sim.parts.opamp.output_current). Noise DACs are left out. Energy = power x time, reported for the
whole run and for one mixing time (spu_sim.posterior.run).
"""

from __future__ import annotations

import numpy as np

from ...parts.opamp import output_current
from .build import opamp_tags


def _g(r: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(r), 1.0 / np.where(np.isfinite(r), r, 1.0), 0.0)


def resistive_power_w(design, v_theta: np.ndarray, v_res: np.ndarray, v_line: np.ndarray) -> np.ndarray:
    """(n_t,) power for theta-node voltages (n_t, d), summer outputs (n_t, n) and line outputs (n_t, n)."""
    p = (v_theta ** 2) @ (_g(design.r_p).sum(0) + _g(design.r_x).sum(0))
    p = p + (v_res ** 2) @ (1.0 / design.r_f) + (v_line ** 2) @ _g(design.r_t).sum(0)
    return p + float(np.sum(_g(design.r_y) * design.v_y ** 2) + np.sum(_g(design.r_in) * design.v_dac ** 2))


def quiescent_power_w(design) -> float:
    return float(design.n_opamps * 2.0 * design.supply_v * design.i_quiescent_a)


def circuit_arrays(design, line_nodes: list[str], plots: dict) -> dict[str, np.ndarray]:
    """t_power_s, p_resistive_w on ngspice's time points, mean powers (resistive, quiescent)."""
    if "tran" not in plots:
        return {}
    w = plots["tran"]
    t = np.real(w.axis)
    vt = np.column_stack([np.real(w.node(f"x{i}")) for i in range(1, design.d + 1)])
    vr = np.column_stack([np.real(w.node(f"r{k}")) for k in range(1, design.n + 1)])
    vl = np.column_stack([np.real(w.node(nm)) for nm in line_nodes])
    p = resistive_power_w(design, vt, vr, vl)
    span = float(t[-1] - t[0])
    mean = float(np.trapezoid(p, t) / span) if span > 0 else float(p.mean())
    out = {"t_power_s": t, "p_resistive_w": p, "power_resistive_mean_w": np.array(mean),
           "power_quiescent_w": np.array(quiescent_power_w(design))}
    if design.macro is not None:
        p_out = np.zeros(len(t))
        for tag in opamp_tags(design):
            cur = output_current(w.vectors, tag)
            if cur is not None:
                p_out += design.macro.supply_v * np.abs(np.real(cur))
        out["power_output_stage_mean_w"] = np.array(float(np.trapezoid(p_out, t) / span) if span > 0 else 0.0)
    return out
