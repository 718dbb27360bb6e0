"""Small-signal noise hooks of the op-amp integrator SPU (used by spu_sim.analyses.noise).

Injection at the summing nodes sum<i> (spu_sim.parts.summing_node_noise, shared with opamp_factored); the design
is made with analyses = [op] (no transient noise DAC, R_noise absent).

Theory: the realised (effective, finite-gain) drift K, D = diag(q_I s_x^2 tau_s / (C_i (1 + 1/A0))^2)
(+ 2 kT Gsum_i s_x^2 tau_s / (C_i (1 + 1/A0))^2 with element noise: the coupling and input resistors'
Johnson current at the summing node) (+ the intrinsic white diffusion of circuit.thermal_noise and op-amp i_n,
OpampDesign.intrinsic_diffusion), S solves K S + S K^T = D.
"""

from __future__ import annotations

import numpy as np

from ...ideal import LinearSDE, stationary_cov
from ...parts.opamp import finite_gain_model
from ...parts.summing_node_noise import SummingNodeNoise
from .nonideal import NonidealOpampDesign


def _effective(design):
    """(K, C_i (d,), A0) of the drift .noise sees: the finite-gain model without the noise resistor."""
    if isinstance(design, NonidealOpampDesign):
        A, _, _ = design.effective_linear(include_noise_resistor=False)
        m = finite_gain_model(design.macro)
        a0 = m.gain if m is not None else np.inf
        return A, design.c_f_farad, a0
    return design.A_realized, np.full(design.d, design.c_farad), np.inf


class OpampNoise(SummingNodeNoise):
    def theory(self, design, kT: float, element_noise: bool) -> dict:
        A, cf, a0 = _effective(design)
        gain_fac = 1.0 if not np.isfinite(a0) else 1.0 + 1.0 / a0
        q_i = 2.0 * design.problem.kappa * design.c_farad ** 2 / (design.tau_s * design.s_x ** 2)
        Ddiag = q_i * design.s_x ** 2 * design.tau_s / (cf * gain_fac) ** 2
        if element_noise:
            g = np.where(np.isfinite(design.r_ohm), 1.0 / design.r_ohm, 0.0).sum(axis=1)
            if np.isfinite(design.r_in_ohm):
                r_in = design.r_in_each_ohm if isinstance(design, NonidealOpampDesign) else None
                g = g + 1.0 / (np.full(design.d, design.r_in_ohm) if r_in is None else r_in)
            Ddiag = Ddiag + 2.0 * kT * g * design.s_x ** 2 * design.tau_s / (cf * gain_fac) ** 2
        D = np.diag(Ddiag) + design.intrinsic_diffusion()     # thermal / i_n of circuit.thermal_noise, circuit.opamp
        sde = LinearSDE(A, np.zeros(design.d), D)
        return {"K": A, "D": D, "S": stationary_cov(sde)}
