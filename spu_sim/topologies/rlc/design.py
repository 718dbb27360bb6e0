"""Design of the RLC unit-cell SPU (Melanson et al., 2023): problem (A, kappa) -> capacitances, bank codes.

The circuit (physics.md section 4), cell i = 1..d with node n<i>:

    grounded cell capacitor C_i, inductor L and resistor R (in series with a noise voltage e_i) to ground;
    coupling capacitance C_ij between nodes i and j (one capacitor, or a switched bank).

    Cm dv/dt = -i_L - v/R + e/R,      L di_L/dt = v,
    Maxwell matrix Cm_ii = C_i + (grounded parasitics at i) + sum_j C_ij,  Cm_ij = -C_ij.

With noise of two-sided intensity 2 kT/R per cell the stationary law is v ~ N(0, kT Cm^-1) and
i_L ~ N(0, kT L^-1), independent. The inductors short DC: the voltage mean is 0 whatever b is, so this
topology samples N(0, kappa A^-1) (Gaussian sampling, matrix inversion); it cannot solve A x = b.

Mapping (chosen here, reported in design.json and the netlist header):

    a_ref = max_i A_ii,  gamma = c_cell_farad / a_ref  [F per unit of A],   Cm_target = gamma A
    C_ij  = -gamma A_ij  (i != j; needs A_ij <= 0)
    C_i   = gamma sum_j A_ij - (parasitic load of the banks at node i, if compensated)
    x     = s_x v,  s_x = 4 sqrt(kappa max_i (A^-1)_ii) / v_swing_v   [units of x per volt]
    kT_eff = kappa gamma / s_x^2 [J]  (the effective temperature of the injected noise; kT at 300 K is
             4.1e-21 J, many orders below: the real thermal noise of the elements is negligible and not
             simulated)
    tau   = sqrt(L c_cell_farad)  [s]   (the period of the stiffest cell is about 2 pi tau)

Second-order SDE in problem units, time s = t / tau, state z = (x, p) with p = s_x tau i_L / c_cell_farad
(the inductor current in units of x), M = A / a_ref, eta = sqrt(L / c_cell_farad) / R:

    dx = -M^-1 (eta x + p) ds + sqrt(2 kappa eta / a_ref) M^-1 dW,      dp = x ds
    K = [[eta M^-1, M^-1], [-I, 0]],  f = 0,  D = (2 kappa eta / a_ref) blockdiag(M^-2, 0)

Its stationary covariance is blockdiag(kappa A^-1, (kappa / a_ref) I) (check: K S + S K^T = D). Mode k of
M (eigenvalue mu_k) oscillates at omega_k = sqrt(1/mu_k - eta^2/(4 mu_k^2)) per tau and decays at eta/(2 mu_k).

Switched bank of B bits per coupling (i < j): capacitor c_unit 2^k from n<i> to switch node s<i>_<j>_<k>,
switch from s<i>_<j>_<k> to n<j>, parasitic c_par from the switch node to ground. code_ij =
round(C_ij / c_unit) must lie in [0, 2^B - 1] (outside: DesignError, never clipping). The realised
capacitance matrix is the one the bank presents for r_on -> 0, r_off -> inf (the band of interest lies far
above 1/(r_off C) and far below 1/(r_on C)): an on bit couples c_unit 2^k and loads n<j> with c_par; an off
bit loads n<i> with the series value c_unit 2^k c_par / (c_unit 2^k + c_par). With compensation the cell
capacitor absorbs the known grounded load so that Cm_ii = gamma A_ii exactly and only the off-diagonal
entries carry quantisation error (at most half a step c_unit / 2 per coupling). r_on adds a little noiseless
damping to the coupling branches; r_off a conductance 1/r_off: neither is in the realised 2d SDE, both are in
netlist_sde (the exact linear model of the netlist as built; at r_on = 1 ohm it moves the voltage covariance
by about 7e-4 relative, linear in r_on).

Noise: the cell resistor is in series with a filesource voltage e_i: samples of rms e_n every h seconds,
linearly interpolated, give a current of low-frequency two-sided intensity e_n^2 h / R^2 = 2 kT_eff / R, so
e_n = sqrt(2 kT_eff R / h) (the Johnson voltage of R at T_eff). The interpolation removes noise power above
about 1/h, and the node voltage responds to the noise current up to its RC corner (eta / mu per tau, not only
at the oscillation frequency), so the finite step lowers the covariance: measured exactly with
spu_sim.experiments.rlc.interpolated_noise_cov (with the netlist's pre-emphasis; m_matrix, eta = 1):
1.5 % (relative, Frobenius) at noise_dt_tau = 0.05, 0.2 % at 0.01 (8 % and 1.7 % without pre-emphasis).
Default noise_dt_tau = 1/(noise_oversample max|eig K|), about 0.008 for eta = 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...config import SimulationConfig
from ...errors import DesignError
from ...ideal import LinearSDE
from ...problems import Problem
from .config import RlcCircuitConfig
from .sde import rlc_cell_sde, rlc_sde

SIGMA_HEADROOM = 4.0
K_BOLTZMANN = 1.380649e-23


def bank_values(code: np.ndarray | int, bits: int, c_unit: float) -> np.ndarray:
    """Capacitance of each bit of a code: c_unit 2^k where bit k is set, shape (..., bits)."""
    code = np.asarray(code, dtype=np.int64)
    k = np.arange(bits)
    return ((code[..., None] >> k) & 1) * c_unit * 2.0 ** k


def realized_capacitances(code: np.ndarray, c_cell: np.ndarray, bits: int, c_unit: float,
                          c_par: float) -> tuple[np.ndarray, np.ndarray]:
    """Coupling (d, d) and grounded parasitic load (d,) presented by switched banks with these codes.

    code (d, d) upper triangle used (bank of pair i < j: capacitors at n<i>, switches to n<j>).
    Returns (C_coupling symmetric with zero diagonal, load_ground (d,)).
    """
    d = code.shape[0]
    cc = np.zeros((d, d))
    load = np.zeros(d)
    caps_all = c_unit * 2.0 ** np.arange(bits)
    for i in range(d):
        for j in range(i + 1, d):
            on = bank_values(code[i, j], bits, c_unit)
            cc[i, j] = cc[j, i] = on.sum()
            on_mask = on > 0
            load[j] += c_par * on_mask.sum()
            off = caps_all[~on_mask]
            if c_par > 0:
                load[i] += float(np.sum(off * c_par / (off + c_par)))
    return cc, load


def maxwell_matrix(c_ground: np.ndarray, c_coupling: np.ndarray) -> np.ndarray:
    """Cm_ii = C_ground,i + sum_j C_ij, Cm_ij = -C_ij."""
    cc = np.array(c_coupling, dtype=float)
    np.fill_diagonal(cc, 0.0)
    return np.diag(np.asarray(c_ground, dtype=float) + cc.sum(1)) - cc


@dataclass(frozen=True)
class RlcDesign:
    """Every element value of the RLC SPU and the map back to problem units.

    Arrays: c_cell_farad (d,) grounded cell capacitors; c_coupling_farad (d, d) coupling capacitance
    (ideal: the capacitor value; switched: the sum of the on bits); code (d, d) bank codes (upper
    triangle; -1 in ideal mode); c_load_farad (d,) grounded parasitic load; cm_target_farad /
    cm_realized_farad (d, d) Maxwell matrices. Scalars: gamma (F per unit of A), a_ref, s_x (units of x
    per volt), tau_s, eta, noise_v_rms (filesource rms, volts), noise_dt_tau.
    """

    problem: Problem
    coupling: str
    bits: int
    c_unit_farad: float
    r_on_ohm: float
    r_off_ohm: float
    c_parasitic_farad: float
    v_control_v: float
    l_henry: float
    r_ohm: float
    c_cell_farad: np.ndarray
    c_coupling_farad: np.ndarray
    code: np.ndarray
    c_load_farad: np.ndarray
    cm_target_farad: np.ndarray
    cm_realized_farad: np.ndarray
    gamma: float
    a_ref: float
    s_x: float
    tau_s: float
    eta: float
    noise_v_rms: float
    noise_dt_tau: float
    v_swing_v: float
    x0_v: np.ndarray
        # non-idealities (spu_sim.topologies.rlc.nonideal.apply_rlc_nonidealities); None = the nominal values above
    c_bank_farad: np.ndarray | None = None     # (d, d, bits) realised bank capacitors (upper triangle)
    l_each_henry: np.ndarray | None = None     # (d,) realised inductors
    r_each_ohm: np.ndarray | None = None       # (d,) realised cell resistors
    notes: dict = field(default_factory=dict)
    intrinsic: Any = None                      # parts.intrinsic_noise.IntrinsicNoise (circuit.thermal_noise) or None

    @property
    def l_cells(self) -> np.ndarray:
        """(d,) realised inductors (the nominal l_henry when no non-ideality is set)."""
        return np.full(self.d, self.l_henry) if self.l_each_henry is None else self.l_each_henry

    @property
    def r_cells(self) -> np.ndarray:
        """(d,) realised cell resistors (the nominal r_ohm when no non-ideality is set)."""
        return np.full(self.d, self.r_ohm) if self.r_each_ohm is None else self.r_each_ohm

    def bank_capacitor(self, i: int, j: int, k: int) -> float:
        """Realised capacitor of bit k of bank (i, j), i < j (0-based): c_unit 2^k when nominal."""
        return self.c_unit_farad * 2 ** k if self.c_bank_farad is None else float(self.c_bank_farad[i, j, k])

    @property
    def kt_each_joule(self) -> np.ndarray:
        """(d,) kT of each cell's noise current 2 kT_i / R_i = e_n^2 h / R_i^2 (R_i realised)."""
        if not self.has_noise:
            return np.zeros(self.d)
        return self.noise_v_rms ** 2 * self.noise_dt_tau * self.tau_s / (2.0 * self.r_cells)

    @property
    def kappa_each(self) -> np.ndarray:
        """(d,) realised noise level of each cell in problem units, kT_i s_x^2 / gamma."""
        return self.kt_each_joule * self.s_x ** 2 / self.gamma

    @property
    def d(self) -> int:
        return self.problem.d

    @property
    def readout_nodes(self) -> list[str]:
        return [f"n{i + 1}" for i in range(self.d)]

    @property
    def has_noise(self) -> bool:
        return self.noise_v_rms > 0

    def to_problem_units(self, v: np.ndarray) -> np.ndarray:
        """Node voltages (..., d) in volts -> x in problem units."""
        return self.s_x * np.asarray(v)

    @property
    def kt_eff_joule(self) -> float:
        """kT of the injected noise: the noise current intensity is 2 kT_eff / R (low frequency)."""
        if not self.has_noise:
            return 0.0
        if self.r_each_ohm is not None:       # mismatched resistors: cells differ; report the mean
            return float(np.mean(self.kt_each_joule))
        h_s = self.noise_dt_tau * self.tau_s
        return self.noise_v_rms ** 2 * h_s / (2.0 * self.r_ohm)

    @property
    def A_realized(self) -> np.ndarray:
        """The precision matrix the element values implement, in problem units: Cm_realized / gamma."""
        return self.cm_realized_farad / self.gamma

    @property
    def b_realized(self) -> np.ndarray:
        """Always zero: the inductors short DC (no right-hand side in this topology)."""
        return np.zeros(self.d)

    @property
    def kappa_realized(self) -> float:
        """kT_eff s_x^2 / gamma: the noise level in problem units implemented by R and the filesource."""
        return self.kt_eff_joule * self.s_x ** 2 / self.gamma

    @property
    def step_problem_units(self) -> float:
        """One bank step c_unit in units of A (the quantisation grid of the off-diagonal entries)."""
        return self.c_unit_farad / self.gamma

    # ---- the design protocol used by pipeline/readout/compare
    def target_sde(self) -> LinearSDE:
        """The underdamped process with the target A and kappa (same eta, a_ref): x ~ N(0, kappa A^-1)."""
        return rlc_sde(self.problem.A, self.problem.kappa, self.eta, self.a_ref)

    @property
    def kappa_intrinsic(self) -> float:
        """Thermal noise of the cell resistors in problem units (circuit.thermal_noise): the cell's current noise
        2 kT / R adds kT to kT_eff, so kappa gains kT s_x^2 / gamma (0 when off). The noise floor with the noise
        DAC off."""
        spec = self.intrinsic
        return spec.kT_joule * self.s_x ** 2 / self.gamma if spec is not None and spec.thermal else 0.0

    def realized_sde(self) -> LinearSDE:
        """The process of the realised capacitance matrix and noise level (r_on -> 0, r_off -> inf); with
        mismatched L or R the per-cell form rlc_cell_sde. The injected and the thermal noise (kappa_intrinsic)
        are independent white currents into the same cells: their kappas add."""
        k_th = self.kappa_intrinsic
        if self.l_each_henry is None and self.r_each_ohm is None:
            return rlc_sde(self.A_realized, self.kappa_realized + k_th, self.eta, self.a_ref)
        c_ref = self.gamma * self.a_ref
        return rlc_cell_sde(self.A_realized, self.kappa_each + k_th, self.tau_s / (self.r_cells * c_ref),
                            self.l_henry / self.l_cells, self.a_ref)

    def effective_sde(self) -> LinearSDE:
        """The process the circuit implements: the realised 2d SDE (switch resistances aside: sde.netlist_sde)."""
        return self.realized_sde()

    @property
    def x0_state(self) -> np.ndarray:
        """(x0, p0 = 0): the node voltages start at x0 (via .ic), the inductor currents at zero."""
        return np.concatenate([self.problem.x0, np.zeros(self.d)])

    @property
    def has_mean(self) -> bool:
        """No: the inductors short DC, the voltage mean is 0 and .op is the trivial zero state."""
        return False

    @property
    def slowest_rate_tau(self) -> float:
        """The smallest decay rate (per tau) of the realised dynamics: min Re eig(K)."""
        return float(np.min(np.real(np.linalg.eigvals(self.realized_sde().K))))

    def describe(self) -> dict[str, object]:
        """Scalars of the mapping, for the netlist header and result files."""
        off = ~np.eye(self.d, dtype=bool)
        cc = self.c_coupling_farad[off]
        return {
            "topology": "rlc", "d": self.d, "coupling": self.coupling, "bits": self.bits,
            "c_unit_farad": self.c_unit_farad, "bank_full_scale_farad": self.c_unit_farad * (2 ** self.bits - 1),
            "r_on_ohm": self.r_on_ohm, "r_off_ohm": self.r_off_ohm, "c_parasitic_farad": self.c_parasitic_farad,
            "l_henry": self.l_henry, "r_ohm": self.r_ohm, "gamma_farad_per_unit": self.gamma, "a_ref": self.a_ref,
            "s_x_units_per_volt": self.s_x, "tau_s": self.tau_s, "eta": self.eta,
            "kt_eff_joule": self.kt_eff_joule, "t_eff_kelvin": self.kt_eff_joule / K_BOLTZMANN,
            "noise_v_rms": self.noise_v_rms, "noise_dt_tau": self.noise_dt_tau,
            "c_cell_min_farad": float(self.c_cell_farad.min()), "c_cell_max_farad": float(self.c_cell_farad.max()),
            "c_coupling_max_farad": float(cc.max()) if cc.size else 0.0,
            "n_switches": int(self.d * (self.d - 1) // 2 * self.bits) if self.coupling == "switched" else 0,
            "cm_rel_err": float(np.linalg.norm(self.cm_realized_farad - self.cm_target_farad)
                                / np.linalg.norm(self.cm_target_farad)),
            "v_swing_v": self.v_swing_v, "has_mean": False,
            "code": self.code.tolist(), "cm_realized_farad": self.cm_realized_farad.tolist(),
            **({"nonideal": {**self.notes, "l_each_henry": self.l_cells.tolist(), "r_each_ohm": self.r_cells.tolist(),
                             "c_cell_farad": self.c_cell_farad.tolist()}} if self.notes else {}),
        }


def check_representable(A: np.ndarray) -> None:
    """DesignError unless passive capacitive coupling can realise A (non-positive off-diagonal entries,
    non-negative row sums); the message names the entry and what would be representable."""
    d = A.shape[0]
    for i in range(d):
        for j in range(d):
            if i != j and A[i, j] > 0:
                raise DesignError(
                    f"problem.matrix[{i}][{j}] = {A[i, j]:.6g} > 0 cannot be realised by circuit.topology: rlc: "
                    "passive coupling capacitors give only A_ij <= 0 (Cm_ij = -C_ij). Representable: symmetric "
                    "M-matrices (non-positive off-diagonal entries, row sums >= 0, e.g. "
                    "problem.matrix.random.kind: m_matrix); use circuit.topology: opamp for other signs")
    rows = A.sum(1)
    for i in range(d):
        if rows[i] < -1e-12 * abs(A[i, i]):
            raise DesignError(
                f"problem.matrix row {i}: A_ii = {A[i, i]:.6g} is below the sum of |A_ij| over j != i "
                f"({A[i, i] - rows[i]:.6g}): the grounded cell capacitor C_{i} = gamma * rowsum would be negative. "
                "Representable: diagonally dominant rows (A_ii >= sum_j |A_ij|); rescale to D A D with "
                "D = diag(A^-1 1) (an M-matrix becomes diagonally dominant) or use circuit.topology: opamp")


def design_rlc(problem: Problem, circuit: RlcCircuitConfig, sim: SimulationConfig) -> RlcDesign:
    """Choose every nominal element value and bank code for the problem (see module doc);
    spu_sim.topologies.rlc.nonideal then realises them."""
    rc = circuit.rlc
    A = problem.A
    d = problem.d
    if "tran" not in sim.analyses:
        raise DesignError("simulation.analyses: circuit.topology rlc needs tran (its .op is always v = 0: the "
                          "inductors short DC)")
    check_representable(A)
    a_ref = float(np.max(np.diag(A)))
    gamma = rc.c_cell_farad / a_ref
    cm_target = gamma * A
    c_target = -gamma * A.copy()
    np.fill_diagonal(c_target, 0.0)
    c_target = np.clip(c_target, 0.0, None)  # exact zeros stay zero

    code = np.full((d, d), -1, dtype=np.int64)
    if rc.coupling == "ideal":
        c_coupling = c_target
        load = np.zeros(d)
    else:
        n_max = 2 ** rc.bits - 1
        full = rc.c_unit_farad * n_max
        for i in range(d):
            for j in range(i + 1, d):
                k = int(np.round(c_target[i, j] / rc.c_unit_farad))
                if k > n_max:
                    raise DesignError(
                        f"problem.matrix[{i}][{j}] = {A[i, j]:.6g} needs a coupling of {c_target[i, j]:.4g} F, beyond the "
                        f"{rc.bits}-bit bank's full scale {full:.4g} F (c_unit_farad {rc.c_unit_farad:.3g} x {n_max}); "
                        f"representable: |A_ij| <= {(n_max + 0.5) * rc.c_unit_farad / gamma:.4g} at this scale. Raise "
                        "circuit.rlc.c_unit_farad or bits, or lower c_cell_farad")
                code[i, j] = code[j, i] = k
        c_coupling, load = realized_capacitances(code, np.zeros(d), rc.bits, rc.c_unit_farad, rc.c_parasitic_farad)
    rowsum = gamma * A.sum(1)
    if rc.coupling == "switched" and rc.compensate_parasitics:
        # trim: the cell capacitor completes the node's total capacitance to gamma A_ii exactly
        c_cell = gamma * np.diag(A) - c_coupling.sum(1) - load
    else:
        c_cell = rowsum.copy()
    if np.any(c_cell < 0):
        i = int(np.argmin(c_cell))
        raise DesignError(
            f"cell {i}: the grounded cell capacitor would be {c_cell[i]:.4g} F < 0 (row sum of A {A[i].sum():.4g}, "
            f"parasitic load {load[i]:.4g} F); raise circuit.rlc.c_cell_farad, lower c_parasitic_farad, or set "
            "compensate_parasitics: false")
    c_cell = np.clip(c_cell, 0.0, None)
    cm_real = maxwell_matrix(c_cell + load, c_coupling)

    A_real = cm_real / gamma
    try:
        np.linalg.cholesky(A_real)
    except np.linalg.LinAlgError:
        raise DesignError("the realised capacitance matrix is not positive definite; use more bits") from None
    var_max = float(np.max(np.diag(np.linalg.inv(A_real)))) * problem.kappa
    s_x = SIGMA_HEADROOM * np.sqrt(var_max) / rc.v_swing_v if var_max > 0 else 1.0
    x0_max = float(np.max(np.abs(problem.x0)))
    if x0_max / s_x > 1.25 * rc.v_swing_v:
        if var_max > 0:
            raise DesignError(f"problem.x0: max |x0| = {x0_max:.3g} maps to {x0_max / s_x:.3g} V, beyond "
                              f"circuit.rlc.v_swing_v = {rc.v_swing_v:g}; lower x0 or raise v_swing_v")
        s_x = x0_max / rc.v_swing_v
    tau_s = float(np.sqrt(rc.l_henry * rc.c_cell_farad))
    eta = float(np.sqrt(rc.l_henry / rc.c_cell_farad) / rc.r_ohm)

    kappa = problem.kappa
    K = rlc_sde(A_real, max(kappa, 1.0), eta, a_ref).K
    lam_max = float(np.max(np.abs(np.linalg.eigvals(K))))
    noise_dt_tau = sim.noise_dt_tau or 1.0 / (sim.noise_oversample * lam_max)
    if kappa > 0 and "tran" in sim.analyses:
        kt_eff = kappa * gamma / s_x ** 2
        h_s = noise_dt_tau * tau_s
        noise_v = float(np.sqrt(2.0 * kt_eff * rc.r_ohm / h_s))
    else:
        noise_v = 0.0
    return RlcDesign(
        problem=problem, coupling=rc.coupling, bits=rc.bits, c_unit_farad=rc.c_unit_farad, r_on_ohm=rc.r_on_ohm,
        r_off_ohm=rc.r_off_ohm, c_parasitic_farad=rc.c_parasitic_farad if rc.coupling == "switched" else 0.0,
        v_control_v=rc.v_control_v, l_henry=rc.l_henry, r_ohm=rc.r_ohm, c_cell_farad=c_cell,
        c_coupling_farad=c_coupling, code=code, c_load_farad=load, cm_target_farad=cm_target,
        cm_realized_farad=cm_real, gamma=gamma, a_ref=a_ref, s_x=float(s_x), tau_s=tau_s, eta=eta,
        noise_v_rms=noise_v, noise_dt_tau=float(noise_dt_tau), v_swing_v=rc.v_swing_v, x0_v=problem.x0 / s_x)
