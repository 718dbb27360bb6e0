"""Small-signal noise hooks of an op-amp integrator network whose OU noise enters at the summing nodes (used by
spu_sim.analyses.noise; topologies opamp and opamp_factored subclass it and give the theory).

Injection: the OU noise current into each summing node sum<i>, of two-sided intensity
q_I = 2 kappa C_f^2 / (tau_s s_x^2) (spu_sim.topologies.opamp.design), so g = sqrt(q_I R_aux / (2 kT)).
The design is made with analyses = [op] (no transient noise DAC, R_noise absent).
"""

from __future__ import annotations

import numpy as np

from .opamp import finite_gain_model


class SummingNodeNoise:
    """The hooks every such topology shares; ``theory(design, kT, element_noise)`` is the topology's."""

    def design_config(self, cfg):
        """The config the .noise design is made from: analyses = [op] (no transient noise DAC)."""
        return cfg.model_copy(update={"simulation": cfg.simulation.model_copy(update={"analyses": ["op"]})})

    def small_signal_design(self, design):
        return design

    def injection(self, design, kT: float, r_aux_ohm: float) -> tuple[list[str], np.ndarray]:
        q_i = 2.0 * design.problem.kappa * design.c_farad ** 2 / (design.tau_s * design.s_x ** 2)
        g = float(np.sqrt(q_i * r_aux_ohm / (2.0 * kT)))
        return [f"sum{i}" for i in range(1, design.d + 1)], np.full(design.d, g)

    def f_min_stop_hz(self, design) -> float:
        """The band must reach past the op-amp's unity-gain frequency."""
        m = finite_gain_model(design.macro)
        return 10 * m.gbw_hz if m is not None and m.gbw_hz is not None else 0.0

    def theory(self, design, kT: float, element_noise: bool) -> dict:
        raise NotImplementedError

    def extra_references(self, design) -> tuple[dict, dict]:
        return {}, {}
