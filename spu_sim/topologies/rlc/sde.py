"""The exact linear model of the RLC netlist as built (every switch node, r_on / r_off and parasitic
included): the reference for the switched banks beyond the realised 2d SDE of spu_sim.topologies.rlc.design."""

from __future__ import annotations

import numpy as np

from ...ideal import LinearSDE


def netlist_sde(design: "RlcDesign") -> LinearSDE:
    """The linear SDE of the netlist as built (problem units, time in tau): every switch node with its
    parasitic capacitance and its switch resistance (r_on or r_off by the code) included.

    Nodal equations of all n nodes (cells first, then the switch nodes in netlist order):
    Cn dv/dt = -Gn v - P i_L + P e/R,  L di_L/dt = P^T v, with Cn the nodal capacitance matrix, Gn the
    conductances (cell R, switches), P (n, d) the cell selector, and a noise current e/R of two-sided
    intensity 2 kT_eff / R per cell. State z = (s_x v (n), p = s_x tau i_L / c_cell (d)): the first d
    components are the cell voltages in problem units, as in realized_sde(), which is this system's limit
    r_on -> 0, r_off -> inf. n = d + bits d (d - 1) / 2 (switched) or d (ideal); stiff (r_on c_par).
    """
    d = design.d
    switched = design.coupling == "switched"
    n = d + (d * (d - 1) // 2 * design.bits if switched else 0)
    Cn = np.zeros((n, n))
    Gn = np.zeros((n, n))

    def stamp(M: np.ndarray, a: int, b: int | None, val: float) -> None:
        M[a, a] += val
        if b is not None:
            M[b, b] += val
            M[a, b] -= val
            M[b, a] -= val
    r_cells, l_cells = design.r_cells, design.l_cells
    for i in range(d):
        stamp(Cn, i, None, design.c_cell_farad[i])
        stamp(Gn, i, None, 1.0 / r_cells[i])
    node = d
    for i in range(d):
        for j in range(i + 1, d):
            if not switched:
                stamp(Cn, i, j, design.c_coupling_farad[i, j])
                continue
            code = int(design.code[i, j])
            for k in range(design.bits):
                stamp(Cn, i, node, design.bank_capacitor(i, j, k))
                stamp(Cn, node, None, design.c_parasitic_farad)
                stamp(Gn, node, j, 1.0 / (design.r_on_ohm if (code >> k) & 1 else design.r_off_ohm))
                node += 1
    P = np.zeros((n, d))
    P[:d, :d] = np.eye(d)
    tau, c_ref = design.tau_s, design.gamma * design.a_ref
    Ci = np.linalg.inv(Cn)
    # SI: d/dt (v, i) = -[[Ci Gn, Ci P], [-P^T / L, 0]] (v, i); rescale states and time (t = tau s)
    scale_p = design.s_x * tau / c_ref          # p = scale_p * i_L
    K = np.block([[Ci @ Gn * tau, Ci @ P * tau / scale_p * design.s_x],
                  [-P.T / l_cells[:, None] * tau * scale_p / design.s_x, np.zeros((d, d))]])
    q = 2.0 * design.kt_each_joule / r_cells * tau   # current intensity of each cell per unit of tau
    B = np.zeros((n + d, d))
    B[:n] = design.s_x * (Ci @ P)
    return LinearSDE(K, np.zeros(n + d), (B * q[None, :]) @ B.T)


def netlist_stationary_cov(design: "RlcDesign") -> np.ndarray:
    """Exact stationary covariance (problem units, (d, d)) of the cell voltages of the netlist as built
    (Lyapunov of netlist_sde; O((n + d)^3), 3 s at d = 8 with 8-bit banks)."""
    import scipy.linalg as sla  # noqa: PLC0415
    sde = netlist_sde(design)
    S = sla.solve_continuous_lyapunov(sde.K, sde.D)
    return 0.5 * (S + S.T)[:design.d, :design.d]


