"""``spu-sim posterior CONFIG --out DIR``: simulate a posterior circuit and judge its samples.

    metrics = run_posterior("configs/posterior_gaussian_d4.yaml", "runs/pg")

The config is a run config (problem of kind gaussian_posterior / logistic_posterior, circuit, simulation incl.
simulation.backend, readout) plus an optional ``reference:`` section (the emcee reference sampler of the
logistic model: n_walkers, n_steps, burn_steps, seed). Writes, next to simulate's files (netlist.cir,
result.npz, ...): samples.npz (``theta`` (n_samples, d) in problem units after the burn-in, ``t`` (s), the
reference, autocorrelations, convergence curves), metrics.json and the plots of spu_sim.posterior.plots,
staged and published atomically.

Judges (metrics.json): the sample mean and covariance against the reference (exact for the Gaussian model;
emcee for the logistic one, plus its Laplace approximation), as relative errors and as z-scores against the
theory of finite sampling: Var(time average) = time_average_cov and Var(sample covariance) = sample_cov_var
(spu_sim.ideal) of the realised circuit's OU process (for the logistic model: its linearisation at the
mode, the Laplace OU), plus the reference's own Monte Carlo variance (emcee's integrated autocorrelation
time). Effective sample size and mixing time from the autocorrelation (spu_sim.posterior.stats), energy
from the resistor and op-amp power (spu_sim.topologies.posterior.metrics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError

from .. import ideal, io
from ..config import Seed, Strict, format_validation_error, read_yaml
from ..run_config import Config, load_run_config
from ..compare import check_judged, error_budget_or_note, format_budget, plot_budget
from ..errors import ConfigError
from ..pipeline import prepare, simulate_in, staged
from . import stats
from .plots import plot_posterior
from ..problems.posterior import GaussianPosteriorConfig, GaussianPosteriorProblem, LogisticPosteriorConfig
from ..problems.posterior_reference import emcee_reference, link_fn

SAMPLES_NAME = "samples.npz"
METRICS_NAME = "metrics.json"
N_SIGMA = 4.0
MAX_REF_SAMPLES = 20_000
SIGMOID_GRID = np.linspace(-8.0, 8.0, 3201)


class ReferenceConfig(Strict):
    """The emcee reference sampler (logistic model): walkers, steps after the burn-in, seed."""

    n_walkers: int = Field(default=32, ge=4, le=1024)
    n_steps: int = Field(default=4000, ge=100, le=1_000_000)
    burn_steps: int = Field(default=500, ge=0)
    seed: Seed = 0


def load_posterior(config: str | Path | dict | Config) -> tuple[Config, ReferenceConfig]:
    """(run Config, reference section); a posterior problem kind is required."""
    ref: dict = {}
    if isinstance(config, Config):
        cfg = config
    else:
        if isinstance(config, (str, Path)):
            data, base_dir = read_yaml(config)
        else:
            data, base_dir = dict(config), Path(".")
        ref = data.pop("reference", None) or {}
        if not isinstance(ref, dict):
            raise ConfigError("reference: must be a mapping (n_walkers, n_steps, burn_steps, seed)")
        cfg = load_run_config(data)
        cfg._base_dir = base_dir
    try:
        rc = ReferenceConfig.model_validate(ref)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, root="reference", model=ReferenceConfig)) from None
    if not isinstance(cfg.problem, (GaussianPosteriorConfig, LogisticPosteriorConfig)):
        raise ConfigError("problem.kind: spu-sim posterior needs gaussian_posterior or logistic_posterior; use "
                          "spu-sim compare for other problems")
    return cfg, rc


@dataclass(frozen=True)
class PosteriorReference:
    """What the circuit's samples are judged against: kind "exact" (Gaussian model) or "emcee" (logistic); mean
    (d,), cov (d, d), their Monte Carlo variances (0 when exact) and up to MAX_REF_SAMPLES samples. For the
    logistic model also emcee's n_eff and tau_steps and the Laplace approximation (laplace_mean, laplace_cov);
    for a non-logistic sigmoid element the emcee reference of the density the circuit realises (link_*).
    None: not computed for this model."""

    kind: str
    mean: np.ndarray
    cov: np.ndarray
    mean_var: np.ndarray
    cov_var: np.ndarray
    samples: np.ndarray
    n_eff: Any = None
    tau_steps: Any = None
    laplace_mean: np.ndarray | None = None
    laplace_cov: np.ndarray | None = None
    link_mean: np.ndarray | None = None
    link_cov: np.ndarray | None = None
    link_mean_var: np.ndarray | None = None
    link_cov_var: np.ndarray | None = None


def reference_posterior(problem, link: str | None, rc: ReferenceConfig) -> PosteriorReference:
    """The reference of the problem's posterior (PosteriorReference): exact for the Gaussian model, emcee (and
    Laplace) for the logistic one, plus the realised sigmoid's density for a non-logistic link."""
    d = problem.d
    if isinstance(problem, GaussianPosteriorProblem):
        mean, cov = problem.posterior_mean, problem.posterior_cov
        rng = np.random.default_rng(rc.seed)
        return PosteriorReference("exact", mean, cov, np.zeros(d), np.zeros((d, d)),
                                  rng.multivariate_normal(mean, cov, size=MAX_REF_SAMPLES))
    kw = dict(n_walkers=rc.n_walkers, n_steps=rc.n_steps, burn_steps=rc.burn_steps, seed=rc.seed)
    mc = emcee_reference(problem.data, link="logistic", **kw)
    link_fields = {}
    if link is not None and link != "logistic":
        mr = emcee_reference(problem.data, link=link, **kw)
        link_fields = dict(link_mean=mr.mean, link_cov=mr.cov, link_mean_var=mr.mean_var, link_cov_var=mr.cov_var)
    return PosteriorReference("emcee", mc.mean, mc.cov, mc.mean_var, mc.cov_var, mc.samples[-MAX_REF_SAMPLES:],
                              n_eff=mc.n_eff, tau_steps=mc.tau_steps, laplace_mean=problem.map,
                              laplace_cov=np.linalg.inv(problem.A), **link_fields)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def judge(mean: np.ndarray, cov: np.ndarray, ref_mean: np.ndarray, ref_cov: np.ndarray, var_mean: np.ndarray,
          var_cov: np.ndarray, prefix: str) -> dict[str, Any]:
    """Relative errors, errors in posterior standard deviations, and z-scores against the combined variance."""
    sd = np.sqrt(np.diag(ref_cov))
    zm = (mean - ref_mean) / np.sqrt(var_mean)
    zc = (cov - ref_cov) / np.sqrt(var_cov)
    return {f"{prefix}mean_rel_err": _rel(mean, ref_mean), f"{prefix}cov_rel_err": _rel(cov, ref_cov),
            f"{prefix}mean_err_in_sd_max": float(np.max(np.abs(mean - ref_mean) / sd)),
            f"{prefix}mean_z_max": float(np.max(np.abs(zm))), f"{prefix}cov_z_max": float(np.max(np.abs(zc))),
            f"{prefix}mean_z": zm.tolist(), f"{prefix}cov_z": zc.tolist(),
            f"{prefix}within_{int(N_SIGMA)}_sigma": bool(np.max(np.abs(zm)) <= N_SIGMA and np.max(np.abs(zc)) <= N_SIGMA)}


def sampling_theory(design, window_tau: float) -> tuple[np.ndarray, np.ndarray]:
    """(Var of the time average (d,), Var of the sample covariance (d, d)) of the realised OU process."""
    sde = design.realized_sde()
    return np.diag(ideal.time_average_cov(sde, window_tau)), ideal.sample_cov_var(sde, window_tau)


def convergence_curves(theta: np.ndarray, dt_tau: float, ref: PosteriorReference, design,
                       n_points: int = 25) -> dict[str, np.ndarray]:
    """Errors of the running mean and covariance against the sampling time, with the theory's rms error."""
    n = theta.shape[0]
    idx = np.unique(np.geomspace(20, n, n_points).astype(int).clip(2, n))
    T = idx * dt_tau
    m_err = np.array([_rel(theta[:k].mean(0), ref.mean) for k in idx])
    c_err = np.array([_rel(np.atleast_2d(np.cov(theta[:k], rowvar=False)), ref.cov) for k in idx])
    vm, vc = sampling_theory(design, 1.0)
    m_th = np.sqrt((vm.sum() + ref.mean_var.sum() * T) / T) / np.linalg.norm(ref.mean)
    c_th = np.sqrt((vc.sum() + ref.cov_var.sum() * T) / T) / np.linalg.norm(ref.cov)
    return {"conv_T_tau": T, "conv_mean_err": m_err, "conv_cov_err": c_err, "conv_mean_err_theory": m_th,
            "conv_cov_err_theory": c_th}


def posterior_metrics(prep, arrays: dict, ref: PosteriorReference) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """metrics.json and samples.npz contents of one run."""
    design, d = prep.design, prep.design.d
    tau = float(design.tau_s)
    t, x = arrays["t"], arrays["x"]
    keep = t >= float(arrays["burn_in_s"])
    theta, t_keep = x[keep], t[keep]
    dt_tau = float(t[1] - t[0]) / tau
    window_tau = (t_keep[-1] - t_keep[0]) / tau
    mean, cov = theta.mean(0), np.atleast_2d(np.cov(theta, rowvar=False))
    m: dict[str, Any] = {"engine": prep.cfg.simulation.backend, "topology": prep.topology.name,
                         "problem_kind": prep.cfg.problem.kind, "reference": ref.kind, "d": d, "n_data": design.n,
                         "data_source": prep.problem.data.source, "tau_s": tau, "window_tau": window_tau,
                         "burn_in_tau": float(arrays["burn_in_s"]) / tau, "sample_dt_tau": dt_tau,
                         "n_samples": int(theta.shape[0]), "adc_clipped": int(arrays.get("adc_clipped", 0))}
    vm, vc = sampling_theory(design, window_tau)
    m.update(judge(mean, cov, ref.mean, ref.cov, vm + ref.mean_var, vc + ref.cov_var, ""))
    m["mean_rel_err_expected"] = math.sqrt((vm + ref.mean_var).sum()) / np.linalg.norm(ref.mean)
    m["cov_rel_err_expected"] = math.sqrt((vc + ref.cov_var).sum()) / np.linalg.norm(ref.cov)
    m["matrix_rel_err"] = _rel(design.A_realized, prep.problem.A)
    if ref.laplace_mean is not None:
        m["laplace_mean_err_in_sd_max"] = float(np.max(np.abs(ref.laplace_mean - ref.mean) / np.sqrt(np.diag(ref.cov))))
        m["laplace_cov_rel_err"] = _rel(ref.laplace_cov, ref.cov)
        m.update(judge(mean, cov, ref.laplace_mean, ref.laplace_cov, vm, vc, "vs_laplace_"))
    if design.link is not None:
        dev = link_fn(SIGMOID_GRID, design.link) - link_fn(SIGMOID_GRID, "logistic")
        m.update(sigmoid_model=design.link, sigmoid_max_abs_deviation=float(np.max(np.abs(dev))))
        if ref.link_mean is not None:   # the density the circuit realises, and how far it is from the model's
            m.update(judge(mean, cov, ref.link_mean, ref.link_cov, vm + ref.link_mean_var,
                           vc + ref.link_cov_var, "vs_realised_sigmoid_"))
            m["sigmoid_effect_mean_shift_in_sd_max"] = float(np.max(np.abs(ref.link_mean - ref.mean)
                                                                     / np.sqrt(np.diag(ref.cov))))
            m["sigmoid_effect_cov_rel"] = _rel(ref.link_cov, ref.cov)
    st = stats.summary(theta, dt_tau)
    lam = np.linalg.eigvalsh(0.5 * (design.A_realized + design.A_realized.T))
    A_lin = design.A_realized
    rho_th_lags = np.arange(min(len(theta), int(np.ceil(6.0 / lam[0] / dt_tau)) + 1)) * dt_tau
    rho_th = stats.ou_autocorrelation(A_lin, rho_th_lags)
    S = ideal.stationary_cov(ideal.ou_sde(A_lin, np.zeros(d), 1.0))
    tau_int_th = 2.0 * np.diag(np.linalg.solve(A_lin, S)) / np.diag(S)
    m.update({k: v for k, v in st.items() if k != "n_samples"})
    # the theory's variance of the time average against the path's own estimate (sample variance x tau_int / N)
    var_emp = np.diag(cov) * np.asarray(st["tau_int_samples"]) / theta.shape[0]
    m["mean_sd_theory_over_empirical"] = np.sqrt(vm / var_emp).tolist()
    t_mix_tau = float(st["mixing_time_tau"])
    m.update(mixing_time_s=t_mix_tau * tau, mixing_time_theory_tau=stats.mixing_time(rho_th, dt_tau),
             slowest_rate_tau=float(lam[0]), relaxation_time_theory_tau=float(1.0 / lam[0]),
             tau_int_theory_tau=tau_int_th.tolist())
    p_r = float(arrays.get("power_resistive_mean_w", np.nan))
    p_q = float(arrays.get("power_quiescent_w", 0.0)) + float(arrays.get("power_output_stage_mean_w", 0.0))
    m.update(power_resistive_mean_w=p_r, power_opamp_w=p_q, n_opamps=int(design.n_opamps),
             energy_per_mixing_time_j=(p_r + p_q) * t_mix_tau * tau, energy_run_j=(p_r + p_q) * float(t[-1]),
             ess_per_s=float(st["ess"]) / (window_tau * tau))
    rho = stats.autocorrelation(theta, max_lag=len(rho_th_lags) - 1)
    samples = {"theta": theta, "t": t_keep, "engine": np.array(prep.cfg.simulation.backend),
               "ref_mean": ref.mean, "ref_cov": ref.cov, "ref_samples": ref.samples,
               "ref_kind": np.array(ref.kind), "acf_lag_tau": rho_th_lags, "acf": rho, "acf_theory": rho_th}
    for k in ("laplace_mean", "laplace_cov", "link_mean", "link_cov"):
        if getattr(ref, k) is not None:
            samples[k] = getattr(ref, k)
    samples.update(convergence_curves(theta, dt_tau, ref, design))
    return m, samples


def run_posterior(config: str | Path | dict | Config, out_dir: str | Path, *, progress: bool = False,
                  budget: bool = True) -> dict[str, Any]:
    """simulate + reference + metrics.json + samples.npz + plots in out_dir (module doc); budget: also the error
    budget of the sample mean and covariance by cause (spu_sim.compare.error_budget: each cause alone on the linear
    engine, same seed; a circuit the linear engine cannot run, such as the logistic sigmoid element, gets
    ``budget_note`` instead) and budget.png."""
    cfg, rc = load_posterior(config)
    prep = prepare(cfg)
    check_judged(prep)
    if "tran" not in cfg.simulation.analyses:
        raise ConfigError("simulation.analyses: spu-sim posterior needs tran (the samples); add tran")
    out = Path(out_dir)
    ref = reference_posterior(prep.problem, prep.design.link, rc)

    def work(stage: Path) -> dict[str, Any]:    # simulate's files, samples, metrics and plots: published together
        result = simulate_in(prep, stage, out, progress=progress)
        metrics, samples = posterior_metrics(prep, result.arrays, ref)
        if budget:
            metrics.update(error_budget_or_note(prep, metrics, mean_from_op=True))
        io.atomic_save_npz(stage / SAMPLES_NAME, **samples)
        io.atomic_write_json(stage / METRICS_NAME, metrics)
        plot_posterior(stage)
        plot_budget(stage)
        return metrics
    return staged(out, work, prep=prep)[0]


def format_summary(m: dict[str, Any]) -> str:
    lines = [f"posterior sampler: {m['topology']} on {m['engine']}, d = {m['d']}, n = {m['n_data']} "
             f"({m['data_source']}); reference: {m['reference']}",
             f"{'':28s} {'circuit':>10s} {'expected':>10s} {'max |z|':>8s}",
             f"{'mean vs reference (rel)':28s} {m['mean_rel_err']:10.3e} {m['mean_rel_err_expected']:10.3e} {m['mean_z_max']:8.2f}",
             f"{'covariance vs reference':28s} {m['cov_rel_err']:10.3e} {m['cov_rel_err_expected']:10.3e} {m['cov_z_max']:8.2f}",
             f"window {m['window_tau']:.4g} tau ({m['n_samples']} samples), ESS {m['ess']:.0f}, mixing time "
             f"{m['mixing_time_tau']:.3g} tau (theory {m['mixing_time_theory_tau']:.3g}), tau = {m['tau_s']:.4g} s",
             f"energy per mixing time {m['energy_per_mixing_time_j']:.3e} J (resistive {m['power_resistive_mean_w']:.3e} W,"
             f" {m['n_opamps']} op-amps {m['power_opamp_w']:.3e} W)"]
    if "sigmoid_model" in m:
        lines.append(f"sigmoid element: {m['sigmoid_model']}, max |deviation from logistic| "
                     f"{m['sigmoid_max_abs_deviation']:.3g}" + (
                         f"; its posterior moves the mean by {m['sigmoid_effect_mean_shift_in_sd_max']:.3g} sd, the "
                         f"covariance by {m['sigmoid_effect_cov_rel']:.3g} (rel)" if "sigmoid_effect_cov_rel" in m else ""))
    if format_budget(m):
        lines.append(format_budget(m))
    elif "budget_note" in m:
        lines.append(m["budget_note"])
    return "\n".join(lines)
