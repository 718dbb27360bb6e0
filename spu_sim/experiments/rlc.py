"""RLC SPU experiments: Gaussian sampling, matrix inversion against bank resolution, autocorrelation.

Each ``run_*`` function: load the config (its ``experiment:`` section validated here) -> simulate in
ngspice -> save arrays (.npz), a summary (.json) and a table (.csv) next to the resolved config -> plot
from the saved files (``plot_*`` in rlc_plots.py, which never simulate). The estimators and exact
references are in rlc_stats.py; the many bank runs of rlc_inversion go through spu_sim.runs.scheduler.

Estimators (the voltage mean is 0 in this topology, so second moments use the known zero mean):
  covariance      Shat = (1/n) sum_k x_k x_k^T over the samples after the burn-in
  inverse         A^-1 estimate = Shat / kappa (kappa: the problem's noise level, known to the user)
  autocovariance  chat(s) = (1/(n - m)) sum_k x_i(t_k) x_i(t_k + s),  s = m * sample_dt
and the exact references come from spu_sim.ideal applied to the design's 2d-dimensional SDEs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import yaml
from pydantic import Field, model_validator

from .. import ideal, io
from ..config import Strict, save_config
from ..run_config import Config, load_run_config
from ..errors import ConfigError, SimulationError
from ..pipeline import Prepared, prepare, simulate, staged
from ..runs.scheduler import run_tasks
from ..topologies import circuit_config
from ..topologies.rlc.config import RlcCircuitConfig
from ..topologies.rlc.sde import netlist_stationary_cov
from . import key_numbers
from .base import EXPERIMENTS, Experiment, as_setting, read_experiment
from .rlc_stats import (autocovariance, bartlett_se, error_curve, exact_autocovariance, fit_damped_cosine,
                        interpolated_noise_cov, rel_err)
from .rlc_plots import SUMMARY_NAME, plot_autocorrelation, plot_inversion, plot_sampling


# ---------------------------------------------------------------- experiment sections


class SamplingExperiment(Strict):
    """bins: histogram bins per cell; n_sigma: histogram range +/- n_sigma theoretical standard deviations."""

    bins: int = Field(default=60, ge=5, le=1000)
    n_sigma: float = Field(default=4.5, gt=0)


MAX_REFERENCE_STEPS = 10_000_000    # steps of an exact reference sampler (each a d-vector per bank)
MIN_REFERENCE_STEPS = 20            # ... and at least the shortest prefix of an error curve (rlc_stats.error_curve)


class InversionExperiment(Strict):
    """banks: coupling modes to compare ("ideal" or a number of bits); bank_full_scale_farad: the bank's
    full scale, the same for every B (c_unit = full / (2^B - 1)); reference_t_tau / reference_dt_tau:
    duration and step of the exact samplers (target process, and each bank's realised process) that
    extend the curves beyond what ngspice can afford; n_points: points per error curve; workers:
    ngspice processes in parallel."""

    banks: list[Union[Literal["ideal"], Annotated[int, Field(ge=1, le=16)]]] = Field(
        default=["ideal", 3, 4, 6, 8], min_length=1)
    bank_full_scale_farad: float = Field(default=6.3e-10, gt=0)
    reference_t_tau: float = Field(default=1e5, gt=0)
    reference_dt_tau: float = Field(default=0.5, gt=0)
    n_points: int = Field(default=30, ge=3, le=500)
    workers: int = Field(default=2, ge=1, le=64)

    @model_validator(mode="after")
    def _reference_steps(self) -> "InversionExperiment":
        steps = self.reference_t_tau / self.reference_dt_tau
        if steps > MAX_REFERENCE_STEPS:
            raise ValueError(f"reference_t_tau / reference_dt_tau = {steps:.3g} steps of the exact samplers, beyond "
                             f"{MAX_REFERENCE_STEPS:.0e}; shorten reference_t_tau or raise reference_dt_tau")
        if not steps >= MIN_REFERENCE_STEPS:   # fewer: an error curve of the zero initial state alone (100 %)
            raise ValueError(f"reference_t_tau / reference_dt_tau = {steps:.3g} steps of the exact samplers, below the "
                             f"{MIN_REFERENCE_STEPS} of the error curves' shortest point; lengthen reference_t_tau or "
                             "lower reference_dt_tau")
        return self


MIN_LAGS = 5     # lags of the shortest autocorrelation curve a damped cosine is fitted to


class AutocorrelationExperiment(Strict):
    """cell: which cell's node voltage (1-based, node n<cell>); max_lag_tau: largest lag shown."""

    cell: int = Field(default=1, ge=1)
    max_lag_tau: float = Field(default=40.0, gt=0)


def load_experiment(config_path: str | Path, model: type[Strict]) -> tuple[Config, Any, dict[str, Any]]:
    """YAML -> (run Config, validated experiment section, the raw dict). Relative paths resolve against
    the YAML's folder. The run config must use circuit.topology: rlc."""
    data, base_dir, exp = read_experiment(config_path, model)
    circuit = circuit_config(data.get("circuit"))      # the topology first: its problem rules differ
    if not isinstance(circuit, RlcCircuitConfig):
        raise ConfigError(f"circuit.topology: {circuit.topology!r} is not supported by this experiment; use rlc")
    cfg = load_run_config(data, base_dir)
    return cfg, exp, data


def _with(cfg: Config, **rlc: Any) -> Config:
    """A copy of cfg with circuit.rlc fields replaced (validated), same base folder."""
    data = cfg.to_dict()
    data["circuit"]["rlc"].update(rlc)
    return load_run_config(data, cfg.base_dir)


def _save_common(stage: Path, cfg: Config, exp: Any) -> None:
    io.atomic_write_text(stage / "config.yaml", save_config(cfg) + yaml.safe_dump({"experiment": exp.model_dump(mode="json")}))


def _stationary_x(arrays: dict[str, np.ndarray]) -> np.ndarray:
    t, x = arrays["t"], arrays["x"]
    return x[t >= float(arrays["burn_in_s"])]


# ---------------------------------------------------------------- sampling


def run_sampling(config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Sampling, d cells: histograms per cell vs N(0, kappa (A_r^-1)_ii) and the empirical covariance vs
    kT_eff Cm^-1 of the realised circuit (volts^2), with per-entry standard errors from
    ideal.sample_cov_var. Files: sampling.npz, summary.json, sampling.csv, config.yaml, netlist.cir,
    design.json, plots."""
    cfg, exp, _ = load_experiment(config_path, SamplingExperiment)
    out = Path(out_dir)
    prep = prepare(cfg)  # designed once: simulate and the analysis below share it
    def work(stage: Path) -> None:
        t0 = time.perf_counter()
        res = simulate(prep, stage / "run", progress=True)   # published with the stage
        wall = time.perf_counter() - t0
        design = prep.design
        d = design.d
        x = _stationary_x(res.arrays)
        window_tau = len(x) * prep.sample_dt_tau
        cov_emp = x.T @ x / len(x)
        sde_r = design.realized_sde()
        cov_th = ideal.stationary_cov(sde_r)[:d, :d]
        sd = np.sqrt(ideal.sample_cov_var(sde_r, window_tau)[:d, :d])
        v_scale = 1.0 / design.s_x ** 2                     # problem units^2 -> V^2
        kt_cm_inv = design.kt_eff_joule * np.linalg.inv(design.cm_realized_farad)
        z = (cov_emp - cov_th) / sd
        cov_net = netlist_stationary_cov(design)
        io.atomic_save_npz(stage / "sampling.npz", x=x, cov_emp=cov_emp, cov_theory=cov_th, cov_sd=sd,
                           cov_emp_v2=cov_emp * v_scale, kt_cm_inv_v2=kt_cm_inv, z=z, s_x=np.array(design.s_x),
                           cm_realized_farad=design.cm_realized_farad, cm_target_farad=design.cm_target_farad,
                           bins=np.array(exp.bins), n_sigma=np.array(exp.n_sigma))
        summary = {"d": d, "coupling": design.coupling, "bits": design.bits, "window_tau": window_tau,
                   "n_samples": len(x), "cov_rel_err_vs_kT_Cm_inv": rel_err(cov_emp, cov_th),
                   "cov_rel_err_expected": float(np.sqrt((sd ** 2).sum()) / np.linalg.norm(cov_th)),
                   "cov_rel_err_vs_target": rel_err(cov_emp, prep.problem.kappa * np.linalg.inv(prep.problem.A)),
                   "cov_rel_err_vs_netlist_exact": rel_err(cov_emp, cov_net),
                   "netlist_exact_vs_kT_Cm_inv": rel_err(cov_net, cov_th),
                   "z_rms": float(np.sqrt(np.mean(z ** 2))), "z_max_abs": float(np.abs(z).max()),
                   "frac_within_2sd": float(np.mean(np.abs(z) <= 2)), "cm_rel_err": design.describe()["cm_rel_err"],
                   "kt_eff_joule": design.kt_eff_joule, "wall_s": wall}
        io.atomic_write_json(stage / SUMMARY_NAME, summary)
        rows = ["i,j,cov_emp_v2,kt_cm_inv_v2,sd_v2,z"] + [
            f"{i},{j},{cov_emp[i, j] * v_scale:.6e},{kt_cm_inv[i, j]:.6e},{sd[i, j] * v_scale:.6e},{z[i, j]:.4f}"
            for i in range(d) for j in range(d)]
        io.atomic_write_text(stage / "sampling.csv", "\n".join(rows) + "\n")
        _save_common(stage, cfg, exp)
        plot_sampling(stage)
    return staged(out, work, family="rlc_sampling", backend=prep.cfg.simulation.backend)[1]


# ---------------------------------------------------------------- inversion


def _bank_label(bank: Union[str, int]) -> str:
    return "ideal" if bank == "ideal" else f"{bank}-bit"


def _inversion_worker(prep: Any) -> dict[str, Any]:
    """One ngspice run of a prepared (already designed) bank, in a worker process of spu_sim.runs."""
    t0 = time.perf_counter()
    res = simulate(prep, None)
    return {"x": _stationary_x(res.arrays), "wall_s": time.perf_counter() - t0}


def _hard_timeout_s(cfg: Config) -> float | None:
    """The scheduler's limit per bank run: twice ngspice's own (simulation.timeout_s) plus 30 s, or none."""
    t = cfg.simulation.timeout_s
    return None if t is None else 2.0 * t + 30.0


def run_inversion(config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Matrix inversion: error of the estimated A^-1 against duration for each bank resolution.

    Per bank: one ngspice run (error curve over nested prefixes), the exact bias floors
    ||(kappa_r/kappa) A_r^-1 - A^-1|| / ||A^-1|| (realised capacitance matrix) and ||S_netlist/kappa - A^-1||
    / ||A^-1|| (the netlist as built, switch resistances included: topologies.rlc.sde.netlist_stationary_cov), the
    floor of the simulation itself (realised Cm with the filesource's finite noise step:
    interpolated_noise_cov; an artefact of simulating, not of the hardware), and
    a long exact sample of the bank's realised 2d process (how the hardware's error floors); plus the exact sampler of the target process at equal durations
    and the expected sampling error (ideal.sample_cov_var). Files: inversion.npz, summary.json,
    inversion.csv, config.yaml, inversion_error.png."""
    from tqdm import tqdm  # noqa: PLC0415 - optional heavy dependency
    cfg, exp, _ = load_experiment(config_path, InversionExperiment)
    out = Path(out_dir)
    preps: dict[str, Prepared] = {}  # each bank designed once, here; the worker and the analysis share it
    for k, bank in enumerate(exp.banks):
        with as_setting(f"experiment.banks[{k}]", bank):
            if bank == "ideal":
                c = _with(cfg, coupling="ideal")
            else:
                c = _with(cfg, coupling="switched", bits=int(bank),
                          c_unit_farad=exp.bank_full_scale_farad / (2 ** int(bank) - 1))
            preps[_bank_label(bank)] = prepare(c)  # every design validated (range errors) before any simulation
    prep0 = preps[next(iter(preps))]
    A, kappa = prep0.problem.A, prep0.problem.kappa
    A_inv = np.linalg.inv(A)
    dt_tau = prep0.sample_dt_tau
    t0 = time.perf_counter()
    # spawn: this process may already hold ngspice (an earlier experiment in the same session)
    outcomes = run_tasks(_inversion_worker, list(preps.items()), workers=exp.workers,
                         timeout_s=_hard_timeout_s(cfg), progress="rlc_inversion ngspice runs", start_method="spawn")
    for o in outcomes:
        if not o.ok:
            raise SimulationError(f"rlc_inversion: the {o.key} bank's ngspice run failed: {o.value}")
    results = {o.key: o.value for o in outcomes}
    wall_ngspice = time.perf_counter() - t0

    arrays: dict[str, np.ndarray] = {"A": A, "A_inv": A_inv, "kappa": np.array(kappa),
                                     "labels": np.array(list(preps))}
    summary: dict[str, Any] = {"d": int(A.shape[0]), "kappa": kappa, "sample_dt_tau": dt_tau,
                               "reference_t_tau": exp.reference_t_tau, "wall_ngspice_s": wall_ngspice, "banks": {}}
    n_ref = int(round(exp.reference_t_tau / exp.reference_dt_tau))
    t_ref = np.arange(n_ref + 1) * exp.reference_dt_tau
    seed = cfg.simulation.seed
    # exact sampler of the target process (what an ideal SPU would give) at equal durations
    target_sde = prep0.design.target_sde()
    z = ideal.sample(target_sde, np.zeros(2 * A.shape[0]), t_ref, seed=seed + 1000)[:, :A.shape[0]]
    arrays["ref_T_tau"], arrays["ref_err_target"] = error_curve(z, A_inv, kappa, exp.reference_dt_tau, exp.n_points)
    Ts = arrays["ref_T_tau"]
    if 2 * A.shape[0] <= 40:
        v = np.array([ideal.sample_cov_var(target_sde, 1.0)[:A.shape[0], :A.shape[0]].sum()])
        arrays["expected_err"] = np.sqrt(v[0] / Ts) / kappa / np.linalg.norm(A_inv)
    for lab in tqdm(list(preps), desc="rlc_inversion exact samplers", file=sys.stderr):
        r = results[lab]
        design_r = preps[lab].design
        describe = design_r.describe()
        T_c, e_c = error_curve(r["x"], A_inv, kappa, dt_tau, exp.n_points)
        A_r, kap_r = design_r.A_realized, design_r.kappa_realized
        floor = rel_err(kap_r / kappa * np.linalg.inv(A_r), A_inv)
        floor_netlist = rel_err(netlist_stationary_cov(design_r) / kappa, A_inv)
        d_ = A.shape[0]
        noise_dt = float(describe["noise_dt_tau"])
        floor_sim = rel_err(interpolated_noise_cov(design_r.realized_sde(), noise_dt)[:d_, :d_] / kappa, A_inv)
        zr = ideal.sample(design_r.realized_sde(), np.zeros(2 * A.shape[0]), t_ref, seed=seed + 1000)[:, :A.shape[0]]
        _, e_r = error_curve(zr, A_inv, kappa, exp.reference_dt_tau, exp.n_points)
        arrays[f"{lab}/T_tau"], arrays[f"{lab}/err"] = T_c, e_c
        arrays[f"{lab}/ref_err"] = e_r
        arrays[f"{lab}/floor"] = np.array(floor)
        arrays[f"{lab}/floor_netlist"] = np.array(floor_netlist)
        arrays[f"{lab}/floor_noise_step"] = np.array(floor_sim)
        arrays[f"{lab}/A_realized"] = A_r
        summary["banks"][lab] = {
            "floor_exact": floor, "floor_netlist": floor_netlist, "floor_with_sim_noise_step": floor_sim,
            "noise_dt_tau": noise_dt, "matrix_rel_err": rel_err(A_r, A), "err_ngspice_at_end": float(e_c[-1]),
            "T_ngspice_tau": float(T_c[-1]), "err_realised_sampler_at_reference_t": float(e_r[-1]),
            "err_ideal_sampler_at_reference_t": float(arrays["ref_err_target"][-1]),
            "err_ideal_sampler_at_T_ngspice": float(np.interp(T_c[-1], Ts, arrays["ref_err_target"])),
            "ngspice_wall_s": r["wall_s"], **{k: describe[k] for k in ("coupling", "bits", "c_unit_farad", "n_switches")}}
    def work(stage: Path) -> None:
        io.atomic_save_npz(stage / "inversion.npz", **arrays)
        summary["wall_total_s"] = time.perf_counter() - t0
        io.atomic_write_json(stage / SUMMARY_NAME, summary)
        rows = ["bank,floor_exact,floor_netlist,floor_with_sim_noise_step,err_ngspice_at_end,T_ngspice_tau,err_realised_sampler_at_reference_t,"
                "err_ideal_sampler_at_T_ngspice,matrix_rel_err"]
        for lab, s in summary["banks"].items():
            rows.append(f"{lab},{s['floor_exact']:.4e},{s['floor_netlist']:.4e},{s['floor_with_sim_noise_step']:.4e},"
                        f"{s['err_ngspice_at_end']:.4e},{s['T_ngspice_tau']:.4g},"
                        f"{s['err_realised_sampler_at_reference_t']:.4e},{s['err_ideal_sampler_at_T_ngspice']:.4e},"
                        f"{s['matrix_rel_err']:.4e}")
        io.atomic_write_text(stage / "inversion.csv", "\n".join(rows) + "\n")
        _save_common(stage, cfg, exp)
        plot_inversion(stage)
    return staged(out, work, family="rlc_inversion", backend=prep0.cfg.simulation.backend)[1]


# ---------------------------------------------------------------- autocorrelation


def run_autocorrelation(config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Autocovariance of one node voltage vs the exact underdamped prediction of the realised circuit.

    Reports the modes of the realised 2d SDE (eigenvalues -decay +/- i omega of -K and their weight in
    c_ii), and the frequency and decay of a damped-cosine fit to the measured curve and to the exact
    curve (same fit, same lags). Files: autocorrelation.npz, summary.json, autocorrelation.csv, plots."""
    cfg, exp, _ = load_experiment(config_path, AutocorrelationExperiment)
    out = Path(out_dir)
    prep = prepare(cfg)  # designed once: simulate and the analysis below share it
    design = prep.design
    if exp.cell > design.d:  # checked before the simulation, not after it
        raise ConfigError(f"experiment.cell: {exp.cell} exceeds the number of cells {design.d}")
    window_tau = prep.cfg.simulation.t_stop_tau - prep.burn_in_tau
    if not MIN_LAGS * prep.sample_dt_tau <= exp.max_lag_tau <= window_tau / 2:
        raise ConfigError(f"experiment.max_lag_tau: {exp.max_lag_tau:g} tau must lie between {MIN_LAGS} readout steps "
                          f"({MIN_LAGS * prep.sample_dt_tau:.3g} tau) and half the averaged window ({window_tau / 2:.3g} "
                          "tau, simulation.t_stop_tau minus the burn-in); change it or the run length")
    def work(stage: Path) -> None:
        t0 = time.perf_counter()
        res = simulate(prep, stage / "run", progress=True)   # published with the stage
        wall = time.perf_counter() - t0
        i = exp.cell - 1
        dt = prep.sample_dt_tau
        x = _stationary_x(res.arrays)[:, i]
        m = int(round(exp.max_lag_tau / dt))
        lags = np.arange(m + 1) * dt
        c_emp = autocovariance(x, m)
        sde_r, sde_t = design.realized_sde(), design.target_sde()
        c_real = exact_autocovariance(sde_r, i, lags)
        c_targ = exact_autocovariance(sde_t, i, lags)
        T = len(x) * dt
        slow = design.slowest_rate_tau
        u_max = exp.max_lag_tau + 12.0 / slow

        def c_fn(s):
            return exact_autocovariance(sde_r, i, s)
        se = bartlett_se(c_fn, lags, T, dt, u_max)
        lam = np.linalg.eigvals(sde_r.K)
        w, V = np.linalg.eig(sde_r.K)
        weights = V[i, :] * (np.linalg.solve(V, ideal.stationary_cov(sde_r)[:, i]))
        modes = sorted(({"decay_per_tau": float(l.real), "omega_per_tau": float(abs(l.imag)),
                         "f_hz": float(abs(l.imag) / (2 * np.pi * design.tau_s)), "weight": float(abs(wt))}
                        for l, wt in zip(w, weights) if l.imag >= 0), key=lambda d_: -d_["weight"])
        fit_emp = fit_damped_cosine(lags, c_emp)
        fit_exact = fit_damped_cosine(lags, c_real)
        zres = (c_emp - c_real) / np.where(se > 0, se, np.inf)
        io.atomic_save_npz(stage / "autocorrelation.npz", lags_tau=lags, c_emp=c_emp, c_exact=c_real, c_target=c_targ,
                           se=se, eig=lam, tau_s=np.array(design.tau_s), cell=np.array(exp.cell))
        summary = {"cell": exp.cell, "d": design.d, "coupling": design.coupling, "bits": design.bits,
                   "window_tau": T, "eta": design.eta, "tau_s": design.tau_s,
                   "rms_z_of_residual": float(np.sqrt(np.mean(zres ** 2))), "max_abs_z": float(np.abs(zres).max()),
                   "fit_measured": fit_emp, "fit_exact": fit_exact, "modes_by_weight": modes, "wall_s": wall}
        io.atomic_write_json(stage / SUMMARY_NAME, summary)
        rows = ["lag_tau,c_measured,c_exact_realised,c_exact_target,std_err"] + [
            f"{lags[k]:.4f},{c_emp[k]:.6e},{c_real[k]:.6e},{c_targ[k]:.6e},{se[k]:.3e}" for k in range(len(lags))]
        io.atomic_write_text(stage / "autocorrelation.csv", "\n".join(rows) + "\n")
        _save_common(stage, cfg, exp)
        plot_autocorrelation(stage)
    return staged(out, work, family="rlc_autocorrelation", backend=prep.cfg.simulation.backend)[1]


# ---------------------------------------------------------------- the experiments by name


EXPERIMENTS.register("rlc_sampling", Experiment(run_sampling, plot_sampling, key_numbers.key_numbers_sampling))
EXPERIMENTS.register("rlc_inversion", Experiment(run_inversion, plot_inversion, key_numbers.key_numbers_inversion))
EXPERIMENTS.register("rlc_autocorrelation", Experiment(run_autocorrelation, plot_autocorrelation,
                                                      key_numbers.key_numbers_autocorrelation))
