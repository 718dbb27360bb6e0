"""The linear model of the factorised circuit, from its element values, in factors (never N x N unless asked).

Each array feeds a summing node: positive entries from the node, negative ones from its inverted copy
vn = -k v + o (k = 1, o = 0 for the ideal E inverter; k = R2/R1 for the macromodel inverter with an ideal op-amp;
with a finite gain A0 and input offset os_n: k = A0 G1 / (G1 + G2 + A0 G2), o = A0 (G1 + G2) os_n / (G1 + G2 + A0 G2),
as in spu_sim.topologies.opamp.nonideal). The input current of row i is I_i = (M v)_i + c_i with
M_ij = G_ij (s_ij > 0) or -G_ij k_j (s_ij < 0) and c_i = sum_{s_ij < 0} G_ij o_j.

Inverting summer (feedback G_f, all input conductances Gs = sum_j G_ij, op-amp gain A0, offset os; KCL at the
summing node v_n = os - V_o / A0):

    V_o = (-I + (Gs + G_f) os) / (G_f + (Gs + G_f) / A0)          (ideal op-amp: V_o = -I / G_f)

Integrator i (as opamp): C_i (1 + 1/A0) dV_i/dt = -I_T,i - G_leak,i V_i - G_in,i V_dac,i + Gsum_i (os_i - V_i / A0),
Gsum_i = sum_l G^T_il + G_leak,i + G_in,i + G_noise,i. So with V_u = P_u V_x + c_u, V_z = P_z V_u + c_z
(t in tau = alpha C_nom, x = s_x V_x, row_i = alpha C_nom / (C_i (1 + 1/A0))):

    A = L P + diag(dg),   L = row M_T P_z (N, m),  P = P_u (m, N),  dg = row (G_leak + Gsum / A0)
    b = -s_x row (M_T (P_z c_u + c_z) + c_T + G_in V_dac - Gsum os)

Wires (design.wires, circuit.wires): each array's M is its lines' DC transfer G_pos - G_neg k (``wired_transfer``, a
nodal solve of the lines as built) and the summers solve their KCL with the summing nodes' dense admittance block;
the integrators keep only its diagonal in the Gsum / A0 term (the off-diagonal coupling of the J^T lines between
summing nodes, divided by A0, is left out of the quasi-static effective model; exact with ideal op-amps).

The realised model is this with ideal op-amps (A0 = inf, no offsets; macromodel inverters keep k = R2/R1); the
effective model (macro only) uses the finite gain and the offsets. The gain-bandwidth poles are not in it
(quasi-static), exactly as in ``opamp``; ngspice simulates them.
Realised factors: J_r = -P_u s_u / s_x, H_r = -P_z s_z / s_u, JT_r = row M_T s_x / s_z, so that
L P = JT_r H_r J_r (nominal: J, H, J^T and dg = lambda).
"""

from __future__ import annotations

import numpy as np

from ...circuit import DriftFactors, ResistorArray
from ...parts.opamp import finite_gain_model

ARRAYS = (("J", "RJ", "r_j_ohm", "s_j", "x", "su"), ("H", "RH", "r_h_ohm", "s_h", "u", "sz"),
          ("T", "RT", "r_t_ohm", "s_t", "z", "sum"))   # key, element prefix, values, signs, source, destination


def group_of(index, n: int, groups: int):
    """0-based block of a 0-based index when n indices are cut into `groups` contiguous blocks."""
    return index * groups // n


def _ranges(n: int, groups: int) -> list[slice]:
    """The `groups` contiguous blocks of group_of as slices (empty blocks kept, so the block numbers stay)."""
    g = group_of(np.arange(n), n, groups)
    return [slice(int(np.searchsorted(g, k)), int(np.searchsorted(g, k, side="right"))) for k in range(groups)]


def array_elements(name: str, r: np.ndarray, s: np.ndarray, src: str, dst: str, src_groups: int = 1,
                   dst_groups: int = 1, wires: tuple[float, float] | None = None) -> list[ResistorArray]:
    """Resistors name<a>_<b> from src<b> (or its inverted copy src n<b>) to dst<a>; with src_groups > 1 from the
    buffered copy of the source for a's block, with dst_groups > 1 into the part of dst<a> for b's block.
    One ResistorArray per (sign, row block, column block): the names are the whole array's (row_keys, col_keys).
    wires: (r_wire_ohm, c_wire_farad) per segment (circuit.wires; the groups are then 1: one physical array per
    sign, its row lines ending at dst<a>, its column lines driven by src<b> / src n<b>)."""
    E = []
    rows, cols = r.shape
    # the blocks are contiguous ranges (group_of is monotone): slices, views of the sign's array, not copies
    row_blocks = _ranges(rows, src_groups)
    col_blocks = _ranges(cols, dst_groups)
    extra = {} if wires is None else {"r_wire_ohm": wires[0], "c_wire_farad": wires[1]}
    # one pass over r and s each; the signs' masks are bytes, laid out like r (the design's r_t and s_t are both the
    # transposes of m x N arrays; any other pair of layouts: s copied into r's, so that no pass reads two orders)
    same = (r.flags.c_contiguous and s.flags.c_contiguous) or (r.flags.f_contiguous and s.flags.f_contiguous)
    pos, fin = (s if same else np.asarray(s, order="F" if r.flags.f_contiguous else "C")) > 0, np.isfinite(r)
    for tag in ("", "n"):
        keep = pos & fin if tag == "" else fin & ~pos
        if not keep.any():
            continue
        rr = np.where(keep, r, np.inf)
        for gs, ia in enumerate(row_blocks):
            for gd, jb in enumerate(col_blocks):
                block = rr[ia, jb]
                if not keep[ia, jb].any():
                    continue
                tail = f"b{gs}" if src_groups > 1 else ""
                part = f"p{gd}" if dst_groups > 1 else ""
                a_idx, b_idx = np.arange(rows)[ia], np.arange(cols)[jb]
                arr = ResistorArray(name, tuple(f"{dst}{a + 1}{part}" for a in a_idx.tolist()),
                                    tuple(f"{src}{tag}{b + 1}{tail}" for b in b_idx.tolist()), block,
                                    row_keys=a_idx + 1, col_keys=b_idx + 1, **extra)
                E.append(arr)
    return E


def wired_arrays(design) -> dict[str, list[ResistorArray]]:
    """The J, H, J^T crossbars on their wires (design.wires), one physical array per sign."""
    return {key: array_elements(prefix, getattr(design, r), getattr(design, s), src, dst, wires=design.wires)
            for key, prefix, r, s, src, dst in ARRAYS}


def wired_transfer(arrays: list[ResistorArray], rows: int, cols: int, src: str):
    """(G_pos, G_neg, Y_rr) of one array on wires: the DC current into destination a per volt on source b (G_pos)
    or on its inverted copy (G_neg), every other terminal at 0 V, and the destinations' own admittance block; from
    ResistorArray.port_admittance (the nodal solve of the lines), not from the element values."""
    gp, gn, yrr = np.zeros((rows, cols)), np.zeros((rows, cols)), np.zeros((rows, rows))
    for arr in arrays:
        g, y = arr.scatter_transfer(rows, cols)
        if arr.col_nodes[0].startswith(src + "n"):
            gn += g
        else:
            gp += g
        yrr += y
    return gp, gn, yrr


def _transfer(design, key: str):
    """wired_transfer of array key ("J", "H", "T") when the design has wires, else None."""
    if getattr(design, "wires", None) is None:
        return None
    _, _, r, _, src, _ = next(a for a in ARRAYS if a[0] == key)
    rows, cols = getattr(design, r).shape
    return wired_transfer(design.wired_arrays[key], rows, cols, src)


def _g(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=float)
    return np.where(np.isfinite(r), 1.0 / np.where(np.isfinite(r), r, 1.0), 0.0)


def _signed(r, s, k, o):
    """(M, c) of one array: I = M v + c (module doc)."""
    g = _g(r)
    neg = s < 0
    M = np.where(neg, -g * k[None, :], g)
    c = (np.where(neg, g, 0.0) * o[None, :]).sum(axis=1)
    return M, c, g.sum(axis=1)


def _inverter(design, group: str, n: int, effective: bool):
    """(k, o) of the inverters of one group (x, u, z)."""
    m = design.macro
    if m is None:
        return np.ones(n), np.zeros(n)
    g1, g2 = 1.0 / m.r_inv_in_ohm["inv_" + group], 1.0 / m.r_inv_fb_ohm["inv_" + group]
    if not effective or m.cell is not None:     # ideal op-amps, or a subcircuit op-amp (not modelled)
        return g1 / g2, np.zeros(n)
    a0 = m.gain
    den = g1 + g2 + a0 * g2
    return a0 * g1 / den, a0 * (g1 + g2) * m.offset_v["inv_" + group] / den


def _a0_os(design, group: str, n: int, effective: bool):
    if effective and finite_gain_model(design.macro) is not None:
        return design.macro.gain, design.macro.offset_v[group]
    return np.inf, np.zeros(n)


def stage_maps(design, effective: bool = False):
    """(P_u, c_u, P_z, c_z, M_T, c_T, Gsum_T) of the module doc."""
    n, m = design.d, design.m
    kx, ox = _inverter(design, "x", n, effective)
    ku, ou = _inverter(design, "u", m, effective)
    kz, oz = _inverter(design, "z", m, effective)
    v_maps = []
    for (key, r, s, k, o, rf, grp) in (("J", design.r_j_ohm, design.s_j, kx, ox, design.r_fu_ohm, "sum_u"),
                                       ("H", design.r_h_ohm, design.s_h, ku, ou, design.r_fz_ohm, "sum_z")):
        gf = 1.0 / rf
        a0, os = _a0_os(design, grp, m, effective)
        tr = _transfer(design, key)
        if tr is not None:   # wires: KCL with the dense admittance of the summing nodes, D V_o = -(M v + c) + Ysum os
            gp, gn, yrr = tr
            M, c = gp - gn * k[None, :], gn @ o
            ysum = yrr + np.diag(gf)
            D = np.diag(gf) + (ysum / a0 if np.isfinite(a0) else 0.0)
            v_maps.append((-np.linalg.solve(D, M), np.linalg.solve(D, -c + ysum @ os)))
            continue
        M, c, gs = _signed(r, s, k, o)
        den = gf + (gs + gf) / a0
        v_maps.append((-M / den[:, None], (-c + (gs + gf) * os) / den))
    tr = _transfer(design, "T")
    if tr is not None:   # the integrators' summing-node coupling through the J^T lines enters only over A0: its diagonal kept
        gp, gn, yrr = tr
        MT, cT, gsT = gp - gn * kz[None, :], gn @ oz, np.diag(yrr).copy()
    else:
        MT, cT, gsT = _signed(design.r_t_ohm, design.s_t, kz, oz)
    (pu, cu), (pz, cz) = v_maps
    return pu, cu, pz, cz, MT, cT, gsT


def realized_factors(design, effective: bool = False):
    """(L (N, m), P (m, N), dg (N,), b (N,)) with A = L P + diag(dg) in problem units (module doc)."""
    pu, cu, pz, cz, MT, cT, gsT = stage_maps(design, effective)
    a0, os = _a0_os(design, "int", design.d, effective)
    g_leak, g_in, g_n = _g(design.r_leak_ohm), _g(design.r_in_ohm), _g(design.r_noise_ohm)
    gsum = gsT + g_leak + g_in + g_n
    row = design.alpha * design.c_farad / (design.c_f_farad * (1.0 + 1.0 / a0))
    L = row[:, None] * (MT @ pz)
    dg = row * (g_leak + gsum / a0)
    b = -design.s_x * row * (MT @ (pz @ cu + cz) + cT + g_in * design.v_dac_v - gsum * os)
    return L, pu, dg, b


def drift_eigvals(L: np.ndarray, P: np.ndarray, dg: np.ndarray) -> np.ndarray:
    """The eigenvalues of L P + diag(dg): through the m x m core when dg is uniform (exact: eig(L P) is eig(P L)
    and N - m zeros, so dg_0 + eig(P L) and dg_0 for the rest; O(m^2 N)), else dense (O(N^3))."""
    if np.all(dg == dg[0]):
        core = np.linalg.eigvals(P @ L)
        return np.concatenate([dg[0] + core, np.full(L.shape[0] - len(core), dg[0])])
    return np.linalg.eigvals(L @ P + np.diag(dg))


def realized_parts(design):
    """(J_r (m, N), H_r (m, m), JT_r (N, m)) of the ideal-op-amp model (module doc)."""
    pu, _, pz, _, MT, _, _ = stage_maps(design, False)
    row = design.alpha * design.c_farad / design.c_f_farad
    return (-pu * design.s_u / design.s_x, -pz * design.s_z / design.s_u,
            row[:, None] * MT * design.s_x / design.s_z)


def macro_state_matrix(design) -> np.ndarray:
    """The homogeneous state matrix K (per tau, dz/dt = -K z + const) of the macromodel circuit with every
    op-amp's gain-bandwidth pole (no swing limit): the quasi-static model above leaves the poles out.

    States z = [V (N) integrator outputs, q (N) = V - s the feedback-capacitor voltages, p_u (m), p_z (m) summer
    outputs, p_x (N), p_un (m), p_zn (m) inverter outputs]. Every op-amp: dp/dt = w_p (A0 (os - v_minus) - p),
    w_p = 2 pi GBW / A0. Summer: v_minus = (sum G v_in + G_f p) / (Gs + G_f); inverter: (G1 v + G2 p) / (G1 + G2);
    integrator i: v_minus = V_i - q_i and C_i dq_i/dt = -sum_e G_e (v_e - v_minus). Used for stability (eigenvalues
    with positive real part: the loop settles), reported in design.json as ``macro_loop_*``.
    """
    mac = design.macro
    if mac is None or mac.gbw_hz is None:
        raise ValueError("macro_state_matrix needs the macro op-amp model with a finite gbw_hz")
    n, m = design.d, design.m
    a0, wp = mac.gain, 2 * np.pi * mac.gbw_hz / mac.gain
    sizes = [n, n, m, m, n, m, m]
    off = np.cumsum([0] + sizes)
    V, Q, PU, PZ, PX, PUN, PZN = (slice(off[k], off[k + 1]) for k in range(7))
    T = np.zeros((off[-1], off[-1]))       # dz/dt = T z (seconds)

    def parts(r, s):
        g = _g(r)
        return g * (s > 0), g * (s < 0), g.sum(axis=1)

    # summers: v_minus = (Gp v + Gn vn + Gf p) / (Gs + Gf)
    for P, (r, s, rf, src, srcn) in ((PU, (design.r_j_ohm, design.s_j, design.r_fu_ohm, V, PX)),
                                     (PZ, (design.r_h_ohm, design.s_h, design.r_fz_ohm, PU, PUN))):
        gp, gn, gs = parts(r, s)
        gf = 1.0 / rf
        den = (gs + gf)[:, None]
        T[P, src] += -wp * a0 * gp / den
        T[P, srcn] += -wp * a0 * gn / den
        T[P, P] += np.diag(-wp * a0 * gf / (gs + gf) - wp)
    # inverters: v_minus = (G1 v + G2 p) / (G1 + G2)
    for P, src, grp in ((PX, V, "inv_x"), (PUN, PU, "inv_u"), (PZN, PZ, "inv_z")):
        g1, g2 = 1.0 / mac.r_inv_in_ohm[grp], 1.0 / mac.r_inv_fb_ohm[grp]
        T[P, src] += np.diag(-wp * a0 * g1 / (g1 + g2))
        T[P, P] += np.diag(-wp * a0 * g2 / (g1 + g2) - wp)
    # integrators: v_minus = V - q
    gp, gn, gs = parts(design.r_t_ohm, design.s_t)
    g_leak, g_in, g_n = _g(design.r_leak_ohm), _g(design.r_in_ohm), _g(design.r_noise_ohm)
    gsum = gs + g_leak + g_in + g_n
    c = design.c_f_farad[:, None]
    T[Q, PZ] += -gp / c
    T[Q, PZN] += -gn / c
    T[Q, V] += np.diag((-g_leak + gsum) / design.c_f_farad)
    T[Q, Q] += np.diag(-gsum / design.c_f_farad)
    T[V, V] += np.diag(np.full(n, -wp * a0 - wp))
    T[V, Q] += np.diag(np.full(n, wp * a0))
    return -T * design.tau_s


def macro_loop_stability(design) -> dict:
    """``macro_loop_stable`` and the extreme real parts of the eigenvalues of macro_state_matrix (per tau)."""
    lam = np.linalg.eigvals(macro_state_matrix(design))
    return {"macro_loop_stable": bool(np.all(lam.real > 0)), "macro_loop_min_real_rate_tau": float(lam.real.min()),
            "macro_loop_max_real_rate_tau": float(lam.real.max())}


def circuit_drift_factors(design) -> DriftFactors:
    """The ideal-op-amp circuit's state equation in factors, in its own units (the voltages of the integrators'
    capacitor nodes st<i>, equal to their outputs x<i> (parts.amplifiers.integrator), seconds): x = s_x V_x with one
    scalar s_x, so dV/dt = -(L P + diag(dg)) V / tau_s + inputs with L = row M_T P_z (module doc), stated as
    U = row M_T / tau_s, W = P_z, VT = P_u (Circuit.drift_factors; the linear engine's method lowrank checks it
    against the circuit's operator). With ideal op-amps and inverters (k = 1, o = 0, A0 = inf) stage_maps reduces to
    M = s / r (1 / inf = 0: no resistor) and P = -M / G_f, computed here in place (two passes over each m x N
    array instead of stage_maps' where-and-copy temporaries: 15 s -> about 1 s at N = 1e5, m = 640); M_T P_z is
    never formed."""
    if design.macro is not None or getattr(design, "wires", None) is not None:
        raise ValueError("circuit_drift_factors: ideal op-amps on ideal lines only")
    VT = np.divide(design.s_j, design.r_j_ohm)
    VT *= (-design.r_fu_ohm)[:, None]
    W = np.divide(design.s_h, design.r_h_ohm)
    W *= (-design.r_fz_ohm)[:, None]
    row = design.alpha * design.c_farad / design.c_f_farad
    U = np.divide(design.s_t, design.r_t_ohm)
    U *= (row / design.tau_s)[:, None]
    return DriftFactors(tuple(f"st{i}" for i in range(1, design.d + 1)), U, W, VT,
                        row / design.r_leak_ohm / design.tau_s)
