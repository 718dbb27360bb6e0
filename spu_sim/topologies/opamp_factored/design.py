"""Design of the factorised TNGD circuit: factors (J, H, lambda), b, kappa -> element values and scaling.

The circuit (TNGD App. C; physics.md section 8), all voltages, x = s_x V_x:

    summer k (m)   V_u,k = -R_fu sum_j G^J_kj w_kj             u = J x        (inverting summer)
    summer l (m)   V_z,l = -R_fz sum_k G^H_lk y_lk             z = H u        (inverting summer)
    integrator i   C_f dV_x,i/dt = -sum_l G^T_il q_il - G_leak V_x,i - G_in V_dac,i - V_noise,i / R_noise

Every array uses the sign rule of ``opamp``: a positive entry is a resistor fed by the node itself, a negative
entry one fed by the node's inverted copy (w_kj = V_x,j or xn_j = -V_x,j; y_lk = V_u,k or un_k; q_il = V_z,l
or zn_l); exact zeros get no resistor. G^J = |J| / alpha_J, G^H = |H| / alpha_H, G^T = |J^T| / alpha_T. The
two inverting summers cancel each other's sign, and the integrator's own inversion gives the minus of the drift:

    V_u = -(R_fu / alpha_J) J V_x,  V_z = (R_fz R_fu / (alpha_H alpha_J)) H J V_x,
    C_f dV_x/dt = -[(R_fu R_fz / (alpha_J alpha_H alpha_T)) J^T H J + G_leak] V_x - ...

Scaling (chosen here, in design.json and the netlist header). Voltage scales x = s_x V_x, u = J x = -s_u V_u,
z = H u = s_z V_z from the mean + 4 sigma of each stage (and the initial state):

    alpha_J = max(max|J| r_min, r_f,min s_u / s_x),   R_fu = alpha_J s_x / s_u   (>= r_f,min = r_min / 100; at most
                                                                   r_max, then s_u = alpha_J s_x / r_max)
    alpha_H = max(max|H| r_min, r_f,min s_z / s_u),   R_fz = alpha_H s_u / s_z   (same clamps)
    alpha   = r_min max_i A_ii  [ohm * units of A] (see below),  alpha_T = alpha s_x / s_z,
    G_leak  = lambda / alpha,   tau = alpha C_f,  so dx = -(J^T H J x + lambda x - b) dt / tau in problem units.

The largest entry of the J and H arrays gets r_min unless the summer's feedback resistor would fall below
r_min / 100 (then the whole array moves up, keeping R_f = r_min / 100). The feedback resistors are fixed parts
(an attenuating summer: a sum of N inputs can exceed any single input); letting them go below the programmable
range keeps the arrays' full r_min..r_max range for the factors' small entries (with R_f >= r_min, a GGN factor
at N = 1210 lost a factor 30 of it and its small entries became unrealisable). The time unit is the dense ``opamp`` topology's
(alpha = max|A_ij| r_min, max|A_ij| = max_i A_ii for SPD A: the same tau_s and the same relaxation in seconds),
unless the J^T array would then need resistors below r_min (then alpha_T = max|J| r_min and tau is longer), or
its smallest kept entry a resistor above r_max (then alpha_T = r_max min|J| and tau is shorter, down to the
leak at r_min): alpha = max(alpha_lo, min(r_min max_i A_ii, r_max min|J| s_z / s_x)),
alpha_lo = max(lambda r_min, r_min max|J| s_z / s_x). R_in, V_dac and
R_noise as in ``opamp`` (spu_sim.topologies.opamp.design) with this alpha and s_x. Nothing of size N x N is
formed: the voltage scales use FactoredProblem's O(m^2 N) identities.

Element count: m N (J) + m^2 (H) + N m (J^T) = m (m + 2N) array resistors for dense factors, plus O(N) (N leak
resistors, N R_in, N R_noise, 2m feedback resistors, inverters; see ``element_counts``).

The realised drift (spu_sim.topologies.opamp_factored.linear) is computed from the element values, in factors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ...config import SimulationConfig
from ...errors import DesignError
from ...ideal import LinearSDE
from ...parts.opamp import finite_gain_model
from ..base import OuDesign
from .config import FactoredCircuitConfig
from .linear import drift_eigvals, macro_loop_stability, realized_factors, realized_parts, wired_arrays
from ...problems.factored import FactoredProblem

SIGMA_HEADROOM = 4.0
#: the summers' feedback resistors are fixed parts, not programmable: allowed down to this fraction of r_min
FEEDBACK_MIN_FRACTION = 0.01
DENSE_EIG_MAX_N = 1500


@dataclass(frozen=True)
class FactoredDesign(OuDesign):
    """Every element value of the factorised circuit (realised values; nominal unless non-idealities apply).

    Arrays (inf = no resistor): r_j_ohm (m, N), s_j (m, N, int8) +1 fed by x_j / -1 by xn_j; r_h_ohm (m, m), s_h;
    r_t_ohm (N, m; nominal: the transposed view of an m x N array), s_t (= s_j.T); r_fu_ohm (m,), r_fz_ohm (m,)
    summer feedback; r_leak_ohm (N,); r_in_ohm (N,); r_noise_ohm (N,); c_f_farad (N,); v_dac_v (N,); x0_v (N,).
    Scalars: c_farad (nominal C_f), alphas, scales.
    macro: spu_sim.topologies.opamp_factored.nonideal.FactoredMacro or None (ideal nullors).
    """

    problem: FactoredProblem
    c_farad: float
    r_j_ohm: np.ndarray
    s_j: np.ndarray
    r_h_ohm: np.ndarray
    s_h: np.ndarray
    r_t_ohm: np.ndarray
    s_t: np.ndarray
    r_fu_ohm: np.ndarray
    r_fz_ohm: np.ndarray
    r_leak_ohm: np.ndarray
    r_in_ohm: np.ndarray
    v_dac_v: np.ndarray
    r_noise_ohm: np.ndarray
    c_f_farad: np.ndarray
    noise_v_rms: float
    alpha: float
    alpha_j: float
    alpha_h: float
    alpha_t: float
    s_x: float
    s_u: float
    s_z: float
    tau_s: float
    x0_v: np.ndarray
    noise_dt_tau: float
    v_swing_v: float
    r_fu_nominal_ohm: float = 0.0
    r_fz_nominal_ohm: float = 0.0
    pruned: list = field(default_factory=list)
    macro: Any = None
    notes: dict = field(default_factory=dict)
    dropped: list = field(default_factory=list)            # ("J" | "H" | "JT", i, j) rounded to code 0 (r_bits)
    r_nominal: dict = field(default_factory=dict)          # array key (r_j_ohm, ...) -> its nominal resistors
    wires: tuple | None = None     # (r_ohm_per_segment, c_farad_per_segment) of circuit.wires; None: ideal lines
    intrinsic: Any = None          # parts.intrinsic_noise.IntrinsicNoise (thermal / op-amp noise) or None
    intrinsic_diffusion: Any = None    # (d, d) its white diffusion per tau (topologies.intrinsic) or None
    netlist_sde: Any = None        # macromodel op-amps: the circuit's own process (topologies.intrinsic.circuit_sde)

    @cached_property
    def wired_arrays(self) -> dict:
        """The J, H, J^T crossbars on their wires, built once (the netlist and the realised model share them, and so
        their port admittance): spu_sim.topologies.opamp_factored.linear.wired_arrays."""
        return wired_arrays(self)

    # ---- sizes, nodes, inverters
    @property
    def d(self) -> int:
        return self.r_j_ohm.shape[1]

    @property
    def m(self) -> int:
        return self.r_j_ohm.shape[0]

    @property
    def readout_nodes(self) -> list[str]:
        return [f"x{i + 1}" for i in range(self.d)]

    @cached_property
    def array_stats(self) -> dict[str, "ArrayStats"]:
        """ArrayStats of the J and J^T arrays ("J", "T"), in one pass over each (array_stats): the inverters, the
        element counts and the header's resistor range read them."""
        return {"J": array_stats(self.r_j_ohm, self.s_j), "T": array_stats(self.r_t_ohm, self.s_t)}

    @property
    def inv_x(self) -> np.ndarray:
        """(N,) x_j feeds some J resistor through its inverted copy (computed once per design: the build, the element
        counts and the header read it)."""
        return self.array_stats["J"].inverted

    @cached_property
    def inv_u(self) -> np.ndarray:
        return np.any((self.s_h < 0) & np.isfinite(self.r_h_ohm), axis=0)

    @property
    def inv_z(self) -> np.ndarray:
        return self.array_stats["T"].inverted

    @property
    def has_noise(self) -> bool:
        return bool(np.all(np.isfinite(self.r_noise_ohm)))

    def to_problem_units(self, v: np.ndarray) -> np.ndarray:
        return self.s_x * np.asarray(v)

    # ---- the realised / effective linear model (spu_sim.topologies.opamp_factored.linear)
    def factors_realized(self, effective: bool = False):
        """(L (N, m), P (m, N), diag (N,), c (N,)): A = L P + diag(diag), b = c, in problem units.
        effective: the finite-gain, offset model of the macro op-amps (else ideal op-amps)."""
        return realized_factors(self, effective)

    @property
    def J_realized(self) -> np.ndarray:
        """(m, N) J as the J array and its summers realise it, u = J_realized x (nominal: J)."""
        return realized_parts(self)[0]

    @property
    def H_realized(self) -> np.ndarray:
        """(m, m) H as the H array and its summers realise it, z = H_realized u (nominal: H)."""
        return realized_parts(self)[1]

    @property
    def A_realized(self) -> np.ndarray:
        """Dense (N, N) realised drift JT_r H_r J_r + diag(damping_r), from the element values: one N x N array at
        peak (the diagonal added in place), as engines.base.RESULT_MATRICES_IN_MEMORY counts it."""
        return _low_rank_plus_diag(*self.factors_realized()[:3])

    @property
    def b_realized(self) -> np.ndarray:
        return self.factors_realized()[3]

    @property
    def A_effective(self) -> np.ndarray:
        return _low_rank_plus_diag(*self.factors_realized(True)[:3])

    @property
    def b_effective(self) -> np.ndarray:
        return self.factors_realized(True)[3]

    @property
    def kappa_each(self) -> np.ndarray:
        """(N,) realised noise level of each variable (low-frequency intensity), as in opamp."""
        if not self.has_noise:
            return np.zeros(self.d)
        h_s = self.noise_dt_tau * self.tau_s
        q_i = self.noise_v_rms ** 2 * h_s / self.r_noise_ohm ** 2
        return q_i * self.tau_s * self.s_x ** 2 / (2.0 * self.c_f_farad ** 2)

    @property
    def kappa_realized(self) -> float:
        return float(np.mean(self.kappa_each))

    def _gain_factor(self) -> float:
        return 1.0 if finite_gain_model(self.macro) is None else 1.0 + 1.0 / self.macro.gain

    def intrinsic_d(self) -> np.ndarray:
        """The intrinsic white diffusion in the judge (topologies.intrinsic; zeros when off or not modelled)."""
        D = self.intrinsic_diffusion
        return np.zeros((self.d, self.d)) if D is None else D

    @property
    def kappa_intrinsic(self) -> float:
        """The intrinsic noise floor with the noise DAC off, in problem units: mean_i D_int,ii / 2 (NaN when the
        circuit's intrinsic diffusion is not modelled: macromodel op-amps, the logistic sigmoid)."""
        D = self.intrinsic_diffusion
        return float("nan") if D is None else float(np.mean(np.diag(D)) / 2.0)

    def realized_sde(self) -> LinearSDE:
        return LinearSDE(self.A_realized, self.b_realized, np.diag(2.0 * self.kappa_each) + self.intrinsic_d())

    def effective_sde(self) -> LinearSDE:
        """Ideal op-amps: the realised process. Macromodel: the circuit's own linear process read from the netlist
        (gain, GBW, offsets, r_out, c_in, wires, noise DACs and the intrinsic white currents; its first d states
        the readouts: topologies.intrinsic.circuit_sde), else (more than its MAX_SDE_STATES states) the
        quasi-static finite-gain model without the intrinsic noise."""
        if finite_gain_model(self.macro) is None:   # ideal op-amps, or a subcircuit op-amp (not modelled)
            return self.realized_sde()
        if self.netlist_sde is not None:
            return self.netlist_sde
        return LinearSDE(self.A_effective, self.b_effective, np.diag(2.0 * self.kappa_each / self._gain_factor() ** 2))

    @property
    def slowest_rate_tau(self) -> float:
        """Re lambda_min of the realised drift: the nominal design's exactly in O(m^2 N) (lambda + min(0,
        eig(K^1/2 H K^1/2)), K = J J^T); a non-ideal one's from its eigenvalues up to N = 1500 (else nominal; linear.drift_eigvals:
        O(m^2 N) when the leak is uniform, dense otherwise)."""
        if self.notes and self.d <= DENSE_EIG_MAX_N:    # realised values differ from the nominal ones
            return float(np.min(np.real(drift_eigvals(*self.factors_realized()[:3]))))
        return nominal_lambda_min(self.problem)

    def element_counts(self) -> dict[str, int]:
        """Resistors per array, summers, inverters, and the total element count of the netlist (counted once per
        design: the engine's workload and the netlist header both ask, and each count passes over the m x N arrays)."""
        return dict(self._element_counts)

    @cached_property
    def _element_counts(self) -> dict[str, int]:
        def fin(r: np.ndarray) -> int:
            return int(np.count_nonzero(np.isfinite(r)))
        n, m = self.d, self.m
        st = self.array_stats
        c = {"n_resistors_J": st["J"].n_finite, "n_resistors_H": fin(self.r_h_ohm),
             "n_resistors_JT": st["T"].n_finite, "n_resistors_leak": fin(self.r_leak_ohm),
             "n_resistors_in": fin(self.r_in_ohm), "n_resistors_noise": fin(self.r_noise_ohm),
             "n_resistors_feedback": 2 * m, "n_summers": 2 * m, "n_integrators": n,
             "n_inverters": int(np.count_nonzero(self.inv_x) + np.count_nonzero(self.inv_u)
                                + np.count_nonzero(self.inv_z))}
        c["n_array_resistors"] = c["n_resistors_J"] + c["n_resistors_H"] + c["n_resistors_JT"]
        c["n_array_resistors_dense_formula"] = m * (m + 2 * n)   # m (m + 2N): every factor entry non-zero
        inv_r = 2 * c["n_inverters"] if self.macro is not None else 0
        c["n_resistors_total"] = (c["n_array_resistors"] + c["n_resistors_leak"] + c["n_resistors_in"]
                                  + c["n_resistors_noise"] + c["n_resistors_feedback"] + inv_r)
        c["n_resistors_dense_opamp_equivalent"] = n * n    # the dense topology's coupling array
        return c

    def describe(self) -> dict[str, object]:
        st = self.array_stats      # the J and J^T arrays' range from their one pass; H and the leak are small
        small = [(float(np.min(r, initial=np.inf)), float(np.max(r, where=np.isfinite(r), initial=-np.inf)))
                 for r in (self.r_h_ohm, self.r_leak_ohm)]
        ranges = [(st["J"].r_min, st["J"].r_max_finite), small[0], (st["T"].r_min, st["T"].r_max_finite), small[1]]
        r_lo = min(lo for lo, _ in ranges)       # inf: no resistor
        r_hi = max(hi for _, hi in ranges)
        out = {"topology": "opamp_factored", "d": self.d, "m": self.m, "damping": self.problem.damping,
               "c_farad": self.c_farad, "alpha_ohm_units": self.alpha, "alpha_j_ohm_units": self.alpha_j,
               "alpha_h_ohm_units": self.alpha_h, "alpha_t_ohm_units": self.alpha_t,
               "s_x_units_per_volt": self.s_x, "s_u_units_per_volt": self.s_u, "s_z_units_per_volt": self.s_z,
               "tau_s": self.tau_s, "r_fu_ohm": self.r_fu_nominal_ohm, "r_fz_ohm": self.r_fz_nominal_ohm,
               "r_leak_ohm": float(np.min(self.r_leak_ohm)), "r_in_ohm": float(np.min(self.r_in_ohm)),
               "r_noise_ohm": float(np.min(self.r_noise_ohm)), "noise_v_rms": self.noise_v_rms,
               "noise_dt_tau": self.noise_dt_tau, "r_array_min_ohm": r_lo,
               "r_array_max_ohm": r_hi, "pruned_entries": len(self.pruned), "dropped_entries": len(self.dropped),
               "v_swing_v": self.v_swing_v}
        out.update(self.element_counts())
        if self.notes:
            out["nonideal"] = self.notes
        if finite_gain_model(self.macro) is not None and self.macro.gbw_hz is not None and self.d <= DENSE_EIG_MAX_N:
            out.update(macro_loop_stability(self))   # the summers' and integrators' poles in the loop
        return out


@dataclass(frozen=True)
class ArrayStats:
    """One crossbar's values at a glance: n_finite (resistors present), r_min (np.min of the array: inf when empty,
    NaN when it holds one), r_max_finite (largest present resistor, -inf when none), inverted (per column: some
    present entry has sign < 0, i.e. the column's source feeds it through its inverted copy)."""

    n_finite: int
    r_min: float
    r_max_finite: float
    inverted: np.ndarray


#: rows (in memory order) per chunk of array_stats (32 rows of 1e5 entries: 26 MB of doubles)
STATS_CHUNK_ROWS = 32


def array_stats(r: np.ndarray, s: np.ndarray) -> ArrayStats:
    """ArrayStats of the resistors r (inf: none) with signs s, in one pass over both by chunks of rows in memory order
    (a Fortran-ordered pair, the J^T array, as its transpose) instead of a pass and a temporary per statistic (the
    counts, the inverters and the header's range were six passes over each m x N array and four boolean copies);
    the same values (counts, min, max and any do not depend on the order)."""
    f_order = r.flags.f_contiguous and not r.flags.c_contiguous
    rc, sc = (r.T, s.T) if f_order else (r, s)
    rows, cols = rc.shape
    n_fin, r_min, r_max = 0, np.inf, -np.inf
    inv = np.zeros(rows if f_order else cols, dtype=bool)
    for i0 in range(0, rows, STATS_CHUNK_ROWS):
        sl = slice(i0, i0 + STATS_CHUNK_ROWS)
        blk = rc[sl]
        fin = np.isfinite(blk)
        n_fin += int(np.count_nonzero(fin))
        r_min = np.minimum(r_min, np.min(blk, initial=np.inf))
        r_max = max(r_max, float(np.max(blk, where=fin, initial=-np.inf)))
        neg = (sc[sl] < 0) & fin
        if f_order:
            inv[sl] = neg.any(axis=1)
        else:
            inv |= neg.any(axis=0)
    return ArrayStats(n_fin, float(r_min), r_max, inv)


def _low_rank_plus_diag(L: np.ndarray, P: np.ndarray, dg: np.ndarray) -> np.ndarray:
    """L P + diag(dg) as one dense array (no N x N temporaries: the diagonal is added in place)."""
    A = L @ P
    A[np.diag_indices_from(A)] += dg
    return A


def nominal_lambda_min(problem: FactoredProblem) -> float:
    """Smallest eigenvalue of J^T H J + lambda I without forming it (J^T H J has N - m zero eigenvalues if m < N)."""
    core = problem.core_eigenvalues
    low = core[0] if problem.m >= problem.d else min(0.0, core[0])
    return float(problem.damping + low)


#: a resistor within this relative margin above r_max counts as r_max: the design sets alpha so that the smallest kept
#: entry lands exactly on r_max, and the rounding of that product can put it an ulp above (it refused the shipped
#: tngd_noise.yaml at a step whose smallest kept J entry set alpha)
R_MAX_RTOL = 1e-12


def _array(M: np.ndarray, alpha: float, r_max: float, prune: float, name: str, pruned: list,
           alpha_limit: float | None = None, a: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Resistors alpha / |M| (inf for zeros and pruned entries) and the sign rule (int8 +-1); DesignError beyond
    r_max. alpha_limit (>= alpha): the entries are also realised by another array with this alpha (J's by the J^T
    array): an entry is pruned, or refused, by the larger of the two resistors, so that both arrays keep the
    same entries. a: |M| when the caller has it (not copied, not changed)."""
    a = np.abs(M) if a is None else a
    amax = float(a.max()) if a.size else 0.0
    with np.errstate(divide="ignore"):
        r = alpha / a            # exact zeros: inf (no resistor)
    limit = alpha if alpha_limit is None else max(alpha, alpha_limit)
    # the entries above r_max: limit / |M| > r_max, evaluated exactly on the candidates |M| < (limit / r_max)(1 + 1e-6)
    # only (a superset), so the m N array is passed over twice here, not once per test (the wide config: 1.3e8 entries)
    flat = a.ravel()
    r_cap = r_max * (1.0 + R_MAX_RTOL)
    cand = np.flatnonzero(flat < limit / r_cap * (1.0 + 1e-6))
    with np.errstate(divide="ignore"):
        big_c = (limit / flat[cand] > r_cap) & (flat[cand] > 0)
    cand = cand[big_c]
    if len(cand):
        drop_c = flat[cand] < prune * amax
        if not drop_c.all():
            i, j = np.unravel_index(cand[np.argmin(drop_c)], a.shape)   # the first refused entry, row-major
            raise DesignError(
                f"problem.factors.{name}[{i}][{j}] = {M[i, j]:.3g} needs R = {limit / a[i, j]:.3g} ohm, above "
                f"circuit.integrator.r_max_ohm = {r_max:.3g} (entries below {limit / r_max:.3g} are not realisable);"
                f" raise r_max_ohm or set circuit.integrator.prune_below_relative above {a[i, j] / amax:.3g}")
        ii, jj = np.unravel_index(cand, a.shape)
        pruned.extend(zip([name] * len(cand), ii.tolist(), jj.tolist()))
        r.ravel()[cand] = np.inf
    return r, np.where(M < 0, np.int8(-1), np.int8(1))


#: columns of J per chunk of _jhj_diag (m x 2048 doubles: 10 MB at m = 640, cache-sized temporaries)
CHUNK_COLS = 2048


def _jhj_diag(J: np.ndarray, H: np.ndarray) -> np.ndarray:
    """diag(J^T H J) (N,) as column sums of J * (H J): for a diagonal H (TNGD's H = I) chunk by chunk of columns,
    (h_k J_ki) J_ki summed over k (no m x N temporary; the same products and additions, in the same order, as the
    whole-array expression), else through the GEMM H J."""
    hd = np.diag(H)
    if np.count_nonzero(H - np.diag(hd)):
        hj = H @ J
        hj *= J
        return np.sum(hj, axis=0)
    out = np.empty(J.shape[1])
    unit = bool(np.all(hd == 1.0))                   # H = I: h_k J_ki is J_ki exactly, no multiplication
    for c0 in range(0, J.shape[1], CHUNK_COLS):
        blk = J[:, c0:c0 + CHUNK_COLS]
        t = blk * blk if unit else hd[:, None] * blk
        if not unit:
            t *= blk
        np.sum(t, axis=0, out=out[c0:c0 + CHUNK_COLS])
    return out


def check_coupling_range(problem: FactoredProblem, alpha_t: float, jmax: float, rmin: float, rmax: float) -> None:
    """DesignError, before any array is built, when even the largest J^T entry would need a resistor above r_max.

    alpha is at most max(damping r_min, r_max min|J| s_z / s_x) (module doc), so alpha_t / max|J| > r_max only
    when the leak sets the time unit: J^T H J is below about damping r_min / r_max. The cause is then the
    coupling's size next to the damping, not one entry of J (whose resistor would only be the first one hit)."""
    r_needed = alpha_t / jmax
    if not r_needed > rmax or not (np.any(problem.J) and np.any(problem.H)):
        return     # (J = 0 or H = 0: no arrays, only the leak)
    with np.errstate(all="ignore"):
        jhj = float(np.max(np.sum(problem.J * (problem.H @ problem.J), axis=0)))   # max_i (J^T H J)_ii
    if not (np.isfinite(r_needed) and jhj > 0):
        return     # the products leave floating-point range: the design's arithmetic names that (numbers_checked)
    raise DesignError(
        f"problem.factors: J^T H J (largest diagonal entry {jhj:.3g}) is negligible next to problem.factors.damping"
        f" = {problem.damping:.3g}: with the leak at circuit.integrator.r_min_ohm = {rmin:.3g} the J^T array would "
        f"need resistors of {r_needed:.3g} ohm and more, above circuit.integrator.r_max_ohm = {rmax:.3g} "
        f"(the arrays span r_max / r_min = {rmax / rmin:.3g}); rescale problem.factors.J or problem.factors.H so that "
        "J^T H J is within that ratio of the damping, or raise circuit.integrator.r_max_ohm")


def _range(mean: np.ndarray, var: np.ndarray, start: np.ndarray) -> float:
    return float(max(np.max(np.abs(mean) + SIGMA_HEADROOM * np.sqrt(np.clip(var, 0, None))), np.max(np.abs(start))))


def design_factored(problem: FactoredProblem, circuit: FactoredCircuitConfig, sim: SimulationConfig) -> FactoredDesign:
    """Nominal element values (module doc); spu_sim.topologies.opamp_factored.nonideal then realises them."""
    ic = circuit.integrator
    J, H, lam, b = problem.J, problem.H, problem.damping, problem.b
    n, m = problem.d, problem.m
    rmin, rmax, vs = ic.r_min_ohm, ic.r_max_ohm, ic.v_swing_v
    kap = problem.kappa
    # voltage scales of the three stages (mean + 4 sigma, initial state), all in O(m^2 N)
    x_star = problem.x_star
    # (noise-free: kappa = 0 needs no covariance, which saves the O(m^2 N) solves of a TNGD step)
    s_x = _range(x_star, kap * problem.diag_inv() if kap > 0 else np.zeros(n), problem.x0) / vs or 1.0
    u_cov = kap * problem.j_ainv_jt() if kap > 0 else np.zeros((m, m))
    u_star, u0 = J @ x_star, J @ problem.x0             # one pass over J each (the z stage reuses them)
    s_u = _range(u_star, np.diag(u_cov), u0) / vs or 1.0
    z_cov_diag = np.sum((H @ u_cov) * H, axis=1)       # diag(H u_cov H^T) by one GEMM
    s_z = _range(H @ u_star, z_cov_diag, H @ u0) / vs or 1.0
    # J = 0 or H = 0 (a saturated model's GGN): A = damping I, the arrays are empty and only the leak remains
    aj = np.abs(J)      # |J| once: the J and J^T arrays, jmax and jmin read it (the wide config: 518 MB)
    jmax, hmax = float(aj.max()) or 1.0, float(np.abs(H).max()) or 1.0
    # J array and its summers (the fixed feedback resistor may go down to FEEDBACK_MIN_FRACTION r_min)
    rf_min = FEEDBACK_MIN_FRACTION * rmin
    alpha_j = max(jmax * rmin, rf_min * s_u / s_x)
    r_fu = alpha_j * s_x / s_u
    if r_fu > rmax:
        r_fu = rmax
        s_u = alpha_j * s_x / r_fu
    # H array and its summers
    alpha_h = max(hmax * rmin, rf_min * s_z / s_u)
    r_fz = alpha_h * s_u / s_z
    if r_fz > rmax:
        r_fz = rmax
        s_z = alpha_h * s_u / r_fz
    # time unit as the dense topology's (the largest |A_ij| = max_i A_ii at r_min), unless the J^T array needs slower
    # (faster where the smallest kept J^T entry would need more than r_max; never a leak or J^T resistor below r_min)
    a_max = lam + float(np.max(_jhj_diag(J, H)))     # max_i (J^T H J)_ii
    jmin = float(np.min(aj, where=aj >= max(circuit.prune_below_relative * jmax, np.finfo(float).tiny),
                        initial=np.inf))
    jmin = jmin if np.isfinite(jmin) else jmax
    alpha_lo = max(lam * rmin, jmax * rmin * s_z / s_x)
    alpha = max(alpha_lo, min(a_max * rmin, rmax * jmin * s_z / s_x))
    alpha_t = alpha * s_x / s_z
    tau_s = alpha * ic.c_farad
    check_coupling_range(problem, alpha_t, jmax, rmin, rmax)
    pruned: list = []
    prune = circuit.prune_below_relative   # set, or derived from the resistor resolution (config.py)
    r_j, s_j = _array(J, alpha_j, rmax, prune, "J", pruned, alpha_limit=alpha_t, a=aj)   # J, J^T: the same entries
    r_h, s_h = _array(H, alpha_h, rmax, prune, "H", pruned)
    # the J^T array (N x m) is the transpose of an m x N array laid out like J's (Fortran order, a view): written
    # in memory order, and its signs s_t = s_j.T share that layout (a C-ordered N x m array written through the
    # transposed view cost 0.6 s at N = 1e5, m = 640, five times the in-order pass)
    r_tt = np.empty((m, n))
    with np.errstate(divide="ignore"):
        np.divide(alpha_t, aj, out=r_tt)
    del aj
    np.copyto(r_tt, np.inf, where=r_j == np.inf)   # pruned J entries leave the J^T array too (r_j: positive or inf)
    r_t, s_t = r_tt.T, s_j.T
    if lam > 0:
        r_leak = alpha / lam
        if r_leak > rmax:
            raise DesignError(f"problem.factors.damping = {lam:.3g} needs a leak resistor of {r_leak:.3g} ohm above "
                              f"circuit.integrator.r_max_ohm = {rmax:.3g} (damping too small next to J^T H J); raise "
                              "r_max_ohm or the damping")
    else:
        r_leak = np.inf
    # right-hand side (as opamp): one R_in, the DAC at full scale for the largest |b_i|
    bmax = float(np.abs(b).max())
    if bmax > 0:
        r_in = min(max(alpha * s_x * ic.v_dac_max_v / bmax, rmin), np.inf)
        if r_in > rmax:
            raise DesignError(f"problem.vector: |b| = {bmax:.3g} is too small for the DAC range: R_in = {r_in:.3g} ohm "
                              "exceeds circuit.integrator.r_max_ohm; raise r_max_ohm or v_dac_max_v")
        v_dac = -b / (alpha * s_x) * r_in
    else:
        r_in, v_dac = np.inf, np.zeros(n)
    # noise step and noise resistor (as opamp): the fastest mode bounds the step
    lam_max = lam + max(float(problem.core_eigenvalues[-1]), 0.0)
    noise_dt_tau = sim.noise_dt_tau or 1.0 / (sim.noise_oversample * lam_max)
    r_noise, v_n = np.inf, 0.0
    if kap > 0 and "tran" in sim.analyses:
        h_s = noise_dt_tau * tau_s
        q_i = 2.0 * kap * ic.c_farad ** 2 / (tau_s * s_x ** 2)
        v_n = ic.noise_v_rms
        r_noise = v_n * np.sqrt(h_s / q_i)
        if r_noise > rmax:
            r_noise = rmax
            v_n = r_noise * np.sqrt(q_i / h_s)
        if r_noise < rmin:
            r_noise = rmin
            v_n = r_noise * np.sqrt(q_i / h_s)
            if v_n > 20 * ic.noise_v_rms:
                raise DesignError(f"problem.kappa = {kap:.3g} needs noise samples of {v_n:.3g} V rms even through "
                                  "r_min_ohm; lower kappa or raise circuit.integrator.v_swing_v")
    full = lambda v: np.full(n, float(v))  # noqa: E731
    return FactoredDesign(
        problem=problem, c_farad=ic.c_farad, r_j_ohm=r_j, s_j=s_j, r_h_ohm=r_h, s_h=s_h, r_t_ohm=r_t, s_t=s_t,
        r_fu_ohm=np.full(m, r_fu), r_fz_ohm=np.full(m, r_fz), r_leak_ohm=full(r_leak), r_in_ohm=full(r_in),
        v_dac_v=v_dac, r_noise_ohm=full(r_noise), c_f_farad=full(ic.c_farad), noise_v_rms=float(v_n), alpha=alpha,
        alpha_j=alpha_j, alpha_h=alpha_h, alpha_t=alpha_t, s_x=s_x, s_u=s_u, s_z=s_z, tau_s=tau_s,
        x0_v=problem.x0 / s_x, noise_dt_tau=float(noise_dt_tau), v_swing_v=vs, r_fu_nominal_ohm=r_fu,
        r_fz_nominal_ohm=r_fz, pruned=pruned)
