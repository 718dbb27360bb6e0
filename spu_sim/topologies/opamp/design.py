"""Design of the op-amp integrator SPU: problem (A, b, kappa) -> element values, scaling, realised matrix.

The circuit (TNGD App. C style), one inverting integrator per variable i with output node x<i>:

    C_f dV_i/dt = - sum_j G_ij s_ij V_j  -  G_in V_dac,i  -  V_noise,i / R_noise

- s_ij = +1: the resistor R_ij = 1/G_ij is fed by V_j (node x<j>) -- realises A_ij > 0 (the diagonal
  "leak" included); s_ij = -1: it is fed by the inverted copy -V_j (node xn<j>, a unity-gain inverter)
  -- realises A_ij < 0. Exact zeros get no resistor.
- b enters as a DAC voltage V_dac,i = -b_i / (alpha s_x G_in) through R_in = 1/G_in (the sign flip of
  the inverting integrator).
- noise: a noise-DAC voltage (samples of rms noise_v_rms, linearly interpolated) through R_noise.

Scaling (chosen here, reported in the netlist header and result.npz):

    alpha  [ohm * problem units of A]: G_ij = |A_ij| / alpha, alpha = max|A_ij| * r_min_ohm
    s_x    [problem units of x per volt]: x = s_x V, chosen so |V| <= v_swing_v at mean + 4 sigma
    tau_s  [s]: tau = alpha * C_f, so the circuit obeys dx = -(A x - b) dt / tau exactly

so time in "tau" is the problem's own time unit: t_stop_tau of the config is t_stop_tau * tau_s seconds
of circuit time, and the fastest mode of A relaxes in about r_min_ohm * C_f seconds whatever the
magnitude of A's entries (a matrix with entries 1e4 and b = 1e-3 maps to the same voltages and
resistors as one with entries 1 and b = 1e-7).

Noise: a two-sided current intensity q_I at the summing node gives x the diffusion s_x^2 q_I / C_f^2
per second; matching the OU's 2 kappa / tau_s gives q_I = 2 kappa C_f^2 / (tau_s s_x^2). Noise-DAC
samples of rms v_n every h_s seconds, linearly interpolated, have low-frequency intensity v_n^2 h_s,
through R_noise a current intensity v_n^2 h_s / R_noise^2, so R_noise = v_n sqrt(h_s / q_I) with v_n the
configured noise_v_rms. R_noise is a fixed resistor, not a programmable one: it may lie below r_min_ohm,
down to r_noise_min_ohm; below that the DAC cannot deliver the noise (a DesignError: the amplitude is never
raised beyond noise_v_rms). Above r_max_ohm it is clamped and the amplitude lowered (reported in
design.json as noise_v_rms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse.linalg as spla

from ...config import SimulationConfig
from ...errors import DesignError
from ...ideal import LinearSDE, ou_sde
from ...parts.opamp import finite_gain_model
from ...problems import MAX_CONDITION, Problem
from ..base import OuDesign
from .config import OpampCircuitConfig

SIGMA_HEADROOM = 4.0


@dataclass(frozen=True)
class OpampDesign(OuDesign):
    """Every element value of the op-amp integrator SPU and the map back to problem units.

    Arrays: r_ohm (d, d) coupling resistors (inf = no resistor), sign (d, d) +1 fed by V_j, -1 by -V_j,
    v_dac_v (d,), x0_v (d,). Scalars: c_farad, r_in_ohm, r_noise_ohm (inf = no noise), noise_v_rms,
    alpha (ohm * units of A), s_x (units of x per volt), tau_s (seconds per tau), noise_dt_tau.
    """

    problem: Problem
    c_farad: float
    r_ohm: np.ndarray
    sign: np.ndarray
    r_in_ohm: float
    v_dac_v: np.ndarray
    r_noise_ohm: float
    noise_v_rms: float
    alpha: float
    s_x: float
    tau_s: float
    x0_v: np.ndarray
    noise_dt_tau: float
    v_swing_v: float
    pruned: list[tuple[int, int]] = field(default_factory=list)
    cond_realized: float = float("nan")    # |lambda|_max / |lambda|_min of the realised matrix (non-ideal: of the
                                           # realised element values, spu_sim.topologies.opamp.nonideal)
    macro: Any = None                      # the op-amp macromodel (parts.opamp.MacroOpamp) or None: ideal nullor
    notes: dict = field(default_factory=dict)  # the non-idealities applied (none for a nominal design)
    intrinsic: Any = None                  # parts.intrinsic_noise.IntrinsicNoise (thermal / op-amp noise) or None

    @property
    def d(self) -> int:
        return self.r_ohm.shape[0]

    @property
    def needs_inverter(self) -> np.ndarray:
        """(d,) bool: variable j drives at least one resistor through its inverted copy."""
        return np.any((self.sign < 0) & np.isfinite(self.r_ohm), axis=0)

    @property
    def readout_nodes(self) -> list[str]:
        return [f"x{i + 1}" for i in range(self.d)]

    @property
    def has_noise(self) -> bool:
        return bool(np.isfinite(self.r_noise_ohm))

    def to_problem_units(self, v: np.ndarray) -> np.ndarray:
        """Node voltages (..., d) in volts -> x in problem units."""
        return self.s_x * np.asarray(v)

    @property
    def A_realized(self) -> np.ndarray:
        """The drift the element values implement, in problem units: alpha * s_ij / R_ij."""
        g = np.where(np.isfinite(self.r_ohm), 1.0 / self.r_ohm, 0.0)
        return self.alpha * self.sign * g

    @property
    def b_realized(self) -> np.ndarray:
        """The right-hand side the DAC voltages implement: -alpha s_x V_dac / R_in."""
        if not np.isfinite(self.r_in_ohm):
            return np.zeros(self.d)
        return -self.alpha * self.s_x * self.v_dac_v / self.r_in_ohm

    @property
    def kappa_realized(self) -> float:
        """Noise level in problem units implemented by R_noise and the noise-DAC rms (low-frequency)."""
        if not self.has_noise:
            return 0.0
        h_s = self.noise_dt_tau * self.tau_s
        q_i = self.noise_v_rms ** 2 * h_s / self.r_noise_ohm ** 2
        return q_i * self.tau_s * self.s_x ** 2 / (2.0 * self.c_farad ** 2)

    def intrinsic_diffusion(self) -> np.ndarray:
        """(d, d) diffusion of the intrinsic white current noise in problem units per tau (0 without it).

        Resistor thermal noise and op-amp i_n (spu_sim.parts.intrinsic_noise) at summing node i: a white current of
        two-sided intensity q_i = 2 kT Gsum_i + i_n^2 / 2, Gsum_i the conductance of every resistor ending on the node
        (coupling, R_in, R_noise: their far ends are op-amp outputs and DACs, whose injected current changes no
        state). Integrator i: C_i (1 + 1/A0) dV_i = ... dt + dI_i, so D_ii = s_x^2 tau_s q_i / (C_i (1 + 1/A0))^2
        (A0 = inf for the ideal op-amp). Macromodel inverter j (R1, R2 into node ni<j>): its node current
        q_j = 2 kT (G1 + G2) + i_n^2 / 2 appears at xn<j> as -R2 i (quasi-static), and reaches every summing node i
        fed from xn<j> through G_ij: D += s_x^2 tau_s B diag(R2^2 q_j) B^T, B_ij = G_ij [s_ij < 0] / (C_i (1 + 1/A0)).
        Not included: e_n (its state diffusion and its direct feed-through into the output) and 1/f noise (not a
        white diffusion); their effect is measured by the transient and by .noise (analyses/noise.py)."""
        d = self.d
        spec = self.intrinsic
        if spec is None or not (spec.thermal or spec.in_a_per_rthz > 0):
            return np.zeros((d, d))
        kT = spec.kT_joule if spec.thermal else 0.0
        i2 = spec.in_a_per_rthz ** 2 / 2.0
        g = np.where(np.isfinite(self.r_ohm), 1.0 / self.r_ohm, 0.0)
        r_in = getattr(self, "r_in_each_ohm", None)
        r_in = np.full(d, self.r_in_ohm) if r_in is None else r_in
        r_n = getattr(self, "r_noise_each_ohm", None)
        r_n = np.full(d, self.r_noise_ohm) if r_n is None else r_n
        gsum = g.sum(axis=1) + 1.0 / r_in + 1.0 / r_n          # 1 / inf = 0: absent resistors
        cf = getattr(self, "c_f_farad", None)
        cf = np.full(d, self.c_farad) if cf is None else cf
        m = self.macro
        cg = cf * (1.0 + 1.0 / m.gain) if finite_gain_model(m) is not None else cf
        D = np.diag(self.s_x ** 2 * self.tau_s * (2.0 * kT * gsum + i2) / cg ** 2)
        if m is not None and self.needs_inverter.any():
            g1, g2 = 1.0 / m.r_inv_in_ohm, 1.0 / m.r_inv_fb_ohm
            qn = np.where(self.needs_inverter, (2.0 * kT * (g1 + g2) + i2) * m.r_inv_fb_ohm ** 2, 0.0)
            B = np.where(self.sign < 0, g, 0.0) / cg[:, None]
            D = D + self.s_x ** 2 * self.tau_s * (B * qn[None, :]) @ B.T
        return D

    @property
    def kappa_intrinsic(self) -> float:
        """The intrinsic noise floor with the noise DAC off, in problem units: mean_i D_int,ii / 2 (the kappa an
        isotropic injected noise of the same mean strength would have)."""
        return float(np.mean(np.diag(self.intrinsic_diffusion())) / 2.0)

    # ---- the design protocol used by pipeline/readout/compare (every topology provides these)
    def realized_sde(self) -> LinearSDE:
        """The process the element values implement (realised A, b and kappa, plus the intrinsic diffusion)."""
        sde = ou_sde(self.A_realized, self.b_realized, self.kappa_realized)
        return sde._replace(D=sde.D + self.intrinsic_diffusion()) if self.intrinsic is not None else sde

    def describe(self) -> dict[str, object]:
        """Scalars of the mapping, for the netlist header and result files."""
        r = self.r_ohm[np.isfinite(self.r_ohm)]
        return {
            "topology": "opamp", "d": self.d, "c_farad": self.c_farad, "alpha_ohm_units": self.alpha,
            "s_x_units_per_volt": self.s_x, "tau_s": self.tau_s, "r_in_ohm": self.r_in_ohm,
            "r_noise_ohm": self.r_noise_ohm, "noise_v_rms": self.noise_v_rms,
            "noise_dt_tau": self.noise_dt_tau, "r_coupling_min_ohm": float(r.min()),
            "r_coupling_max_ohm": float(r.max()), "n_resistors": int(r.size),
            "n_inverters": int(self.needs_inverter.sum()), "pruned_entries": len(self.pruned),
            "v_swing_v": self.v_swing_v,
        } | ({"kappa_intrinsic": self.kappa_intrinsic} if self.intrinsic is not None else {})


EXACT_SPECTRUM_MAX_D = 256


def spectrum_bounds(A_real: np.ndarray) -> tuple[float, float, np.ndarray | None]:
    """(largest |eigenvalue|, condition number, Cholesky factor or None) of the realised matrix, refusing an
    unstable one. The factor (upper, from the large-d path) solves for x* in O(d^2) (``solve_realized``).

    Symmetric A (always for this topology: pruning keeps the symmetry): stability is the Cholesky factorisation
    succeeding; above EXACT_SPECTRUM_MAX_D the largest eigenvalue comes from Lanczos (relative error 1e-6) and
    the condition number is LAPACK's 1-norm estimate from the factor (O(d^2): no eigen decomposition at large d).
    Otherwise the eigenvalues themselves. v0 is fixed so that the same matrix gives the same numbers.
    (The design refuses cond_2 > MAX_CONDITION; from the 1-norm estimate only when cond_1 / d, a lower bound of
    cond_2, exceeds it.)"""
    d = A_real.shape[0]
    unstable = DesignError("the realised matrix (after pruning) is not stable; lower prune_below_relative")
    if d <= EXACT_SPECTRUM_MAX_D or not np.array_equal(A_real, A_real.T):
        lam = np.linalg.eigvalsh(A_real) if np.array_equal(A_real, A_real.T) else np.linalg.eigvals(A_real)
        if np.any(lam.real <= 0):
            raise unstable
        return float(np.abs(lam).max()), float(np.abs(lam).max() / np.abs(lam).min()), None
    c, info = sla.lapack.dpotrf(A_real)
    if info != 0:
        raise unstable
    rcond, _ = sla.lapack.dpocon(c, np.abs(A_real).sum(axis=0).max())
    lam_max = float(spla.eigsh(A_real, k=1, which="LA", tol=1e-8, v0=np.ones(d), return_eigenvectors=False)[0])
    return lam_max, float(1.0 / rcond) if rcond > 0 else float("inf"), c


def solve_realized(A_real: np.ndarray, b: np.ndarray, factor: np.ndarray | None) -> np.ndarray:
    """A_real^-1 b: by the Cholesky factor of spectrum_bounds when there is one (O(d^2)), else by LU."""
    if factor is None:
        return np.linalg.solve(A_real, b)
    return sla.lapack.dpotrs(factor, b)[0]


def design_opamp(problem: Problem, circuit: OpampCircuitConfig, sim: SimulationConfig) -> OpampDesign:
    """Choose every nominal element value for the problem within the configured ranges (see module doc);
    spu_sim.topologies.opamp.nonideal then realises them."""
    ic = circuit.integrator
    A, b = problem.A, problem.b
    d = problem.d
    absA = np.abs(A)
    amax = float(absA.max())
    alpha = amax * ic.r_min_ohm
    tau_s = alpha * ic.c_farad

    # coupling resistors, with range checks and optional pruning (branch-free forms: a random sign pattern makes
    # np.where's masked selects 4 ms each at d = 1000)
    sign = 1.0 - 2.0 * (A < 0)
    with np.errstate(divide="ignore"):
        r_ohm = alpha / absA                       # an exact zero: inf, no resistor
    too_big = (r_ohm > ic.r_max_ohm) & (absA > 0)
    prunable = too_big & (absA < ic.prune_below_relative * amax)
    np.fill_diagonal(prunable, False)
    if (too_big & ~prunable).any():
        i, j = (int(k) for k in np.argwhere(too_big & ~prunable)[0])
        a = absA[i, j]
        raise DesignError(
            f"problem.matrix[{i}][{j}] = {A[i, j]:.3g} needs R = {alpha / a:.3g} ohm, above "
            f"circuit.integrator.r_max_ohm = {ic.r_max_ohm:.3g} (entries below "
            f"{ic.r_min_ohm / ic.r_max_ohm * amax:.3g} are not realisable); raise r_max_ohm, lower "
            f"r_min_ohm, or set circuit.integrator.prune_below_relative above {a / amax:.3g}")
    pruned: list[tuple[int, int]] = []
    if prunable.any():
        pruned = [(int(i), int(j)) for i, j in np.argwhere(prunable)]
        r_ohm[prunable] = np.inf
    A_real = alpha * sign * (1.0 / r_ohm)         # 1 / inf = 0: no resistor

    # voltage scale: mean + 4 sigma of the realised stationary law, and the initial state
    lam_max, cond, chol = spectrum_bounds(A_real)
    cond_2_at_least = cond if d <= EXACT_SPECTRUM_MAX_D else cond / d   # cond_2 >= cond_1 / d
    if cond_2_at_least > MAX_CONDITION:
        raise DesignError(f"the realised matrix is nearly singular (condition number {cond:.3g} > {MAX_CONDITION:g}):"
                          " no analog circuit resolves it; add a damping term (A + lambda I) or rescale")
    x_star = solve_realized(A_real, b, chol)
    var = (problem.kappa * np.clip(np.diag(np.linalg.inv(0.5 * (A_real + A_real.T))), 0, None) if problem.kappa > 0
           else np.zeros(d))
    spans = {"the solution A^-1 b (problem.matrix, problem.vector)": float(np.max(np.abs(x_star))),
             "4 sigma of the noise (problem.kappa)": float(np.max(SIGMA_HEADROOM * np.sqrt(var))),
             "problem.x0": float(np.max(np.abs(problem.x0))) if d else 0.0}
    x_range = float(max(np.max(np.abs(x_star) + SIGMA_HEADROOM * np.sqrt(var)), spans["problem.x0"]))
    scale_cause = max(spans, key=spans.get)
    s_x = x_range / ic.v_swing_v if x_range > 0 else 1.0

    # right-hand side: one R_in, DAC at full scale for the largest |b_i|
    bmax = float(np.abs(b).max())
    if bmax > 0:
        g_in = bmax / (alpha * s_x * ic.v_dac_max_v)
        r_in = 1.0 / g_in
        if r_in < ic.r_min_ohm:
            r_in = ic.r_min_ohm
        if r_in > ic.r_max_ohm:
            raise DesignError(
                f"problem.vector: |b| = {bmax:.3g} needs R_in = {r_in:.3g} ohm > circuit.integrator.r_max_ohm = "
                f"{ic.r_max_ohm:g}, because the voltage scale s_x = {s_x:.3g} [x]/V is set by {scale_cause} "
                f"(|x| up to {spans[scale_cause]:.3g}); fix that, or raise r_max_ohm or v_dac_max_v")
        v_dac = -b / (alpha * s_x) * r_in
    else:
        r_in, v_dac = np.inf, np.zeros(d)

    # noise step and noise resistor
    noise_dt_tau = sim.noise_dt_tau or 1.0 / (sim.noise_oversample * lam_max)
    if problem.kappa > 0 and "tran" in sim.analyses:
        h_s = noise_dt_tau * tau_s
        q_i = 2.0 * problem.kappa * ic.c_farad ** 2 / (tau_s * s_x ** 2)
        v_n = ic.noise_v_rms
        r_noise = v_n * np.sqrt(h_s / q_i)
        if r_noise > ic.r_max_ohm:
            r_noise = ic.r_max_ohm
            v_n = r_noise * np.sqrt(q_i / h_s)
        if r_noise < ic.r_noise_min_ohm:   # the configured noise DAC cannot deliver it: never raise it silently
            need = ic.r_noise_min_ohm * np.sqrt(q_i / h_s)
            raise DesignError(
                f"problem.kappa = {problem.kappa:.3g} needs noise-DAC samples of {need:.3g} V rms even through the "
                f"smallest noise resistor (circuit.integrator.r_noise_min_ohm = {ic.r_noise_min_ohm:g}), above "
                f"circuit.integrator.noise_v_rms = {ic.noise_v_rms:g}; set noise_v_rms to at least {need:.3g} if the "
                "noise DAC can deliver it, lower r_noise_min_ohm, or lower kappa")
    else:
        r_noise, v_n = np.inf, 0.0

    return OpampDesign(problem=problem, c_farad=ic.c_farad, r_ohm=r_ohm, sign=sign, r_in_ohm=float(r_in),
                          v_dac_v=v_dac, r_noise_ohm=float(r_noise), noise_v_rms=float(v_n), alpha=alpha,
                          s_x=s_x, tau_s=tau_s, x0_v=problem.x0 / s_x, noise_dt_tau=float(noise_dt_tau),
                       v_swing_v=ic.v_swing_v, pruned=pruned,
                       cond_realized=cond)
