"""Experiment ``posterior_scaling``: mixing time and energy of the Gaussian posterior circuit against d.

    spu-sim experiment posterior_scaling configs/posterior_scaling.yaml --out runs/posterior_scaling

The config is a posterior_gaussian run config (its problem section is the template) plus

    experiment: {d_values: [2, 4, 8, 16], rows_per_d: 2, x_scale: 1.0, epsilon: 0.1, replicates: 3, seed: 0}

For each d: X (n = rows_per_d d rows) with iid N(0, x_scale^2 / n) entries and y from the model (theta_true ~
N(0, I)), so X^T X has the Marchenko-Pastur spectrum of ratio 1 / rows_per_d whatever d is: the data keep
P = S0^-1 + X^T X / s2 well conditioned, the assumption of the paper's ln(d) claim. Two ngspice runs:

- noise-free transient from theta0 = 0: the circuit's mean trajectory m(t) (exact for a linear circuit);
  convergence time t_conv = the time after which the Mahalanobis distance sqrt((m - mu)^T P (m - mu))
  stays below epsilon (it starts near sqrt(d) and decays as exp(-lambda_min t): t_conv ~ ln(d) / lambda_min).
- the noisy transient: the 1/e mixing time and the integrated autocorrelation time from the samples'
  autocorrelation (spu_sim.posterior.stats), ~ 1 / lambda_min, independent of d.

Energy to converge: (resistive power measured from the noisy run's node voltages + quiescent power of the
op-amps, n_opamps 2 supply_v i_quiescent_a) x t_conv in seconds. Fits: a + b ln d and a + b d ln d, each by
least squares on the means over ``replicates`` data sets (and noise seeds) per d, with the log-log slope
(scaling.json: raw rows, per-d means and standard errors, fits; scaling.png).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import Field

from .. import io
from ..config import Seed, Strict, save_config
from ..run_config import load_run_config
from ..errors import ConfigError
from ..pipeline import prepare, run_engine, simulate, staged
from ..plotting import pyplot, save_png
from ..posterior import stats
from ..problems.posterior import GaussianPosteriorConfig
from ..readout import read_node_voltages
from ..spice import write_circuit
from ..topologies import CircuitRequest
from ..topologies.posterior.metrics import quiescent_power_w
from . import key_numbers
from .base import EXPERIMENTS, Experiment, read_experiment

NAME = "posterior_scaling"


class ScalingExperiment(Strict):
    d_values: list[int] = Field(default=[2, 4, 8, 16], min_length=2)
    rows_per_d: float = Field(default=2.0, ge=1.0)
    x_scale: float = Field(default=1.0, gt=0)
    epsilon: float = Field(default=0.1, gt=0)
    replicates: int = Field(default=3, ge=1, le=100)
    seed: Seed = 0


def _load(config_path: str | Path) -> tuple[dict, Path, ScalingExperiment]:
    data, base_dir, exp = read_experiment(config_path, ScalingExperiment)
    if any(d < 1 or d > 128 for d in exp.d_values):
        raise ConfigError("experiment.d_values: every d must be in 1..128")
    cfg = load_run_config(data, base_dir)          # validates the template (kind gaussian_posterior on posterior_gaussian)
    if not isinstance(cfg.problem, GaussianPosteriorConfig):
        raise ConfigError("problem.kind: posterior_scaling needs a gaussian_posterior template")
    return data, base_dir, exp


def config_for_d(data: dict, exp: ScalingExperiment, d: int, replicate: int = 0) -> dict:
    n = max(int(round(exp.rows_per_d * d)), 1)
    s = exp.seed + 7919 * replicate
    out = copy.deepcopy(data)
    out["problem"].update(X={"random": {"n": n, "d": d, "scale": exp.x_scale / np.sqrt(n), "seed": s + d}},
                          y={"random": {"theta_scale": 1.0, "seed": s + 1000 + d}}, theta0="zero")
    out.setdefault("simulation", {})
    out["simulation"]["seed"] = int(out["simulation"].get("seed", 0)) + replicate
    return out


def convergence_time(t_tau: np.ndarray, m: np.ndarray, mu: np.ndarray, P: np.ndarray, eps: float) -> tuple[float, float]:
    """(time after which the Mahalanobis distance of m(t) to mu stays below eps, the distance at t = 0)."""
    r = m - mu
    dist = np.sqrt(np.einsum("ti,ij,tj->t", r, P, r))
    bad = np.flatnonzero(dist >= eps)
    if bad.size and bad[-1] == len(t_tau) - 1:
        return float("nan"), float(dist[0])
    if bad.size == 0:
        return 0.0, float(dist[0])
    k = bad[-1]
    a, b = dist[k], dist[k + 1]
    return float(t_tau[k] + (a - eps) / (a - b) * (t_tau[k + 1] - t_tau[k])), float(dist[0])


def measure(cfg_dict: dict, exp: ScalingExperiment, base_dir: Path) -> dict[str, Any]:
    """Both runs for one d (module doc)."""
    cfg = load_run_config(cfg_dict, base_dir)
    prep = prepare(cfg)
    design, prob = prep.design, prep.problem
    tau = design.tau_s
    lam = np.linalg.eigvalsh(0.5 * (design.A_realized + design.A_realized.T))
    res = simulate(prep)
    keep = res["t"] >= float(res["burn_in_s"])
    theta = res["x"][keep]
    dt_tau = float(res["t"][1] - res["t"][0]) / tau
    st = stats.summary(theta, dt_tau)
    # noise-free transient from theta0 (long enough for the slowest mode to decay below epsilon)
    d0 = float(np.sqrt((prob.x0 - prob.x_star) @ prob.A @ (prob.x0 - prob.x_star)))
    t_stop_tau = 2.0 * max(np.log(max(d0, 1.0) / exp.epsilon), 1.0) / lam[0]
    req = CircuitRequest(analyses=("tran",), t_stop_s=t_stop_tau * tau, step_s=t_stop_tau * tau / 4000,
                         reltol=cfg.simulation.reltol, noise_u=None)
    circuit = prep.topology.build_circuit(design, req)
    with io.temp_folder() as tmp:
        write_circuit(circuit, Path(tmp))
        plots, wall = run_engine(prep, circuit, Path(tmp))
    grid = np.linspace(0.0, t_stop_tau * tau, 4001)
    grid = grid[grid <= plots["tran"].axis[-1]]
    m = design.to_problem_units(read_node_voltages(plots["tran"], design.readout_nodes, grid))
    t_conv, dist0 = convergence_time(grid / tau, m, prob.posterior_mean, prob.A, exp.epsilon)
    p_r = float(res["power_resistive_mean_w"])
    p_q = quiescent_power_w(design)
    return {"d": design.d, "n": design.n, "engine": cfg.simulation.backend, "tau_s": tau,
            "lambda_min": float(lam[0]), "lambda_max": float(lam[-1]), "initial_distance": dist0,
            "t_conv_tau": t_conv, "t_conv_theory_tau": float(np.log(dist0 / exp.epsilon) / lam[0]),
            "mixing_time_tau": st["mixing_time_tau"], "tau_int_max_tau": float(np.max(st["tau_int_tau"])),
            "ess": st["ess"], "n_opamps": design.n_opamps, "n_resistors": design.describe()["n_resistors"],
            "power_resistive_w": p_r, "power_quiescent_w": p_q,
            "energy_conv_j": (p_r + p_q) * t_conv * tau, "energy_mixing_j": (p_r + p_q) * st["mixing_time_tau"] * tau,
            "engine_s": float(res.timings_s.engine_s) + wall}


def fit(d: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    """Least-squares a + b f(d) for f = ln d and f = d ln d: coefficients and the rms relative residual."""
    out = {}
    ok = np.isfinite(y)
    for name, f in (("ln_d", np.log), ("d_ln_d", lambda x: x * np.log(x))):
        F = np.column_stack([np.ones(ok.sum()), f(d[ok].astype(float))])
        coef, *_ = np.linalg.lstsq(F, y[ok], rcond=None)
        resid = y[ok] - F @ coef
        out[name] = {"a": float(coef[0]), "b": float(coef[1]),
                     "rms_rel_residual": float(np.sqrt(np.mean((resid / y[ok]) ** 2)))}
    pos = ok & (y > 0)
    out["loglog_slope"] = float(np.polyfit(np.log(d[pos]), np.log(y[pos]), 1)[0]) if pos.sum() > 1 else float("nan")
    return out


QUANTITIES = ("t_conv_tau", "mixing_time_tau", "tau_int_max_tau", "energy_conv_j", "energy_mixing_j")


def run(config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Every run's config is validated and designed (limits checked) and --out checked before the first run;
    scaling.json, config.yaml and scaling.png are published together."""
    from tqdm import tqdm  # noqa: PLC0415 - optional heavy dependency
    data, base_dir, exp = _load(config_path)
    jobs = [(d, r) for d in exp.d_values for r in range(exp.replicates)]
    for d, r in jobs:     # bad input of any d is refused before hours of runs of the others
        cfg = load_run_config(config_for_d(data, exp, d, r), base_dir)
        prepare(cfg)
    out = io.check_out_dir(Path(out_dir))

    def work(stage: Path) -> list[Path]:
        rows = []
        for d, r in tqdm(jobs, desc="posterior_scaling", unit="run", disable=None):
            rows.append({**measure(config_for_d(data, exp, d, r), exp, base_dir), "replicate": r})
        means = []
        for d in exp.d_values:
            sel = [r for r in rows if r["d"] == d]
            row = {"d": d, "n": sel[0]["n"], "engine": sel[0]["engine"], "replicates": len(sel)}
            for q in QUANTITIES + ("lambda_min", "initial_distance", "power_resistive_w", "power_quiescent_w", "ess"):
                v = np.array([r[q] for r in sel], dtype=float)
                row[q] = float(np.nanmean(v))
                row[q + "_sem"] = float(np.nanstd(v, ddof=1) / np.sqrt(np.isfinite(v).sum())) if len(v) > 1 else float("nan")
            means.append(row)
        dv = np.array([r["d"] for r in means])
        fits = {q: fit(dv, np.array([r[q] for r in means], dtype=float)) for q in QUANTITIES}
        io.atomic_write_json(stage / "scaling.json", {"experiment": exp.model_dump(), "rows": rows, "means": means,
                                                      "fits": fits})
        io.atomic_write_text(stage / "config.yaml", save_config(load_run_config(data, base_dir)) + yaml.safe_dump(
            {"experiment": exp.model_dump(mode="json")}))
        plot(stage)   # inside the stage: published with the numbers, under the folder's lock

    return staged(out, work, family=NAME)[1]


def plot(out_dir: str | Path) -> Path:
    """scaling.png from scaling.json: times and energies against d with both fits."""
    plt = pyplot()
    out = Path(out_dir)
    s = json.loads((out / "scaling.json").read_text())
    rows = s["means"]
    d = np.array([r["d"] for r in rows], dtype=float)
    g = np.linspace(d.min(), d.max(), 200)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = ((axes[0], ("t_conv_tau", "mixing_time_tau", "tau_int_max_tau"), "time (tau)"),
              (axes[1], ("energy_conv_j", "energy_mixing_j"), "energy (J)"))
    for ax, qs, ylabel in panels:
        for q in qs:
            y = np.array([r[q] for r in rows], dtype=float)
            e = np.array([r[q + "_sem"] for r in rows], dtype=float)
            line = ax.errorbar(d, y, yerr=np.where(np.isfinite(e), e, 0.0), fmt="o", ms=4, capsize=2,
                               label=f"{q} ({rows[0]['engine']}, mean of {rows[0]['replicates']})").lines[0]
            f = s["fits"][q]
            ax.plot(g, f["ln_d"]["a"] + f["ln_d"]["b"] * np.log(g), "-", color=line.get_color(), lw=0.9,
                    label=f"a + b ln d (rms {f['ln_d']['rms_rel_residual']:.2g})")
            ax.plot(g, f["d_ln_d"]["a"] + f["d_ln_d"]["b"] * g * np.log(g), ":", color=line.get_color(), lw=1.1,
                    label=f"a + b d ln d (rms {f['d_ln_d']['rms_rel_residual']:.2g})")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d (parameters)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=6)
    fig.suptitle("Gaussian posterior circuit: convergence / mixing time and energy against d", fontsize=9)
    return save_png(fig, out / "scaling.png")


EXPERIMENTS.register(NAME, Experiment(run, plot, key_numbers.key_numbers_scaling))
