"""Linear SDEs of the RLC SPU: the realised 2d SDE (rlc_sde, rlc_cell_sde; maths in
spu_sim.topologies.rlc.design) and the exact linear model of the netlist as built (netlist_sde: every switch
node, r_on / r_off and parasitic included)."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ...ideal import LinearSDE


def rlc_sde(A: np.ndarray, kappa: float, eta: float, a_ref: float) -> LinearSDE:
    """The 2d-dimensional underdamped SDE of the RLC SPU in problem units (see module doc); z = (x, p)."""
    A = np.asarray(A, dtype=float)
    d = A.shape[0]
    Mi = np.linalg.inv(A / a_ref)
    K = np.block([[eta * Mi, Mi], [-np.eye(d), np.zeros((d, d))]])
    D = np.zeros((2 * d, 2 * d))
    D[:d, :d] = 2.0 * kappa * eta / a_ref * (Mi @ Mi.T)
    return LinearSDE(K, np.zeros(2 * d), D)


def rlc_cell_sde(A: np.ndarray, kappa_each: np.ndarray, eta_each: np.ndarray, l_ratio: np.ndarray,
                 a_ref: float) -> LinearSDE:
    """rlc_sde with per-cell resistors, inductors and noise levels (a mismatched circuit); z = (x, p).

    Cell i with R_i, L_i and noise current of intensity 2 kT_i / R_i: eta_i = tau / (R_i c_ref),
    l_ratio_i = L_nom / L_i, kappa_i = kT_i s_x^2 / gamma (tau, c_ref = gamma a_ref nominal):

        K = [[M^-1 diag(eta), M^-1], [-diag(l_ratio), 0]],   D_xx = M^-1 diag(2 kappa_i eta_i / a_ref) M^-1

    Equal kappa_i give the stationary voltage covariance kappa A^-1 whatever eta_i and l_ratio_i (each cell
    is in equilibrium at one temperature); unequal ones (mismatched R with a common noise voltage) do not.
    """
    A = np.asarray(A, dtype=float)
    d = A.shape[0]
    Mi = np.linalg.inv(A / a_ref)
    K = np.block([[Mi * np.asarray(eta_each)[None, :], Mi], [-np.diag(l_ratio), np.zeros((d, d))]])
    D = np.zeros((2 * d, 2 * d))
    D[:d, :d] = Mi @ np.diag(2.0 * np.asarray(kappa_each) * np.asarray(eta_each) / a_ref) @ Mi.T
    return LinearSDE(K, np.zeros(2 * d), 0.5 * (D + D.T))


def netlist_sde(design) -> LinearSDE:
    """The linear SDE of the netlist as built (design: an rlc.design.RlcDesign; problem units, time in tau): every switch node with its
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


def netlist_stationary_cov(design) -> np.ndarray:
    """Exact stationary covariance (problem units, (d, d)) of the cell voltages of the netlist as built
    (Lyapunov of netlist_sde; O((n + d)^3), 3 s at d = 8 with 8-bit banks)."""
    sde = netlist_sde(design)
    S = sla.solve_continuous_lyapunov(sde.K, sde.D)
    return 0.5 * (S + S.T)[:design.d, :design.d]


