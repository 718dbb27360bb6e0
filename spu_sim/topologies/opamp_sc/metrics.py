"""Metrics of the switched-capacitor SPU: the error split, the kT/C floor, energy per clock, the clock zoom.

Error split (relative Frobenius / Euclidean errors, all from spu_sim.topologies.opamp_sc.discrete):

    quantization    continuous OU of the realised A, b (bank codes, mismatch) at the target kappa vs the
                    target OU: sc_quantization_{mean,cov}_rel_err
    discretization  the clocked process with the injected noise only vs the continuous OU of the same
                    realised A and the same per-period noise (diffusion = per-period variance / h):
                    sc_discretization_{mean,cov}_rel_err (the mean is exact: ~1e-15)
    feedthrough     the clocked process with vs without the clock-feedthrough / charge-injection offset
                    (design.feedthrough_offset_v): sc_feedthrough_mean_rel_err (0 with ideal switches)
    kT/C floor      the clocked process with kT/C noise only: sc_kappa_ktc = tr(S_kTC) / tr(A_realized^-1),
                    the noise level it alone would give (its "temperature" in problem units), and
                    sc_ktc_over_kappa = sc_kappa_ktc / kappa
    sampling        measured time average / covariance vs the exact clocked process with the enabled noise
                    sources: sc_sampling_{mean,cov}_rel_err and their rms expectation *_expected (mean: the
                    exact sum of the AR autocovariances; covariance: ideal.sample_cov_var of the embedding)

Energy: each branch draws C V^2 per period from its source (charged to V in one phase, discharged to
ground in the other; clock drivers not included): E_clk = sum_ij C_ij <V_j^2> + sum_i (C_in V_dac^2 +
C_n <u^2>), measured on the readout samples (sc_energy_per_clock_j, sc_power_w = E_clk f_clk) and from
the stationary law (sc_energy_per_clock_theory_j).
"""

from __future__ import annotations

import numpy as np

from ... import ideal
from ...ideal import LinearSDE, ou_sde
from . import discrete

ZOOM_PERIODS = 4


def _rel(err: np.ndarray, ref: np.ndarray) -> float:
    den = float(np.linalg.norm(ref))
    return float(np.linalg.norm(err)) / den if den > 0 else float(np.linalg.norm(err))


def kappa_ktc(design) -> float:
    """The noise level (problem units) the kT/C noise alone gives: tr(S_kTC) / tr(A_realized^-1)."""
    S = discrete.stationary_cov(design.process(injected=False, ktc=True))
    return float(np.trace(S) / np.trace(np.linalg.inv(design.A_realized)))


def error_split(design) -> dict[str, float]:
    """Theory-only parts of the split (module doc)."""
    pr = design.problem
    tgt = design.target_sde()
    m_t, S_t = ideal.stationary_mean(tgt), ideal.stationary_cov(tgt)
    q = ou_sde(design.A_realized, design.b_realized, pr.kappa)
    out = {"sc_f_clk_tau": float(design.sc.f_clk_tau), "sc_bits": int(design.bits),
           "sc_h_lambda_max": float(design.h * np.max(np.abs(np.linalg.eigvals(design.A_realized)))),
           "sc_quantization_mean_rel_err": _rel(ideal.stationary_mean(q) - m_t, m_t)}
    if pr.kappa > 0:
        out["sc_quantization_cov_rel_err"] = _rel(ideal.stationary_cov(q) - S_t, S_t)
    p_inj = design.process(injected=True, ktc=False, feedthrough=False)
    m_d = discrete.stationary_mean(p_inj)
    m_c = np.linalg.solve(design.A_realized, design.b_realized)
    out["sc_discretization_mean_rel_err"] = _rel(m_d - m_c, m_c)
    if design.injected:
        B = np.eye(design.d) + design.H_plus
        cont = LinearSDE(design.A_realized, design.b_realized, B @ p_inj.Q @ B.T / design.h)
        S_c = ideal.stationary_cov(cont)
        out["sc_discretization_cov_rel_err"] = _rel(discrete.stationary_cov(p_inj) - S_c, S_c)
    m_f = discrete.stationary_mean(design.process(feedthrough=True))
    out["sc_feedthrough_mean_rel_err"] = _rel(m_f - m_d, m_d)
    k = kappa_ktc(design)
    out["sc_kappa_ktc"] = k
    out["sc_ktc_over_kappa"] = k / pr.kappa if pr.kappa > 0 else float("inf")
    out["sc_spectral_radius"] = discrete.spectral_radius(design.process())
    return out


def energy_per_clock_j(design, v_mean_sq: np.ndarray) -> float:
    """sum_ij C_ij <V_j^2> + sum_i (C_in V_dac^2 + C_n <u^2>) for node mean squares <V_j^2> (d,)."""
    return float(np.sum(design.c_branch_farad * v_mean_sq[None, :]) + np.sum(design.c_in_farad * design.v_dac_v ** 2)
                 + np.sum(design.c_noise_farad) * design.noise_v_rms ** 2)


def circuit_metrics(design, problem, arrays: dict) -> dict[str, float]:
    out = error_split(design)
    if getattr(design, "intrinsic", None) is not None:      # circuit.opamp.in_a_per_rthz (design.q_in_period)
        out["kappa_intrinsic"] = design.kappa_intrinsic
    p = design.process()
    m_e, S_e = discrete.stationary_mean(p), discrete.stationary_cov(p)
    out["sc_energy_per_clock_theory_j"] = energy_per_clock_j(design, (m_e ** 2 + np.diag(S_e)) / design.s_x ** 2)
    t = np.asarray(arrays.get("t", np.zeros(0)), dtype=float)
    if t.size > 1:
        keep = t >= float(arrays["burn_in_s"])
        x = np.asarray(arrays["x"], dtype=float)[keep]
        n = int(keep.sum())
        out["sc_sampling_mean_rel_err"] = _rel(np.asarray(arrays["x_mean"]) - m_e, m_e)
        out["sc_sampling_mean_rel_err_expected"] = float(np.sqrt(max(np.trace(discrete.sample_mean_cov(p, n)), 0.0))
                                                         / max(np.linalg.norm(m_e), 1e-300))
        if design.has_noise and np.any(S_e):
            out["sc_sampling_cov_rel_err"] = _rel(np.asarray(arrays["x_cov"]) - S_e, S_e)
            window_tau = (t[keep][-1] - t[keep][0]) / design.tau_s
            var = ideal.sample_cov_var(design.effective_sde(), window_tau)
            out["sc_sampling_cov_rel_err_expected"] = float(np.sqrt(var.sum()) / np.linalg.norm(S_e))
        e = energy_per_clock_j(design, np.mean((x / design.s_x) ** 2, axis=0))
        out["sc_energy_per_clock_j"] = e
        out["sc_power_w"] = e * design.sc.f_clk_hz
        out["sc_energy_run_j"] = e * (t[-1] - t[0]) * design.sc.f_clk_hz
    return out


def circuit_arrays(design, plots: dict, arrays: dict) -> dict[str, np.ndarray]:
    """The bank codes (sc_code), the effective continuous-time drift of the clocked process (A_effective) and
    the zoomed waveform over ZOOM_PERIODS clock periods after the burn-in, at ngspice's own time points (the
    linear engine: the last periods of the run, from its detail waveform at 200 points per period): sc_zoom_t_s, sc_zoom_x (problem units, up to 2 variables), sc_zoom_phi1_v, sc_zoom_phi2_v, sc_period_s."""
    out = {"sc_code": np.asarray(design.code), "A_effective": discrete.effective_drift(design.process())}
    if "tran" not in plots:
        return out
    w = plots["tran"]
    T = design.period_s
    detail = getattr(w, "detail", None)   # the linear engine's finely sampled last periods (its grid is nT only)
    if detail is not None:
        w = detail
    t = np.real(w.axis)
    t0 = np.floor(float(arrays.get("burn_in_s", 0.0)) / T) * T
    if detail is not None or t0 + ZOOM_PERIODS * T > t[-1]:
        t0 = max(float(t[0]), np.floor(t[-1] / T * (1 + 1e-12)) * T - ZOOM_PERIODS * T)
    sel = (t >= t0 - 1e-9 * T) & (t <= t0 + ZOOM_PERIODS * T + 1e-9 * T)
    k = min(design.d, 2)
    x = np.column_stack([np.real(w.node(f"x{i + 1}"))[sel] for i in range(k)])
    return {**out, "sc_zoom_t_s": t[sel], "sc_zoom_x": design.to_problem_units(x),
            "sc_zoom_phi1_v": np.real(w.node("phi1"))[sel], "sc_zoom_phi2_v": np.real(w.node("phi2"))[sel],
            "sc_period_s": np.array(T)}
