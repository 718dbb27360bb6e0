"""Small-signal noise hooks of the factorised circuit (used by spu_sim.analyses.noise).

Injection as in ``opamp`` (spu_sim.parts.summing_node_noise, shared): the OU noise current of two-sided
intensity q_I = 2 kappa C_f^2 / (tau_s s_x^2) into each integrator's summing node sum<i>; the design is made
with analyses = [op] (no noise DACs).

Theory: drift K = the effective (finite-gain, quasi-static) drift of spu_sim.topologies.opamp_factored.linear
(the realised one for ideal op-amps), D = diag(q_I s_x^2 tau_s / (C_i (1 + 1/A0))^2), S solves K S + S K^T = D.
With element_noise the Johnson noise of every resistor enters: at sum<i> (J^T array, leak, R_in: 2 kT Gsum_i)
directly, at the summers' nodes su<k> and sz<l> (their input and feedback resistors) through the summers and
the downstream arrays; ideal op-amps only (with the macromodel the element-noise theory is refused).
"""

from __future__ import annotations

import numpy as np

from ...errors import BadInputError
from ...ideal import LinearSDE, stationary_cov
from ...parts.opamp import finite_gain_model
from ...parts.summing_node_noise import SummingNodeNoise
from .linear import _g, stage_maps


class FactoredNoise(SummingNodeNoise):
    def theory(self, design, kT: float, element_noise: bool) -> dict:
        eff = finite_gain_model(design.macro) is not None
        L, P, dg, _ = design.factors_realized(eff)
        K = L @ P + np.diag(dg)
        gain_fac = 1.0 if not eff else 1.0 + 1.0 / design.macro.gain
        cf = design.c_f_farad * gain_fac
        q_i = 2.0 * design.problem.kappa * design.c_farad ** 2 / (design.tau_s * design.s_x ** 2)
        scale = design.s_x ** 2 * design.tau_s
        D = np.diag(q_i * scale / cf ** 2)
        if element_noise:
            if eff:
                raise BadInputError("noise --element-noise: the element-noise theory of opamp_factored covers ideal "
                                    "op-amps only; use circuit.opamp.model: ideal")
            pu, _, pz, _, MT, _, gsT = stage_maps(design, False)
            g_int = gsT + _g(design.r_leak_ohm) + _g(design.r_in_ohm)
            g_u = _g(design.r_j_ohm).sum(1) + 1.0 / design.r_fu_ohm
            g_z = _g(design.r_h_ohm).sum(1) + 1.0 / design.r_fz_ohm
            # a current i at su<k> moves V_u by -R_fu i, at sz<l> V_z by -R_fz i; V_z enters as -M_T V_z / C
            bu = (MT @ pz) * design.r_fu_ohm[None, :]           # d(I_T) / d(i_u) = M_T P_z (-R_fu) -> sign squared
            bz = -MT * design.r_fz_ohm[None, :]
            Dc = np.diag(g_int) + (bu * g_u[None, :]) @ bu.T + (bz * g_z[None, :]) @ bz.T   # current noise / (2kT)
            D = D + 2.0 * kT * scale * Dc / np.outer(cf, cf)
        sde = LinearSDE(K, np.zeros(design.d), D)
        return {"K": K, "D": D, "S": stationary_cov(sde)}
