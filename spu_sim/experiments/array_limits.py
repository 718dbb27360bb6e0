"""Experiment ``array_limits``: how large can an array be before its wires and its noise spoil the solution?

    spu-sim experiment array_limits configs/array_limits.yaml --out runs/array_limits

The config is a run config (its ``circuit`` section: the element ranges and op-amp of every point) plus an
``experiment:`` section (``ArrayLimitsExperiment``). For every size N of each family, every wire resistance
r (circuit.wires.r_ohm_per_segment) and every noise level (the config key ``noise_key``, default problem.kappa)
the solution error of the time-average estimate over T = simulation.t_stop_tau is computed on the exact engine:

    bias       the DC solution of the circuit as built (the linear engine's .op, lines and all) against A^-1 b
    spread     sqrt(tr Cov[xbar_T]) of the realised process (ideal.time_average_cov of design.effective_sde())
    error      sqrt(||bias||^2 + spread^2) / ||A^-1 b||   (the rms error of the estimate: exact for a Gaussian)

Families: ``dense`` -- topology opamp, A random SPD (condition ``condition``, N x N crossbars); ``factored`` --
topology opamp_factored, A = J^T H J + damping I with J the first N columns of the factors file (the digits MLP's
GGN factor U, GGN = U^T U, H = I: scripts/digits_ggn_factors writes it) or, without a file, a Gaussian J (m x N,
entries N(0, 1/N)) and H SPD (condition 4): the same shape. A point the design refuses (a wire resistance whose
line reaches the cells' resistance: circuit.wires, spu_sim.parts.wires) is stored as NaN with its reason.
The largest N with error <= ``error_budget`` per (family, r, noise level) is the table's answer (0: none; ">= N" with
``at_grid_edge`` in summary.json when the largest size tried is within the budget: the limit lies beyond the grid).
Files: array_limits.npz, array_limits.csv, summary.json, config.yaml; plots (array_limits.png) read only those.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml
from pydantic import Field

from .. import ideal, io
from ..config import Strict, save_config
from ..errors import BadInputError, ConfigError
from ..pipeline import Prepared, prepare, prepare_problem, simulate_in, staged
from ..plotting import pyplot, save_png
from ..problems.factored import FactoredProblem
from ..problems.sources import random_matrix
from ..run_config import load_run_config
from . import key_numbers
from .base import EXPERIMENTS, Experiment, read_experiment

SUMMARY_NAME = "summary.json"


class FactoredFamily(Strict):
    """factors_file: an .npz with J (m, N_max) and H (m, m) (null: Gaussian J, SPD H); n: the sizes (first n
    columns of J); m: rows of the Gaussian J (ignored with a file); damping: lambda of A = J^T H J + lambda I."""

    factors_file: str | None = None
    n: list[int] = Field(default=[64, 256, 1210], min_length=1)
    m: int = Field(default=40, ge=1)
    damping: float = Field(default=0.1, gt=0)


class ArrayLimitsExperiment(Strict):
    """n: sizes of the dense family ([] = skip it); condition: its A's condition number; r_ohm_per_segment: the wire
    resistances; noise_key: the config key of the noise axis (dotted path, e.g. problem.kappa or, where the config
    has it, circuit.opamp.en_v_per_rthz); noise_values: its values; error_budget: the relative error the answer
    keeps within; factored: the factorised family (null = skip it)."""

    n: list[int] = Field(default=[16, 32, 64, 128, 256])
    condition: float = Field(default=10.0, gt=1)
    r_ohm_per_segment: list[float] = Field(default=[0.0, 0.1, 1.0], min_length=1)
    noise_key: str = "problem.kappa"
    noise_values: list[float] = Field(default=[1e-4, 1e-3], min_length=1)
    error_budget: float = Field(default=0.01, gt=0)
    factored: FactoredFamily | None = FactoredFamily()


def _load(config_path: str | Path):
    data, base_dir, exp = read_experiment(config_path, ArrayLimitsExperiment)
    for v in exp.r_ohm_per_segment + exp.noise_values:
        if not (np.isfinite(v) and v >= 0):
            raise ConfigError(f"experiment: {v} is not a finite value >= 0 (r_ohm_per_segment, noise_values)")
    cfg = load_run_config(data, base_dir)
    return cfg, exp, base_dir


def _point_config(cfg, topology: str, r_seg: float, noise_key: str, noise: float, problem: dict | None) -> dict:
    data = cfg.to_dict()
    circuit = {k: v for k, v in data["circuit"].items() if k in ("integrator", "opamp", "tolerance", "quantization",
                                                                 "temperature")}
    circuit["topology"] = topology
    if r_seg > 0:
        circuit["wires"] = {"r_ohm_per_segment": r_seg}
    data["circuit"] = circuit
    if problem is not None:
        data["problem"] = problem
    # "tran": so the design has its noise; no transient runs (solution_error runs the .op only), so its length
    # is 1 tau here (the averaging time T of the spread is the config's simulation.t_stop_tau)
    data["simulation"] = {**data["simulation"], "backend": "linear", "analyses": ["op", "tran"], "t_stop_tau": 1.0}
    sec, _, key = noise_key.partition(".")
    node = data.setdefault(sec, {})
    *head, last = key.split(".")
    for k in head:
        node = node.setdefault(k, {})
    node[last] = noise
    return data


def solution_error(prep: Prepared, t_tau: float) -> dict[str, float]:
    """bias, spread and error (module doc) of one prepared point, on the linear engine."""
    sim = prep.cfg.simulation.model_copy(update={"analyses": ["op"]})   # the design (noise included) as prepared
    op_only = Prepared(prep.cfg.model_copy(update={"simulation": sim}), prep.problem, prep.topology, prep.design)
    with io.temp_folder("spu-sim-limits-") as tmp:     # locked: a killed run's is removed by the next run
        x_op = simulate_in(op_only, Path(tmp), None).arrays["x_op"]
    x_star = prep.problem.x_star
    norm = float(np.linalg.norm(x_star))
    sde = prep.design.effective_sde()
    d = prep.design.d
    var = float(np.trace(ideal.time_average_cov(sde, t_tau)[:d, :d])) if np.any(sde.D) else 0.0
    bias = float(np.linalg.norm(x_op - x_star))
    return {"bias_rel": bias / norm, "spread_rel": np.sqrt(max(var, 0.0)) / norm,
            "error_rel": float(np.sqrt(bias ** 2 + max(var, 0.0))) / norm}


def _factors(fam: FactoredFamily, base_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    if fam.factors_file is None:
        n = max(fam.n)
        J = np.random.default_rng(1).standard_normal((fam.m, n)) / np.sqrt(n)
        return J, random_matrix("spd", fam.m, 4.0, 0.5, 2)
    path = Path(fam.factors_file)
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise ConfigError(f"experiment.factored.factors_file: {path} does not exist; write it with "
                          "scripts/digits_ggn_factors or set it to null (Gaussian factors)")
    with np.load(path) as z:
        J, H = np.asarray(z["J"], float), np.asarray(z["H"], float)
    if max(fam.n) > J.shape[1]:
        raise ConfigError(f"experiment.factored.n: {max(fam.n)} exceeds the {J.shape[1]} columns of {path}")
    return J, H


def run_array_limits(config_path: str | Path, out_dir: str | Path) -> list[Path]:
    cfg, exp, base_dir = _load(config_path)
    out = io.check_out_dir(Path(out_dir))   # before the sweep, not after it
    t_tau = float(cfg.simulation.t_stop_tau)
    rows: list[dict] = []
    families = []
    if exp.n:
        families.append(("dense", exp.n))
    if exp.factored is not None:
        J, H = _factors(exp.factored, base_dir)
        families.append(("factored", exp.factored.n))
    total = sum(len(ns) for _, ns in families) * len(exp.r_ohm_per_segment) * len(exp.noise_values)
    k = 0
    for fam, ns in families:
        for n in ns:
            for r in exp.r_ohm_per_segment:
                for noise in exp.noise_values:
                    k += 1
                    print(f"array_limits: point {k}/{total}: {fam} N = {n}, r = {r:g} ohm, {exp.noise_key} = {noise:g}",
                          flush=True)
                    row = {"family": fam, "n": n, "r_ohm_per_segment": r, "noise": noise, "note": ""}
                    try:
                        if fam == "dense":
                            problem = {"matrix": {"random": {"kind": "spd", "d": n, "condition": exp.condition, "seed": 1}},
                                       "vector": {"random": {"kind": "normal", "seed": 2}}, "kappa": 0.0, "x0": "zero"}
                            prep = prepare(_point_config(cfg, "opamp", r, exp.noise_key, noise, problem))
                        else:
                            data = _point_config(cfg, "opamp_factored", r, exp.noise_key, noise, None)
                            kappa = noise if exp.noise_key == "problem.kappa" else 0.0
                            data["problem"] = {"factors": {"J": [[1.0]], "H": [[1.0]], "damping": 1.0}, "vector": [1.0],
                                               "kappa": kappa}
                            fp = FactoredProblem.create(J[:, :n], H, exp.factored.damping,
                                                        np.random.default_rng(3).standard_normal(n), kappa, np.zeros(n))
                            prep = prepare_problem(load_run_config(data), fp)
                        row.update(solution_error(prep, t_tau))
                    except BadInputError as e:
                        row.update(bias_rel=np.nan, spread_rel=np.nan, error_rel=np.nan, note=str(e)[:200])
                    rows.append(row)
    summary = _summary(rows, exp)

    def work(stage: Path) -> None:
        keys = ("n", "r_ohm_per_segment", "noise", "bias_rel", "spread_rel", "error_rel")
        io.atomic_save_npz(stage / "array_limits.npz", family=np.array([r["family"] for r in rows]),
                           noise_key=np.array(exp.noise_key), error_budget=np.array(exp.error_budget),
                           **{key: np.array([r[key] for r in rows], dtype=float) for key in keys})
        with open(stage / "array_limits.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["family", *keys, "note"])
            w.writeheader()
            w.writerows(rows)
        io.atomic_write_json(stage / SUMMARY_NAME, summary)
        io.atomic_write_text(stage / "config.yaml", save_config(cfg) + yaml.safe_dump({"experiment": exp.model_dump(mode="json")}))
        plot_array_limits(stage)

    return staged(out, work, family="array_limits")[1]

def _summary(rows: list[dict], exp: ArrayLimitsExperiment) -> dict:
    """The largest N within the budget per (family, r, noise): {"largest_n": [{family, r, noise, n_max}], ...}."""
    out = []
    for fam in dict.fromkeys(r["family"] for r in rows):
        for r_seg in exp.r_ohm_per_segment:
            for noise in exp.noise_values:
                pts = [r for r in rows if r["family"] == fam and r["r_ohm_per_segment"] == r_seg and r["noise"] == noise]
                ok = [p["n"] for p in pts if np.isfinite(p["error_rel"]) and p["error_rel"] <= exp.error_budget]
                tried = [p["n"] for p in pts]
                out.append({"family": fam, "r_ohm_per_segment": r_seg, "noise": noise, "n_max": max(ok) if ok else 0,
                            "n_tried": tried, "at_grid_edge": bool(ok) and max(ok) == max(tried)})
    return {"engine": "linear", "error_budget": exp.error_budget, "noise_key": exp.noise_key, "largest_n": out}


def plot_array_limits(out: Path) -> list[Path]:
    """array_limits.png from array_limits.npz: error against N per family, one colour per wire resistance, one
    line style per noise level, the budget dashed."""
    with np.load(out / "array_limits.npz") as z:
        a = {k: z[k] for k in z.files}
    fams = list(dict.fromkeys(a["family"].tolist()))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(fams), figsize=(5.5 * len(fams), 4), squeeze=False)
    rs, noises = np.unique(a["r_ohm_per_segment"]), np.unique(a["noise"])
    styles = ["-", "--", ":", "-."]
    for ax, fam in zip(axes[0], fams):
        for ci, r in enumerate(rs):
            for si, q in enumerate(noises):
                sel = (a["family"] == fam) & (a["r_ohm_per_segment"] == r) & (a["noise"] == q)
                order = np.argsort(a["n"][sel])
                ax.plot(a["n"][sel][order], a["error_rel"][sel][order], styles[si % 4], marker="o", color=f"C{ci}",
                        label=f"r = {r:g} ohm, {str(a['noise_key'])} = {q:g}")
        ax.axhline(float(a["error_budget"]), color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("solution error (relative, rms)")
        ax.set_title(f"{fam} family (linear engine)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return [save_png(fig, out / "array_limits.png")]


EXPERIMENTS.register("array_limits", Experiment(run_array_limits, plot_array_limits, key_numbers.key_numbers_array_limits))
