"""Design of the posterior circuits: data (X, y, prior) -> element values, scaling, realised drift.

The circuit (Aifer et al. 2024, "Thermodynamic Bayesian inference"), all op-amps ideal nullors:

    integrator i (theta_i = s_th V(x<i>)):
        C_i dV_i/dt = -[ sum_j s^p_ij G^p_ij V_j + sum_k s^t_ik G^t_ik L_k + G_in V_dac,i + V_nz,i / R_n ]
    residual line k (inverting summing amplifier, feedback R_f,k):
        u_k = -R_f,k [ sum_j s^x_kj G^x_kj V_j + G^y_k V_y,k ]
    s = +1: the resistor is fed by the node itself, s = -1: by its inverted copy (unity-gain inverter).

posterior_gaussian: L_k = u_k = -(X_k theta - y_k) / s_r (the residual, through n summers; y enters from a
DAC V_y,k), so with
    G^p = C |P0| / tau,  s^p = sign(P0)               (the prior as a leak)
    G^x = |X| s_th / (s_r R_f),  s^x = sign(X)        (X computes the residual)
    G^t = C |X^T| s_r / (tau s_th s2),  s^t = -sign(X^T)   (X^T feeds it back)
    G_in V_dac = -C (P0 mu0) / (tau s_th)             (the prior's bias)
the integrators obey dtheta = -(P0 + X^T X / s2) theta dt/tau + (P0 mu0 + X^T y / s2) dt/tau + noise.
posterior_logistic: no y in the summers (u_k = -X_k theta / s_z), a sigmoid element per line
L_k = w_k = v_sig sigma(-s_z u_k) = v_sig sigma(X_k theta), G^t = C |X^T| / (tau s_th v_sig), s^t = sign(X^T),
and the bias b = P0 mu0 + X^T y from the integrators' DACs: drift = grad log p(theta | D).

Scaling (design.json, netlist header): s_th from the reference law (exact posterior, or Laplace for the
logistic model) at mean + 4 sigma and theta0; s_r (s_z) from the residual (z) lines' range over the same law
and at theta0, both to v_swing_v; tau = C r_min max(max|P0|, max|X| k_line, max|b| / (s_th v_dac_max)) so the
largest integrator conductance is 1 / r_min; R_f = max(r_min, r_min max|X| s_th / s_line). Noise as in
opamp: q_I = 2 C^2 / (tau s_th^2) (kappa = 1), R_n = v_n sqrt(h / q_I).

Realised drift (from the element arrays, so tolerance and quantisation show up; t in tau, c_i = tau / C_i):
    gaussian  A = c (Gp - Gt diag(R_f) Gx),  b = c s_th (Gt (R_f G^y V_y) - G_in V_dac)
    logistic  P0 = c Gp, X_r = s_z diag(R_f) Gx / s_th, T = c s_th v_sig Gt, b = -c s_th G_in V_dac,
              drift(theta) = -P0 theta + b - T link(X_r theta)  (A_realized: its Jacobian at its root)
with G the signed conductances s G (0 where no resistor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ...circuit import ResistorArray
from ...errors import DesignError
from ...ideal import LinearSDE, ou_sde
from ...problems.posterior_reference import link_fn, link_slope
from ..base import OuDesign

SIGMA_HEADROOM = 4.0


def _signed(r: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(r), s / np.where(np.isfinite(r), r, 1.0), 0.0)


@dataclass(frozen=True)
class PosteriorDesign(OuDesign):
    """Every element value of a posterior circuit (module doc) and the map back to problem units.

    model: "gaussian" or "logistic"; link: None (gaussian), "logistic" or "hard" (the sigmoid element).
    Arrays: c_f (d,); r_p, sign_p (d, d) prior; r_x, sign_x (n, d) summer inputs; r_f (n,); r_y, v_y (n,)
    y-DACs (inf / 0 when absent); r_t, sign_t (d, n) feedback; r_in, v_dac (d,) bias; r_n (d,) noise.
    """

    problem: object
    model: str
    link: str | None
    c_nominal: float
    c_f: np.ndarray
    tau_s: float
    s_th: float
    s_line: float
    v_sig: float
    r_p: np.ndarray
    sign_p: np.ndarray
    r_x: np.ndarray
    sign_x: np.ndarray
    r_f: np.ndarray
    r_y: np.ndarray
    v_y: np.ndarray
    r_t: np.ndarray
    sign_t: np.ndarray
    r_in: np.ndarray
    v_dac: np.ndarray
    r_n: np.ndarray
    noise_v_rms: float
    noise_dt_tau: float
    v_swing_v: float
    x0_v: np.ndarray
    supply_v: float = 5.0
    i_quiescent_a: float = 0.0
    pruned: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    macro: object = None           # nonideal.PosteriorMacro (spu_sim.parts.opamp's macromodel for every op-amp) or None: nullors
    dropped: list = field(default_factory=list)      # (array, (i, j)) rounded to code 0 by r_bits (no resistor)
    r_nominal: dict = field(default_factory=dict)    # r_p, r_x, r_t -> the nominal resistors (non-ideal designs)
    wires: tuple | None = None      # (r_ohm_per_segment, c_farad_per_segment) of circuit.wires; None: ideal lines
    intrinsic: Any = None          # parts.intrinsic_noise.IntrinsicNoise (thermal / op-amp noise) or None
    intrinsic_diffusion: Any = None    # (d, d) its white diffusion per tau (topologies.intrinsic) or None

    # ---- shapes, nodes, units
    @property
    def d(self) -> int:
        return self.r_p.shape[0]

    @property
    def n(self) -> int:
        return self.r_x.shape[0]

    @property
    def readout_nodes(self) -> list[str]:
        return [f"x{i + 1}" for i in range(self.d)]

    @property
    def has_noise(self) -> bool:
        return bool(np.all(np.isfinite(self.r_n)))

    @property
    def needs_inverter(self) -> np.ndarray:
        """(d,) theta_j drives some resistor through its inverted copy."""
        neg_p = np.any((self.sign_p < 0) & np.isfinite(self.r_p), axis=0)
        neg_x = np.any((self.sign_x < 0) & np.isfinite(self.r_x), axis=0)
        return neg_p | neg_x

    @property
    def line_needs_inverter(self) -> np.ndarray:
        """(n,) line k feeds some integrator through its inverted copy."""
        return np.any((self.sign_t < 0) & np.isfinite(self.r_t), axis=0)

    @property
    def n_opamps(self) -> int:
        """Integrators, summers, inverters (the sigmoid elements are not counted)."""
        return int(self.d + self.n + self.needs_inverter.sum() + self.line_needs_inverter.sum())

    def to_problem_units(self, v: np.ndarray) -> np.ndarray:
        return self.s_th * np.asarray(v)

    # ---- realised model (module doc)
    @property
    def _c(self) -> np.ndarray:
        return self.tau_s / self.c_f

    @cached_property
    def wired_arrays(self) -> dict[str, list[tuple[int, ResistorArray]]]:
        """With circuit.wires: each programmable array (r_p, r_x, r_t) as its crossbars on lines, (sign, array) for
        the one fed by the positive sources (x<j>, the line outputs) and the one fed by their inverted copies (xn<j>,
        ln<k>), built once so that the netlist (build.py) and the realised drift (realized_parts) share them and
        their port admittance. {} without wires."""
        if self.wires is None:
            return {}
        w = {"r_wire_ohm": self.wires[0], "c_wire_farad": self.wires[1]}
        sums = tuple(f"sum{i}" for i in range(1, self.d + 1))
        theta = (tuple(f"x{j}" for j in range(1, self.d + 1)), tuple(f"xn{j}" for j in range(1, self.d + 1)))
        spec = {"r_p": ("RP", self.sign_p, sums, theta),
                "r_x": ("RX", self.sign_x, tuple(f"rs{k}" for k in range(1, self.n + 1)), theta),
                "r_t": ("RT", self.sign_t, sums, self.line_sources)}
        out: dict[str, list[tuple[int, ResistorArray]]] = {}
        for attr, (prefix, sign, rows, (pos, neg)) in spec.items():
            r = np.asarray(getattr(self, attr), dtype=float)
            out[attr] = [(s, ResistorArray(prefix, rows, cols, np.where(mask & np.isfinite(r), r, np.inf), **w))
                         for s, mask, cols in ((1, sign > 0, pos), (-1, sign < 0, neg)) if (mask & np.isfinite(r)).any()]
        return out

    @property
    def line_sources(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(the line outputs, their inverted copies ln<k>): the column nodes of the X^T array. Gaussian: the summer
        outputs r<k>; logistic: the sigmoid element's outputs s<k>."""
        out = tuple(f"r{k}" if self.model == "gaussian" else f"s{k}" for k in range(1, self.n + 1))
        return out, tuple(f"ln{k}" for k in range(1, self.n + 1))

    def _transfer(self, attr: str, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T_pos, T_neg): the conductances from the positive sources and from the inverted copies into the rows.
        Ideal lines: 1 / r where the sign is + (resp. -), 0 elsewhere. With wires: each crossbar's DC transfer
        (ResistorArray.scatter_transfer: the current into a virtual-ground row per volt on a column, every other
        terminal at 0 V), which the lines spread over every entry."""
        r = getattr(self, attr)
        if self.wires is None:
            g = np.abs(_signed(r, sign))
            return np.where(sign > 0, g, 0.0), np.where(sign < 0, g, 0.0)
        T = {1: np.zeros(r.shape), -1: np.zeros(r.shape)}
        for s, arr in self.wired_arrays[attr]:
            T[s] = arr.scatter_transfer(*r.shape)[0]
        return T[1], T[-1]

    def realized_parts(self) -> dict[str, np.ndarray]:
        """The realised terms in problem units: P0 (or A for gaussian), X_r, T, b. Each array's signed conductance
        matrix is T_pos - k T_neg (_transfer; k the inverters' ideal-op-amp gains R2/R1 with the macromodel, 1
        unless toleranced; else 1): with circuit.wires the lines' DC transfer, not the element values."""
        c = self._c[:, None]
        k_th = k_line = 1.0
        if self.macro is not None:
            m = self.macro
            k_th, k_line = (m.r_inv_fb_ohm / m.r_inv_in_ohm)[None, :], (m.r_line_fb_ohm / m.r_line_in_ohm)[None, :]
        (pp, pn), (xp, xn), (tp, tn) = (self._transfer("r_p", self.sign_p), self._transfer("r_x", self.sign_x),
                                        self._transfer("r_t", self.sign_t))
        Gp, Gx, Gt = pp - k_th * pn, xp - k_th * xn, tp - k_line * tn
        g_in = np.where(np.isfinite(self.r_in), 1.0 / np.where(np.isfinite(self.r_in), self.r_in, 1.0), 0.0)
        bias = -self._c * self.s_th * g_in * self.v_dac
        if self.model == "gaussian":
            g_y = np.where(np.isfinite(self.r_y), 1.0 / np.where(np.isfinite(self.r_y), self.r_y, 1.0), 0.0)
            A = c * (Gp - Gt @ (self.r_f[:, None] * Gx))
            b = bias + self._c * self.s_th * (Gt @ (self.r_f * g_y * self.v_y))
            return {"A": A, "b": b}
        return {"P0": c * Gp, "X": self.s_line * self.r_f[:, None] * Gx / self.s_th,
                "T": c * self.s_th * self.v_sig * Gt, "b": bias}

    def drift(self, theta: np.ndarray) -> np.ndarray:
        """The realised drift (..., d) -> (..., d) in problem units per tau."""
        p = self.realized_parts()
        th = np.asarray(theta, dtype=float)
        if self.model == "gaussian":
            return p["b"] - th @ p["A"].T
        return p["b"] - th @ p["P0"].T - link_fn(th @ p["X"].T, self.link) @ p["T"].T

    def _linearised(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.realized_parts()
        if self.model == "gaussian":
            return p["A"], p["b"]
        th = np.array(self.problem.x_star, dtype=float)
        for _ in range(100):       # Newton on the realised drift (log-concave: converges from the MAP)
            J = p["P0"] + (p["T"] * link_slope(p["X"] @ th, self.link)[None, :]) @ p["X"]
            step = np.linalg.solve(J, self.drift(th))
            th = th + step
            if np.max(np.abs(step)) < 1e-13 * (1 + np.max(np.abs(th))):
                break
        J = p["P0"] + (p["T"] * link_slope(p["X"] @ th, self.link)[None, :]) @ p["X"]
        return J, J @ th

    @property
    def A_realized(self) -> np.ndarray:
        """Gaussian: the realised drift matrix; logistic: the realised drift's Jacobian at its root."""
        return self._linearised()[0]

    @property
    def b_realized(self) -> np.ndarray:
        return self._linearised()[1]

    @property
    def kappa_each(self) -> np.ndarray:
        if not self.has_noise:
            return np.zeros(self.d)
        q_i = self.noise_v_rms ** 2 * self.noise_dt_tau * self.tau_s / self.r_n ** 2
        return q_i * self.tau_s * self.s_th ** 2 / (2.0 * self.c_f ** 2)

    @property
    def kappa_realized(self) -> float:
        return float(np.mean(self.kappa_each))

    # ---- the Design protocol
    def target_sde(self) -> LinearSDE:
        """The exact posterior's OU process (gaussian) or its Laplace approximation (logistic), kappa = 1."""
        return ou_sde(self.problem.A, self.problem.b, 1.0)

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
        A, b = self._linearised()
        return LinearSDE(A, b, np.diag(2.0 * self.kappa_each) + self.intrinsic_d())

    def effective_sde(self) -> LinearSDE:
        """The realised process. With the op-amp macromodel its quasi-static finite-gain corrections (order
        1/gain, 1e-5 by default) are not modelled here: the macromodel is in the netlist only."""
        return self.realized_sde()

    def describe(self) -> dict[str, object]:
        rs = [r[np.isfinite(r)] for r in (self.r_p, self.r_x, self.r_t)]
        allr = np.concatenate(rs + [self.r_f])
        return {"topology": f"posterior_{self.model}", "model": self.model, "link": self.link, "d": self.d,
                "n": self.n, "c_farad": self.c_nominal, "tau_s": self.tau_s, "s_theta_units_per_volt": self.s_th,
                "s_line_units_per_volt": self.s_line, "v_sigmoid_v": self.v_sig, "noise_dt_tau": self.noise_dt_tau,
                "noise_v_rms": self.noise_v_rms, "r_noise_ohm": float(self.r_n[0]) if self.d else None,
                "n_resistors": int(sum(r.size for r in rs) + self.n + np.isfinite(self.r_y).sum()
                                   + np.isfinite(self.r_in).sum()),
                "r_min_used_ohm": float(allr.min()), "r_max_used_ohm": float(allr.max()),
                "n_opamps": self.n_opamps, "opamp": "ideal" if self.macro is None else "macro" if self.macro.cell is None else self.macro.cell.label, "pruned_entries": len(self.pruned), "dropped_entries": len(self.dropped), "v_swing_v": self.v_swing_v,
                "data_source": self.problem.data.source, "nonideal": self.notes}


def _resistors(coef: np.ndarray, unit: float, name: str, ic, pruned: list) -> tuple[np.ndarray, np.ndarray]:
    """|coef| * unit conductances -> resistors (inf: none), signs; range checked, small entries pruned."""
    g = np.abs(coef) * unit
    with np.errstate(divide="ignore"):
        r = np.where(g > 0, 1.0 / np.where(g > 0, g, 1.0), np.inf)
    amax = np.abs(coef).max() if coef.size else 0.0
    for idx in zip(*np.nonzero(np.isfinite(r) & (r > ic.r_max_ohm))):
        a = abs(coef[idx])
        if a < ic.prune_below_relative * amax:
            r[idx] = np.inf
            pruned.append((name, tuple(int(i) for i in idx)))
            continue
        raise DesignError(f"{name}{list(map(int, idx))} = {coef[idx]:.3g} needs R = {r[idx]:.3g} ohm, above "
                          f"circuit.integrator.r_max_ohm = {ic.r_max_ohm:.3g}; raise r_max_ohm, lower r_min_ohm, or set "
                          f"circuit.integrator.prune_below_relative above {a / amax:.3g}")
    return r, np.where(coef < 0, -1.0, 1.0)


def design_posterior(problem, circuit, sim, model: str, link: str | None = None,
                     v_sig: float | None = None) -> PosteriorDesign:
    """Nominal element values for the data and prior within the configured ranges (module doc)."""
    ic = circuit.integrator
    data = problem.data
    X, y = data.X, data.y
    n, d = X.shape
    P0 = data.prior_prec
    mean, cov = problem.x_star, np.linalg.inv(problem.A)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    x0 = problem.x0
    th_range = float(max(np.max(np.abs(mean) + SIGMA_HEADROOM * sd), np.max(np.abs(x0))))
    s_th = th_range / ic.v_swing_v if th_range > 0 else 1.0
    line_sd = np.sqrt(np.clip(np.einsum("kj,jl,kl->k", X, cov, X), 0, None))
    if model == "gaussian":
        s2 = float(problem.noise_var)
        line_mean, line_x0 = X @ mean - y, X @ x0 - y
        b_int = P0 @ data.prior_mean
        v_sig = 0.0
    else:
        s2 = None
        line_mean, line_x0 = X @ mean, X @ x0
        b_int = P0 @ data.prior_mean + X.T @ y
        v_sig = float(v_sig or ic.v_swing_v)
    line_range = float(max(np.max(np.abs(line_mean) + SIGMA_HEADROOM * line_sd), np.max(np.abs(line_x0))))
    s_line = line_range / ic.v_swing_v if line_range > 0 else 1.0
    k_line = s_line / (s_th * s2) if model == "gaussian" else 1.0 / (s_th * v_sig)
    xmax, bmax = float(np.abs(X).max()), float(np.abs(b_int).max())
    tau_s = ic.c_farad * ic.r_min_ohm * max(float(np.abs(P0).max()), xmax * k_line, bmax / (s_th * ic.v_dac_max_v))
    C = ic.c_farad
    pruned: list = []
    r_p, sign_p = _resistors(P0, C / tau_s, "prior_precision", ic, pruned)
    r_f_each = max(ic.r_min_ohm, ic.r_min_ohm * xmax * s_th / s_line)
    r_x, sign_x = _resistors(X, s_th / (s_line * r_f_each), "X", ic, pruned)
    t_sign = -1.0 if model == "gaussian" else 1.0
    r_t, sign_t = _resistors(t_sign * X.T, C * k_line / tau_s, "X^T", ic, pruned)
    r_f = np.full(n, r_f_each)
    if r_f_each > ic.r_max_ohm:
        raise DesignError(f"the summers' feedback resistor {r_f_each:.3g} ohm exceeds circuit.integrator.r_max_ohm; "
                          "raise r_max_ohm")
    # y DACs into the summers (gaussian only)
    r_y, v_y = np.full(n, np.inf), np.zeros(n)
    ymax = float(np.abs(y).max())
    if model == "gaussian" and ymax > 0:
        g_y = min(ymax / (s_line * r_f_each * ic.v_dac_max_v), 1.0 / ic.r_min_ohm)
        if 1.0 / g_y > ic.r_max_ohm:
            # the summers' scale s_line is set by max|X theta - y| over the posterior; when the prior mean puts
            # theta far beyond what the data reach, y is small beside it and the prior mean is the cause
            pm = float(np.max(np.abs(data.prior_mean))) if np.size(data.prior_mean) else 0.0
            if pm > 0 and xmax * pm >= 0.5 * line_range and xmax * pm > 100 * ymax:
                raise DesignError(f"problem.prior_mean: max|prior_mean| = {pm:.3g} puts X theta up to {xmax * pm:.3g}, "
                                  f"{xmax * pm / ymax:.3g} times max|y| = {ymax:.3g}, so y needs R_y = {1 / g_y:.3g} ohm "
                                  "above circuit.integrator.r_max_ohm; give a prior mean on the scale of the data's "
                                  "theta (or standardise X and y)")
            raise DesignError(f"problem.y: max|y| = {ymax:.3g} needs R_y = {1 / g_y:.3g} ohm above r_max_ohm; raise "
                              "circuit.integrator.r_max_ohm or v_dac_max_v")
        r_y = np.full(n, 1.0 / g_y)
        v_y = -y / (s_line * r_f_each * g_y)
    # integrator bias DACs
    r_in, v_dac = np.full(d, np.inf), np.zeros(d)
    if bmax > 0:
        g_in = C * bmax / (tau_s * s_th * ic.v_dac_max_v)
        if 1.0 / g_in > ic.r_max_ohm:
            raise DesignError(f"the bias max|b| = {bmax:.3g} needs R_in = {1 / g_in:.3g} ohm above r_max_ohm; raise "
                              "circuit.integrator.r_max_ohm")
        r_in = np.full(d, 1.0 / g_in)
        v_dac = -C * b_int / (tau_s * s_th * g_in)
    # noise (kappa = 1: temperature 1)
    curv = X.T @ X / s2 if model == "gaussian" else X.T @ X / 4.0
    lam_max = float(np.linalg.eigvalsh(P0 + curv)[-1])
    noise_dt_tau = sim.noise_dt_tau or 1.0 / (sim.noise_oversample * lam_max)
    r_n, v_n = np.full(d, np.inf), 0.0
    if "tran" in sim.analyses and problem.kappa > 0:   # kappa 0: the noise-free run of the error budget
        h_s = noise_dt_tau * tau_s
        q_i = 2.0 * C ** 2 / (tau_s * s_th ** 2)
        v_n = ic.noise_v_rms
        r_noise = v_n * np.sqrt(h_s / q_i)
        if r_noise > ic.r_max_ohm or r_noise < ic.r_min_ohm:
            r_noise = min(max(r_noise, ic.r_min_ohm), ic.r_max_ohm)
            v_n = r_noise * np.sqrt(q_i / h_s)
            if v_n > 20 * ic.noise_v_rms:
                raise DesignError(f"the noise needs samples of {v_n:.3g} V rms even through r_min_ohm; raise "
                                  "circuit.integrator.v_swing_v or noise_v_rms")
        r_n = np.full(d, r_noise)
    oc = circuit.opamp
    return PosteriorDesign(problem=problem, model=model, link=link, c_nominal=C, c_f=np.full(d, C), tau_s=tau_s,
                           s_th=s_th, s_line=s_line, v_sig=v_sig, r_p=r_p, sign_p=sign_p, r_x=r_x, sign_x=sign_x,
                           r_f=r_f, r_y=r_y, v_y=v_y, r_t=r_t, sign_t=sign_t, r_in=r_in, v_dac=v_dac, r_n=r_n,
                           noise_v_rms=float(v_n), noise_dt_tau=float(noise_dt_tau), v_swing_v=ic.v_swing_v,
                           x0_v=x0 / s_th, supply_v=oc.supply_v, i_quiescent_a=oc.i_quiescent_a, pruned=pruned)
