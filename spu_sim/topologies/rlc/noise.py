"""Small-signal noise hooks of the RLC cell SPU (used by spu_sim.analyses.noise); ideal coupling only.

Injection into each cell node n<i> with g_i = sqrt(q_i R_aux / (2 kT)), q_i = 2 kT_eff,i / R_i the current
intensity the filesource gives cell i (its realised R_i); the cell resistors RR<i> go to ground and are the
(noiseless unless element_noise) damping. Theory: the 2d-dimensional SDE realized_sde() (z = (x, p)),
K S + S K^T = D, and the exact spectral density of the cell voltages (a resonance per mode; at low frequency
G ~ w^2: the inductors short DC). With switched coupling ngspice 39 evaluates every S switch as OFF in
small-signal analyses whatever its control voltage (docs/rlc.md): a BadInputError that says so.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...errors import BadInputError
from ...ideal import stationary_cov
from .sde import rlc_cell_sde


class RlcNoise:
    def design_config(self, cfg):
        if cfg.circuit.rlc.coupling != "ideal":
            raise BadInputError(
                "circuit.rlc.coupling: switched: the noise analysis cannot see the switched banks -- ngspice 39 treats "
                "S switches as OFF in small-signal analyses (.ac/.noise) whatever their control voltage. Use "
                "circuit.rlc.coupling: ideal for .noise, or the transient (spu-sim simulate / compare) for the banks")
        return cfg   # keeps tran: the rlc design needs it (the noise DACs are left out of the circuit)

    def small_signal_design(self, design):
        return dataclasses.replace(design, noise_v_rms=0.0)   # RR<i> to ground

    def injection(self, design, kT: float, r_aux_ohm: float) -> tuple[list[str], np.ndarray]:
        q_cell = 2.0 * design.kt_each_joule / design.r_cells
        return [f"n{i}" for i in range(1, design.d + 1)], np.sqrt(q_cell * r_aux_ohm / (2.0 * kT))

    def f_min_stop_hz(self, design) -> float:
        return 0.0

    def theory(self, design, kT: float, element_noise: bool) -> dict:
        """The 2d SDE of the realised circuit (cells' own kT_i; + the Johnson noise of R_i at kT with
        element_noise); S is the (d, d) voltage block of its stationary covariance."""
        kappa = design.kappa_each + (kT * design.s_x ** 2 / design.gamma if element_noise else 0.0)
        c_ref = design.gamma * design.a_ref
        sde = rlc_cell_sde(design.A_realized, kappa, design.tau_s / (design.r_cells * c_ref),
                           design.l_henry / design.l_cells, design.a_ref)
        d = design.d
        return {"K": sde.K, "D": sde.D, "S": stationary_cov(sde)[:d, :d]}

    def extra_references(self, design) -> tuple[dict, dict]:
        """The cell nodes (plot labels) and kT_eff Cm^-1 of the realised capacitances (problem units)."""
        kt_cm_inv = design.kappa_realized * np.linalg.inv(design.A_realized)   # = s_x^2 kT_eff Cm^-1
        return ({"nodes": np.array(design.readout_nodes), "kT_Cm_inv": kt_cm_inv},
                {"kT_Cm_inv_realized": kt_cm_inv})
