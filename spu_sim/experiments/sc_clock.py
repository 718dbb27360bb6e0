"""Experiment ``sc_clock``: the switched-capacitor SPU against its clock rate and bank resolution.

    spu-sim experiment sc_clock configs/sc_clock.yaml --out runs/sc_clock

The config is an opamp_sc run config plus an ``experiment:`` section (``ScClockExperiment``). For every
f_clk tau of the sweep (at the config's bits) and every bank resolution (at the config's f_clk tau) the
exact theory (spu_sim.topologies.opamp_sc.discrete; no simulation) gives

    quantization     mean / covariance error of the continuous OU of the realised (bank-code) matrix
    discretization   covariance error of the clocked process vs the continuous OU of the same matrix,
                     with its first-order prediction h ||S1|| / ||S0|| (discrete.euler_first_order_cov)
    total            the clocked process (injected + kT/C noise) vs the target OU
    kT/C floor       ||S_kTC|| / ||kappa A^-1||, the covariance kT/C alone leaves (kappa_kTC: its noise level)
    energy           per clock sum C <V^2> (stationary law), and per tau = E_clk f_clk_tau

and the points listed in ``ngspice_f_clk_tau`` / ``ngspice_bits`` are also simulated on the config's
``simulation.backend`` (ngspice-shared by default; ``linear`` steps the clock phases exactly): measured covariance
error vs the target and vs the clocked process, with the rms sampling error expected. Every file names that engine
(``engine`` in sc_clock.npz and summary.json; the plots' labels).
Files: sc_clock.npz, sc_clock.csv, summary.json, config.yaml; plots read only those files.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import yaml
from pydantic import Field

from .. import ideal, io
from ..compare import compute_metrics
from ..config import Strict, save_config
from ..run_config import load_run_config
from ..errors import ConfigError
from ..pipeline import prepare, simulate, staged
from ..plotting import pyplot, save_png
from ..topologies.opamp_sc import discrete, metrics
from ..topologies.opamp_sc.config import OpampScCircuitConfig
from . import key_numbers
from .base import EXPERIMENTS, Experiment, as_setting, read_experiment

SUMMARY_NAME = "summary.json"


class ScClockExperiment(Strict):
    """f_clk_tau / bits: the sweeps (theory at every point); ngspice_f_clk_tau / ngspice_bits: the points
    also simulated on simulation.backend (each a full transient of the config's length; the names are kept from
    when ngspice was the only engine)."""

    f_clk_tau: list[float] = Field(default=[3.0, 4.0, 6.0, 10.0, 20.0, 40.0, 80.0, 160.0], min_length=2)
    bits: list[int] = Field(default=[2, 3, 4, 5, 6, 8, 10, 12], min_length=2)
    ngspice_f_clk_tau: list[float] = [4.0, 10.0]
    ngspice_bits: list[int] = [3, 6]


def _load(config_path: str | Path):
    data, base_dir, exp = read_experiment(config_path, ScClockExperiment)
    cfg = load_run_config(data, base_dir)
    if not isinstance(cfg.circuit, OpampScCircuitConfig):
        raise ConfigError(f"circuit.topology: {cfg.circuit.topology!r} is not supported by this experiment; use opamp_sc")
    return cfg, exp


def _variant(cfg, **sc):
    data = cfg.to_dict()
    data["circuit"]["sc"].update(sc)
    return load_run_config(data, cfg.base_dir)


def _rel(a, ref) -> float:
    return float(np.linalg.norm(a) / np.linalg.norm(ref))


def theory_point(cfg) -> dict[str, float]:
    """Every theory number of one design (module doc)."""
    ds = prepare(cfg).design
    out = metrics.error_split(ds)
    tgt = ds.target_sde()
    S_t = ideal.stationary_cov(tgt)
    p = ds.process()
    S_e, m_e = discrete.stationary_cov(p), discrete.stationary_mean(p)
    out["total_cov_rel_err"] = _rel(S_e - S_t, S_t)
    out["total_mean_rel_err"] = _rel(m_e - ideal.stationary_mean(tgt), ideal.stationary_mean(tgt))
    S_k = discrete.stationary_cov(ds.process(injected=False, ktc=True))
    out["ktc_floor_cov_rel"] = _rel(S_k, S_t)
    A = ds.A_realized
    S1 = discrete.euler_first_order_cov(A, np.where(A > 0, A, 0.0), ds.kappa_realized)
    S0 = ideal.stationary_cov(ideal.ou_sde(A, ds.b_realized, ds.kappa_realized))
    out["discretization_first_order"] = float(ds.h * np.linalg.norm(S1) / np.linalg.norm(S0))
    e = metrics.energy_per_clock_j(ds, (m_e ** 2 + np.diag(S_e)) / ds.s_x ** 2)
    out["energy_per_clock_j"] = e
    out["energy_per_tau_j"] = e * ds.sc.f_clk_tau
    return out


def simulated_point(cfg) -> dict[str, float]:
    """One simulated point (no files: only its metrics are kept)."""
    prep = prepare(cfg)
    t0 = time.perf_counter()
    res = simulate(prep)
    m = compute_metrics(prep, res.arrays)
    return {"measured_cov_rel_err": m.get("cov_rel_err", np.nan),
            "measured_cov_rel_err_vs_clocked": m.get("sc_sampling_cov_rel_err", np.nan),
            "expected_sampling_cov_rel_err": m.get("sc_sampling_cov_rel_err_expected", np.nan),
            "measured_mean_rel_err": m.get("mean_rel_err", np.nan), "wall_s": time.perf_counter() - t0}


def run_sc_clock(config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Theory at every point of both sweeps, the listed points simulated; every variant is designed (and its
    limits checked) before the first point runs, and the files and plots are published together."""
    from tqdm import tqdm  # noqa: PLC0415 - optional heavy dependency
    cfg, exp = _load(config_path)
    sweeps = [("f_clk_tau", v) for v in exp.f_clk_tau] + [("bits", v) for v in exp.bits]
    points = [("f_clk_tau", v) for v in exp.ngspice_f_clk_tau] + [("bits", v) for v in exp.ngspice_bits]
    preps = {}
    for key, axis, values in (("", "f_clk_tau", exp.f_clk_tau), ("", "bits", exp.bits),
                              ("ngspice_", "f_clk_tau", exp.ngspice_f_clk_tau), ("ngspice_", "bits", exp.ngspice_bits)):
        for i, v in enumerate(values):
            if (axis, v) not in preps:
                with as_setting(f"experiment.{key}{axis}[{i}]", v):   # a bad value is named by its place
                    preps[axis, v] = prepare(_variant(cfg, **{axis: v}))
    out = io.check_out_dir(Path(out_dir))
    engine = cfg.simulation.backend

    def work(stage: Path) -> None:
        rows: list[dict] = []
        for axis, v in tqdm(sweeps, desc="sc_clock theory", disable=None, leave=False):
            rows.append({"axis": axis, "value": float(v), "simulated": False, **theory_point(preps[axis, v])})
        for axis, v in tqdm(points, desc=f"sc_clock {engine}", disable=None, leave=False):
            p = preps[axis, v]
            rows.append({"axis": axis, "value": float(v), "simulated": True, **theory_point(p), **simulated_point(p)})
        keys = sorted({k for r in rows for k in r if k not in ("axis", "simulated")})
        arrays = {"axis": np.array([r["axis"] for r in rows]), "simulated": np.array([r["simulated"] for r in rows]),
                  "engine": np.array(engine)}
        arrays.update({k: np.array([float(r.get(k, np.nan)) for r in rows]) for k in keys})
        io.atomic_save_npz(stage / "sc_clock.npz", **arrays)
        with open(stage / "sc_clock.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["axis", "simulated"] + keys)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in ["axis", "simulated"] + keys})
        summary = {"engine": cfg.simulation.backend, "theory": "spu_sim.topologies.opamp_sc.discrete",
                   "f_clk_tau": cfg.circuit.sc.f_clk_tau, "bits": cfg.circuit.sc.bits, "rows": rows}
        io.atomic_write_json(stage / SUMMARY_NAME, summary)
        io.atomic_write_text(stage / "config.yaml",
                             save_config(cfg) + yaml.safe_dump({"experiment": exp.model_dump(mode="json")}))
        plot_sc_clock(stage)   # inside the stage: published with the numbers, under the folder's lock

    return staged(out, work, family="sc_clock")[1]


def plot_sc_clock(out: Path) -> list[Path]:
    """Error vs f_clk tau and vs bits with the kT/C floor; energy per clock and per tau (from sc_clock.npz)."""
    plt = pyplot()
    a = dict(np.load(Path(out) / "sc_clock.npz"))
    paths = []
    for axis, fname, xlabel in (("f_clk_tau", "error_vs_f_clk_tau.png", "f_clk tau (clock periods per tau)"),
                                ("bits", "error_vs_bits.png", "bank bits")):
        th = (a["axis"] == axis) & ~a["simulated"]
        ng = (a["axis"] == axis) & a["simulated"]
        engine = str(a["engine"])
        x = a["value"][th]
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.3))
        if axis == "bits":
            ax.set_xscale("linear")
            ax2.set_xscale("linear")
        ax.set_yscale("log")
        if axis == "f_clk_tau":
            ax.set_xscale("log")
            ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax.plot(x, a["total_cov_rel_err"][th], "k-", label="clocked process vs target (theory)")
        ax.plot(x, a["sc_discretization_cov_rel_err"][th], "b--", label="discretisation (theory)")
        if axis == "f_clk_tau":
            ax.plot(x, a["discretization_first_order"][th], "b:", label="first order h ||S1|| / ||S0||")
        ax.plot(x, np.maximum(a["sc_quantization_cov_rel_err"][th], 1e-16), "g-.", label="bank quantisation (theory)")
        ax.plot(x, a["ktc_floor_cov_rel"][th], "r-", lw=2, alpha=0.6, label="kT/C floor ||S_kTC|| / ||kappa A^-1||")
        if ng.any():
            ax.plot(a["value"][ng], a["measured_cov_rel_err"][ng], "o", color="k", label=f"{engine} vs target")
            ax.plot(a["value"][ng], a["expected_sampling_cov_rel_err"][ng], "_", ms=14, color="gray",
                    label="rms sampling error expected (window)")
            ax.plot(a["value"][ng], a["measured_cov_rel_err_vs_clocked"][ng], "s", color="tab:orange",
                      label=f"{engine} vs clocked theory")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("relative covariance error")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"covariance error vs {axis}")
        ax2.plot(x, a["energy_per_clock_j"][th], "o-", label="energy per clock sum C <V^2>")
        ax2.plot(x, a["energy_per_tau_j"][th], "s-", label="energy per tau (x f_clk tau)")
        ax2.set_xlabel(xlabel)
        ax2.set_ylabel("J")
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend(fontsize=8)
        ax2.set_title("switching energy (branches; clock drivers not included)")
        paths.append(save_png(fig, Path(out) / fname))
    return paths


EXPERIMENTS.register("sc_clock", Experiment(run_sc_clock, plot_sc_clock, key_numbers.key_numbers_sc_clock))
