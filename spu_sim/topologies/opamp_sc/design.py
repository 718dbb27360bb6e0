"""Design of the switched-capacitor op-amp integrator SPU: problem -> bank codes, capacitors, clock, DACs.

Integrator i: op-amp with feedback capacitor C_f,i from its output x<i> to its virtual ground sum<i>.
Every nonzero A_ij is a parasitic-insensitive switched-capacitor branch into sum<i>: capacitor C_ij (a
binary-weighted bank, code k_ij), its input-side plate switched between the source and ground, its
bottom plate between ground and the virtual ground:

    A_ij > 0 (the diagonal included): inverting, delay-free   phase 1: both plates to ground (reset)
                                                               phase 2: input x<j> -> plate, plate -> sum<i>
    A_ij < 0: non-inverting, delaying                          phase 1: input x<j> -> plate, plate -> ground
                                                               phase 2: plate -> ground, plate -> sum<i>

Charge balance at sum<i> over phase 2 (the op-amp holds it at 0 V, so the bottom-plate parasitics are
always at 0 V at the end of a phase and never move charge into the integrator):

    C_f (V_i[n+1] - V_i[n]) = - sum_{A_ij>0} C_ij V_j[n+1] + sum_{A_ij<0} C_ij V_j[n] - C_in V_dac,i + noise

so (I + H+) V[n+1] = (I + H-) V[n] + c: a semi-implicit step (backward Euler on the delay-free part,
forward on the delaying part; spu_sim.topologies.opamp_sc.discrete). Each branch's average current is
f_clk C_ij V_j: G_eq = f_clk C_ij, so the drift in problem units is A_ij = s_ij C_ij / (h C_f,i) with
h = 1 / f_clk_tau the period in tau, and the mean is exactly A_realized^-1 b_realized for any h.

Why these two branches: both are parasitic-insensitive and give both signs from the same op-amp outputs,
so no inverter copies (op-amps with their own offset, gain error and power) are needed; the delay-free
branch on the diagonal makes the dominant self-feedback an implicit (backward Euler) step, which stays
stable at coarser clocks than the all-delaying forward-Euler network (stable only for h lambda_max < 2).

Scaling: the largest |A_ij| gets the full code 2^bits - 1, so C_f = (2^bits - 1) c_unit / (h max|A|) and
k_ij = round(|A_ij| / max|A| (2^bits - 1)) (a nonzero entry that rounds to 0 gets no branch: reported);
x = s_x V with s_x so that |V| <= v_swing_v at mean + 4 sigma (as topology opamp); tau = f_clk_tau / f_clk_hz.
b: one capacitor C_in per integrator (delay-free branch from the b-DAC), sized so the largest |b_i| uses
the DAC full scale: C_in = h max|b| C_f / (s_x v_dac_max_v), V_dac,i = -h b_i C_f / (s_x C_in).
Injected noise: a noise DAC holding a fresh N(0, u^2) sample per period (u = noise_v_rms) through a
delay-free branch C_n = sqrt(2 kappa h) C_f / (s_x u): per period variance 2 kappa h in problem units.
kT/C: each branch capacitor C leaves a fresh N(0, kT/C) voltage error per phase (variance kT C / C_f^2 on
the integrator per phase and branch); the netlist injects it with a held source in series with the bank.

Mismatch: unit capacitor errors through spu_sim.parts.element_values.element_errors (global per kind C,
local per bit scaled by 1/sqrt(2^k): a bit of 2^k units averages their errors), also on C_f, C_in, C_n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...config import SimulationConfig
from ...errors import DesignError
from ...ideal import LinearSDE
from ...problems import Problem
from ...parts.element_values import element_errors, quantize_grid, temperature_factor
from ...parts.opamp import MacroOpamp, draw_offsets, has_opamp_model, macro_notes, model_fields, offset_rng
from ..base import OuDesign
from . import discrete
from .config import OpampScCircuitConfig, SwitchedCapConfig

SIGMA_HEADROOM = 4.0
K_BOLTZMANN = 1.380649e-23


def bank_code(A: np.ndarray, bits: int) -> np.ndarray:
    """(d, d) integer codes round(|A_ij| / max|A| (2^bits - 1))."""
    full = 2 ** bits - 1
    return np.rint(np.abs(A) / np.abs(A).max() * full).astype(np.int64)


def bit_mask(code: np.ndarray, bits: int) -> np.ndarray:
    """(..., bits) bool: bit k of each code."""
    return ((np.asarray(code, dtype=np.int64)[..., None] >> np.arange(bits)) & 1).astype(bool)


@dataclass(frozen=True)
class OpampScDesign(OuDesign):
    """Every element value of the switched-capacitor SPU (realised values: after mismatch and temperature).

    code (d, d) bank codes, sign (d, d) +1 delay-free inverting / -1 delaying, c_bit_farad (d, d, bits) every
    unit-bank capacitor (set or not), c_f_farad (d,), c_in_farad (d,) (0: no b branch), v_dac_v (d,),
    c_noise_farad (d,) (0: no injected noise), noise_v_rms, kt_joule (k T at circuit.temperature.temp_c; the netlist injects kT/C only with
    sc.ktc_noise), s_x, h (period in tau), tau_s.
    """

    problem: Problem
    sc: SwitchedCapConfig
    code: np.ndarray
    sign: np.ndarray
    c_bit_farad: np.ndarray
    c_f_farad: np.ndarray
    c_f_nominal_farad: float
    c_in_farad: np.ndarray
    v_dac_v: np.ndarray
    c_noise_farad: np.ndarray
    noise_v_rms: float
    kt_joule: float
    s_x: float
    h: float
    tau_s: float
    x0_v: np.ndarray
    seed: int
    v_swing_v: float
    dropped: list = field(default_factory=list)
    macro: Any = None
    notes: dict = field(default_factory=dict)
    intrinsic: Any = None        # parts.intrinsic_noise.IntrinsicNoise (op-amp e_n / i_n) or None

    # ---- element values
    @property
    def d(self) -> int:
        return self.code.shape[0]

    @property
    def bits(self) -> int:
        return self.c_bit_farad.shape[2]

    @property
    def period_s(self) -> float:
        return 1.0 / self.sc.f_clk_hz

    @property
    def c_branch_farad(self) -> np.ndarray:
        """(d, d) selected bank capacitance of each branch (0: no branch)."""
        return np.sum(self.c_bit_farad * bit_mask(self.code, self.bits), axis=2)

    @property
    def injected(self) -> bool:
        return bool(np.any(self.c_noise_farad > 0))

    @property
    def ktc(self) -> bool:
        return bool(self.sc.ktc_noise)

    @property
    def has_noise(self) -> bool:
        return self.injected or self.ktc

    @property
    def noise_dt_tau(self) -> float:
        """One noise sample (and, by default, one readout sample) per clock period."""
        return self.h

    @property
    def readout_nodes(self) -> list[str]:
        return [f"x{i + 1}" for i in range(self.d)]

    def to_problem_units(self, v: np.ndarray) -> np.ndarray:
        return self.s_x * np.asarray(v)

    # ---- the realised linear model
    @property
    def H_plus(self) -> np.ndarray:
        return np.where(self.sign > 0, self.c_branch_farad, 0.0) / self.c_f_farad[:, None]

    @property
    def H_minus(self) -> np.ndarray:
        return np.where(self.sign < 0, self.c_branch_farad, 0.0) / self.c_f_farad[:, None]

    @property
    def A_realized(self) -> np.ndarray:
        """(H+ - H-) / h: the drift the bank codes (and capacitor values) implement, problem units."""
        return (self.H_plus - self.H_minus) / self.h

    @property
    def b_realized(self) -> np.ndarray:
        return -self.s_x * self.c_in_farad * self.v_dac_v / (self.c_f_farad * self.h)

    @property
    def q_injected(self) -> np.ndarray:
        """(d,) per-period variance of the injected noise on x (problem units)."""
        return (self.s_x * self.c_noise_farad * self.noise_v_rms / self.c_f_farad) ** 2

    @property
    def q_in_period(self) -> np.ndarray:
        """(d,) per-period variance on x (problem units) of the op-amp current noise i_n (circuit.opamp.in_a_per_rthz):
        a white current of two-sided intensity i_n^2 / 2 into the virtual ground, whose charge over a period h_s
        (both phases: the branch capacitors on the virtual ground hold 0 V, so it all lands on C_f) has variance
        i_n^2 / 2 h_s; on x: s_x^2 i_n^2 h_s / (2 C_f^2). It enters the period map where the injected noise does."""
        spec = self.intrinsic
        if spec is None or spec.in_a_per_rthz == 0:
            return np.zeros(self.d)
        return self.s_x ** 2 * spec.in_a_per_rthz ** 2 / 2.0 * self.h * self.tau_s / self.c_f_farad ** 2

    @property
    def judge_leaves_out(self) -> str | None:
        """What the clocked judge (``process``) does not model of this circuit's noise, None when it models all of
        it: the op-amp voltage noise e_n, which the switches sample onto the branch capacitors through their own
        bandwidth (docs/nonideal.md). compare then leaves the covariance-vs-realised errors out (not judged)."""
        spec = self.intrinsic
        if spec is None or spec.en_v_per_rthz == 0:
            return None
        return ("the op-amp voltage noise e_n (circuit.opamp.en_v_per_rthz), which the switches sample onto the "
                "branch capacitors")

    @property
    def kappa_intrinsic(self) -> float:
        """The intrinsic noise floor with the noise DAC off, in problem units: mean_i (q_in,i / h) / 2 (i_n only:
        kT/C is circuit.sc.ktc_noise, e_n is not in the clocked judge, docs/nonideal.md)."""
        return float(np.mean(self.q_in_period / self.h) / 2.0)

    @property
    def q_ktc_phase(self) -> np.ndarray:
        """(d,) per-phase kT/C variance on x (problem units): kT sum of branch capacitors / C_f^2."""
        c_tot = self.c_branch_farad.sum(axis=1) + self.c_in_farad + self.c_noise_farad
        return self.s_x ** 2 * self.kt_joule * c_tot / self.c_f_farad ** 2

    @property
    def kappa_realized(self) -> float:
        """The injected noise level (problem units): per-period variance / (2 h), averaged over variables."""
        return float(np.mean(self.q_injected) / (2.0 * self.h))

    @property
    def feedthrough_offset_v(self) -> np.ndarray:
        """(d,) shift of V_i while phase 2 is open (phase 1 and the gaps, where the readout samples).

        Each virtual-ground switch SV couples c_ft = c_overlap + q_injection / (2 v_clk) from phase 2 into
        sum<i>. The charge balance of each period holds at the instants the switches open (mid-edge, at the
        threshold v_clk / 2), where every feedthrough charge on a bottom-plate island cancels between its
        phase-1 and phase-2 switch (one c_ft v_clk / 2 at either opening) and the top plates are driven. After
        SV opens, the rest of phase 2's falling edge pulls c_ft v_clk / 2 more out of the virtual ground:
        V_i is read out and sampled by the delaying branches c_ft v_clk / (2 C_f,i) higher per SV switch,
        until phase 2 rises again. Neglected: the on-switch's voltage drop i Ron at the opening instant
        (the edge current C dv_clk/dt through Ron), small when Ron c_ft v_clk / t_edge is (docs/opamp_sc.md).
        """
        sc = self.sc
        c_ft = sc.c_overlap_farad + sc.q_injection_c / (2.0 * sc.v_clk_v)
        n_sv = (np.count_nonzero(self.code, axis=1) + (self.c_in_farad > 0) + (self.c_noise_farad > 0))
        return n_sv * c_ft * 0.5 * sc.v_clk_v / self.c_f_farad

    def process(self, injected: bool | None = None, ktc: bool | None = None,
                feedthrough: bool = True) -> discrete.ScProcess:
        """The exact per-period process of the states as read out (phase 1 and gaps) with the chosen noise
        sources (default: those of this design) and, with ``feedthrough``, the clock-feedthrough offset
        delta: U[n+1] = Phi U[n] + B (c + H- delta) for the phase-2 states U, read out as y = U + delta."""
        inj = self.injected if injected is None else injected
        kt = self.ktc if ktc is None else ktc
        c = -self.c_in_farad * self.v_dac_v / self.c_f_farad * self.s_x
        q1 = np.diag(self.q_ktc_phase) if kt else np.zeros((self.d, self.d))
        qw = np.diag(self.q_injected) if inj else np.zeros((self.d, self.d))
        qw = qw + np.diag(self.q_in_period)          # op-amp i_n (circuit.opamp.in_a_per_rthz), 0 when off
        p = discrete.sc_process(self.H_plus, self.H_minus, c, q1, q1, qw, self.h)
        delta = self.s_x * self.feedthrough_offset_v
        if feedthrough and np.any(delta):
            Bm = np.linalg.inv(np.eye(self.d) + self.H_plus)
            p = p._replace(g=p.g + (np.eye(self.d) - p.Phi) @ delta + Bm @ self.H_minus @ delta)
        return p

    def realized_sde(self) -> LinearSDE:
        """The continuous OU of the realised A and b with the enabled noise sources' diffusion (per-period
        variance / h): what the bank codes implement without the clock's time discretisation."""
        p = self.process()
        B = np.eye(self.d) + self.H_plus
        q = B @ p.Q @ B.T          # the per-period noise before the phase-2 map
        return LinearSDE(self.A_realized, self.b_realized, q / self.h)

    def effective_sde(self) -> LinearSDE:
        """The continuous-time embedding of the exact clocked process (spu_sim.topologies.opamp_sc.discrete):
        its samples every clock period are the circuit's, so compare's *_vs_realized judge against it."""
        return discrete.effective_sde(self.process())

    @property
    def slowest_rate_tau(self) -> float:
        return float(np.min(np.real(np.linalg.eigvals(discrete.effective_drift(self.process(False, False))))))

    def describe(self) -> dict[str, object]:
        cb = self.c_branch_farad
        return {
            "topology": "opamp_sc", "d": self.d, "f_clk_hz": self.sc.f_clk_hz, "f_clk_tau": self.sc.f_clk_tau,
            "h_tau": self.h, "tau_s": self.tau_s, "bits": self.bits, "c_unit_farad": self.sc.c_unit_farad,
            "c_f_nominal_farad": self.c_f_nominal_farad, "n_branches": int(np.count_nonzero(cb)),
            "n_delay_free": int(np.count_nonzero((cb > 0) & (self.sign > 0))),
            "n_delaying": int(np.count_nonzero((cb > 0) & (self.sign < 0))),
            "c_branch_max_farad": float(cb.max()), "s_x_units_per_volt": self.s_x,
            "injected_noise": self.injected, "ktc_noise": self.ktc, "kt_joule": self.kt_joule,
            "noise_v_rms": self.noise_v_rms, "dropped_entries": len(self.dropped),
            "spectral_radius": discrete.spectral_radius(self.process()), "v_swing_v": self.v_swing_v,
            "nonideal": self.notes,
        }


def _macro(c: OpampScCircuitConfig, d: int) -> MacroOpamp | None:
    oc = c.opamp
    if not has_opamp_model(oc):
        return None
    offs = draw_offsets(oc, offset_rng(c.tolerance.seed), (2, d))
    ones = np.ones(d)
    return MacroOpamp(**model_fields(oc), offset_int_v=offs[0], offset_inv_v=offs[1], r_inv_in_ohm=ones,
                      r_inv_fb_ohm=ones)


def _mismatch(c: OpampScCircuitConfig, d: int, bits: int) -> tuple[np.ndarray, ...]:
    """Multiplicative factors: bank bits (d, d, bits), C_f, C_in, C_n (d,) (module doc)."""
    tol = c.tolerance
    gr, lr, s = tol.global_rel, tol.local_rel, tol.seed
    if not (gr or lr):
        return np.ones((d, d, bits)), np.ones(d), np.ones(d), np.ones(d)
    g = element_errors(s, "CB", (1,), gr, 0.0, kind="C")[0]
    unit = element_errors(s, "CB", (d, d, bits), 0.0, lr) - 1.0
    fb = g * (1.0 + unit / np.sqrt(2.0 ** np.arange(bits)))
    return (fb, element_errors(s, "CF", (d,), gr, lr, kind="C"), element_errors(s, "CIN", (d,), gr, lr, kind="C"),
            element_errors(s, "CN", (d,), gr, lr, kind="C"))


def design_opamp_sc(problem: Problem, circuit: OpampScCircuitConfig, sim: SimulationConfig) -> OpampScDesign:
    """Bank codes, capacitors, DAC values and scaling for the problem (module doc)."""
    sc = circuit.sc
    if "tran" not in sim.analyses:
        raise DesignError("simulation.analyses: topology opamp_sc has no operating point (a switched-capacitor branch "
                          "has no DC path), so op alone computes nothing; add tran")
    A, b, d = problem.A, problem.b, problem.d
    bits, full = sc.bits, 2 ** sc.bits - 1
    amax = float(np.abs(A).max())
    h = 1.0 / sc.f_clk_tau
    tau_s = sc.f_clk_tau / sc.f_clk_hz
    code = bank_code(A, bits)
    dropped = [(i, j) for i in range(d) for j in range(d) if A[i, j] != 0 and code[i, j] == 0]
    if any(i == j for i, j in dropped):
        raise DesignError(f"circuit.sc.bits = {bits}: a diagonal entry rounds to code 0 (no branch); add bits")
    sign = np.where(A < 0, -1.0, 1.0)
    c_f_nom = full * sc.c_unit_farad / (h * amax)
    fb, ff, fin, fn = _mismatch(circuit, d, bits)
    tmp = circuit.temperature
    fc = temperature_factor(tmp.c_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    c_bit = sc.c_unit_farad * 2.0 ** np.arange(bits) * fb * fc
    c_f = c_f_nom * ff * fc
    notes: dict[str, object] = {}
    if circuit.tolerance.global_rel or circuit.tolerance.local_rel:
        notes.update(tolerance_global_rel=circuit.tolerance.global_rel, tolerance_local_rel=circuit.tolerance.local_rel,
                     tolerance_seed=circuit.tolerance.seed)
    if fc != 1.0:
        notes["c_factor"] = fc

    # the realised drift (codes and capacitor values) and its clocked map must be stable
    base = OpampScDesign(problem=problem, sc=sc, code=code, sign=sign, c_bit_farad=c_bit, c_f_farad=c_f,
                         c_f_nominal_farad=c_f_nom, c_in_farad=np.zeros(d), v_dac_v=np.zeros(d),
                         c_noise_farad=np.zeros(d), noise_v_rms=0.0, kt_joule=0.0, s_x=1.0, h=h, tau_s=tau_s,
                         x0_v=np.zeros(d), seed=sim.seed, v_swing_v=sc.v_swing_v)
    A_r = base.A_realized
    if np.any(np.linalg.eigvals(A_r).real <= 0):
        raise DesignError(f"the bank codes ({bits} bits) realise an unstable matrix; raise circuit.sc.bits")
    lam_max = float(np.max(np.abs(np.linalg.eigvals(A_r))))
    rho = discrete.spectral_radius(base.process(False, False))
    if rho >= 1.0 and h * lam_max < 1e-9:   # one period moves the state by less than float64 resolves
        raise DesignError(f"circuit.sc.f_clk_tau = {sc.f_clk_tau:g} is too fast to compute: one clock period changes "
                          f"the state by h lambda_max = {h * lam_max:.3g} of itself, below what float64 resolves (the "
                          "clocked map rounds to the identity); lower f_clk_tau (e.g. to 1e4)")
    if rho >= 1.0:
        raise DesignError(f"circuit.sc.f_clk_tau = {sc.f_clk_tau:g} is too slow for this matrix (h lambda_max = "
                          f"{h * lam_max:.3g}: the clocked map is unstable); raise f_clk_tau (e.g. to {2 * lam_max:.3g})")
    discrete.effective_drift(base.process(False, False))   # refuses alternating maps

    # voltage scale, as topology opamp: mean + 4 sigma of the realised law within the swing
    x_star = np.linalg.solve(A_r, b)
    var = problem.kappa * np.clip(np.diag(np.linalg.inv(0.5 * (A_r + A_r.T))), 0, None)
    x_range = float(max(np.max(np.abs(x_star) + SIGMA_HEADROOM * np.sqrt(var)), np.max(np.abs(problem.x0))))
    s_x = x_range / sc.v_swing_v if x_range > 0 else 1.0

    # b through a delay-free branch from the DAC
    bmax = float(np.abs(b).max())
    if bmax > 0:
        c_in_nom = h * bmax * c_f_nom / (s_x * sc.v_dac_max_v)
        v_dac = -h * b * c_f_nom / (s_x * c_in_nom)
        if circuit.quantization.dac_bits is not None:
            v_dac = quantize_grid(v_dac, 2.0 * sc.v_dac_max_v / 2 ** circuit.quantization.dac_bits, sc.v_dac_max_v)
            notes["dac_bits"] = circuit.quantization.dac_bits
        c_in = c_in_nom * fin * fc
    else:
        c_in, v_dac = np.zeros(d), np.zeros(d)

    # injected noise: a held noise DAC through a delay-free branch C_n
    if sc.injected_noise and problem.kappa > 0 and "tran" in sim.analyses:
        c_n = np.sqrt(2.0 * problem.kappa * h) * c_f_nom / (s_x * sc.noise_v_rms) * fn * fc
        u = sc.noise_v_rms
    else:
        c_n, u = np.zeros(d), 0.0
    macro = _macro(circuit, d)
    if macro is not None:
        notes.update(macro_notes(circuit.opamp) if macro.cell is not None else dict(opamp="macro", gain=macro.gain, gbw_hz=macro.gbw_hz))
    for k in ("c_overlap_farad", "q_injection_c"):
        if getattr(sc, k):
            notes[k] = getattr(sc, k)
    kt = K_BOLTZMANN * (tmp.temp_c + 273.15)   # physical kT: the kT/C floor is reported even when not injected
    return OpampScDesign(problem=problem, sc=sc, code=code, sign=sign, c_bit_farad=c_bit, c_f_farad=c_f,
                         c_f_nominal_farad=c_f_nom, c_in_farad=np.asarray(c_in, dtype=float), v_dac_v=v_dac,
                         c_noise_farad=np.asarray(c_n, dtype=float), noise_v_rms=float(u), kt_joule=kt, s_x=s_x,
                         h=h, tau_s=tau_s, x0_v=problem.x0 / s_x, seed=sim.seed, v_swing_v=sc.v_swing_v,
                         dropped=dropped, macro=macro, notes=notes)
