"""Cross-check: one circuit through ngspice (the sign-off reference) and the exact linear engine, on the same noise.

    metrics = run_crosscheck("configs/opamp_d8.yaml", "runs/xc")     # CLI: spu-sim crosscheck CONFIG --out DIR

The config's circuit is built once (spu_sim.pipeline.build_circuit: same elements, same seeded noise samples)
and run by ``reference`` (default: the config's simulation.backend if it is an ngspice engine, else
ngspice-shared) and by ``candidate`` (default ``linear``). Reported (crosscheck.json, crosscheck.npz):

- ``op_rel_diff``: |x_op,candidate - x_op,reference| / |x_op,reference| (when .op runs and the topology has a mean);
- the path difference in units of the stationary standard deviation of each variable (the realised process'
  Lyapunov covariance): rms and max over the run, the linear path evaluated exactly at ngspice's own time points
  (spu_sim.engines.linear.path_at, so no interpolation error enters; the readout grids are compared too) when the
  candidate is ``linear``; any other candidate (``linear-aggregated``, an ngspice engine) is compared with its own
  samples on the readout grid, so every number and label beside a candidate's name is that engine's. A
  clocked circuit (topology opamp_sc) is compared on its readout grid, the clock-period samples, which lie in
  the non-overlap gaps where every node holds its charge (mid-transfer points would measure ngspice's
  switching-time placement, not the circuit); ``path_points`` says which;
- the statistics of both (time average, covariance over the same window) and their relative differences;
- the wall time of each engine and their ratio.

crosscheck.png: the first variables' paths from both engines and their difference in sd. ngspice stays the
reference; the difference shrinks as simulation.reltol tightens (docs/linear_engine.md).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..config import save_config
from ..engines import check_finite_waveforms, get_engine
from ..engines.linear import needs_switched, path_at
from ..errors import BadInputError
from ..ideal import stationary_cov
from ..pipeline import build_circuit, check_limits, prepare, read_results, staged
from ..plotting import pyplot, save_png
from ..spice import write_circuit

XC_NPZ = "crosscheck.npz"
XC_JSON = "crosscheck.json"
XC_PNG = "crosscheck.png"
EXACT_PATH_ENGINE = "linear"    # the engine whose path spu_sim.engines.linear.path_at evaluates


@dataclass
class CrosscheckSummary:
    """crosscheck.json: the two engines and their run times, and (None when not measured: no .op mean, no
    transient) the differences of the module doc. ``summary["op_rel_diff"]`` and ``"op_rel_diff" in summary``
    read a measured field as in the JSON file."""

    reference: str
    candidate: str
    topology: str
    d: int
    reltol: float
    reference_s: float
    candidate_s: float
    speedup: float
    op_rel_diff: float | None = None
    path_points: str | None = None
    path_rms_diff_sd: float | None = None
    path_max_diff_sd: float | None = None
    grid_rms_diff_sd: float | None = None
    n_reference_points: int | None = None
    mean_rel_diff: float | None = None
    cov_rel_diff: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The measured fields in declaration order (what crosscheck.json holds)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key, None)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and getattr(self, key, None) is not None


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    den = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / den) if den > 0 else float(np.linalg.norm(a - b))


def run_crosscheck(config, out_dir: str | Path, *, reference: str | None = None,
                   candidate: str = "linear") -> CrosscheckSummary:
    """Run the config's circuit on both engines in a stage of out_dir and publish crosscheck.json, .npz, .png
    (module doc); returns the summary."""
    prep = prepare(config)
    configured = get_engine(prep.cfg.simulation.backend)
    ref_name = reference or (configured.name if configured.sign_off else "ngspice-shared")
    ref_engine, cand_engine = get_engine(ref_name), get_engine(candidate)
    if ref_engine.name == cand_engine.name:
        raise BadInputError(f"crosscheck: reference and candidate are both {ref_name}; pick two engines")
    for engine in (ref_engine, cand_engine):      # each engine's own cost of the run, before any work
        check_limits(prep, Path(out_dir), engine=engine)
    design = prep.design
    timeout = prep.cfg.simulation.timeout_s

    def work(stage: Path) -> CrosscheckSummary:
        circuit = build_circuit(prep)
        for engine in (ref_engine, cand_engine):   # a circuit either engine refuses: refused before either runs
            engine.check(circuit)
        write_circuit(circuit, stage)
        io.atomic_write_text(stage / "config.yaml", save_config(prep.cfg))
        t0 = time.perf_counter()
        plots_ref = check_finite_waveforms(ref_engine.name, ref_engine.run(circuit, stage, timeout_s=timeout))
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        plots_cand = check_finite_waveforms(cand_engine.name, cand_engine.run(circuit, stage, timeout_s=timeout))
        t_cand = time.perf_counter() - t0
        a_ref, a_cand = read_results(prep, plots_ref), read_results(prep, plots_cand)
        m = CrosscheckSummary(reference=ref_engine.name, candidate=cand_engine.name, topology=prep.topology.name,
                              d=design.d, reltol=prep.cfg.simulation.reltol, reference_s=t_ref, candidate_s=t_cand,
                              speedup=t_ref / t_cand)
        arrays: dict[str, Any] = {}
        if prep.topology.has_mean and np.all(np.isfinite(a_ref["x_op"])):
            m.op_rel_diff = _rel(a_cand["x_op"], a_ref["x_op"])
        if "tran" in plots_ref:
            sd = np.sqrt(np.clip(np.diag(stationary_cov(design.effective_sde()))[:design.d], 0, None))
            if not np.all(sd > 0):     # noise-free: the scale of the initial distance instead
                sd = np.full(design.d, max(float(np.abs(a_ref["x"]).max()), 1e-300))
            t_ng = np.real(plots_ref["tran"].axis)
            grid = (a_cand["x"] - a_ref["x"]) / sd
            if needs_switched(circuit) or cand_engine.name != EXACT_PATH_ENGINE:
                # clocked: compare the clock-period samples; a candidate other than the exact linear engine: its own
                # samples on the readout grid (path_at is the linear engine's path, not the candidate's)
                m.path_points = ("readout grid (clock-period samples)" if needs_switched(circuit)
                                 else f"readout grid ({cand_engine.name}'s own samples)")
                t_cmp, diff = np.asarray(a_ref["t"], dtype=float), grid
                x_ref, x_cand = a_ref["x"], a_cand["x"]
            else:    # the linear engine's own path, evaluated exactly at the reference's time points
                m.path_points = "reference time points"
                exact = path_at(circuit, t_ng, [f"v({n})" for n in circuit.readout_nodes])
                v_lin = np.column_stack([exact[f"v({n})"] for n in circuit.readout_nodes])
                v_ng = np.column_stack([np.real(plots_ref["tran"].node(n)) for n in circuit.readout_nodes])
                diff = design.to_problem_units(v_lin - v_ng) / sd
                t_cmp, x_ref, x_cand = t_ng, design.to_problem_units(v_ng), design.to_problem_units(v_lin)
            m.path_rms_diff_sd = float(np.sqrt(np.mean(diff ** 2)))
            m.path_max_diff_sd = float(np.abs(diff).max())
            m.grid_rms_diff_sd = float(np.sqrt(np.mean(grid ** 2)))
            m.n_reference_points = len(t_ng)
            m.mean_rel_diff = _rel(a_cand["x_mean"], a_ref["x_mean"])
            m.cov_rel_diff = _rel(a_cand["x_cov"], a_ref["x_cov"])
            arrays.update(t_s=t_cmp, x_reference=x_ref, x_candidate=x_cand, diff_sd=diff, sd=sd,
                          x_mean_reference=a_ref["x_mean"], x_mean_candidate=a_cand["x_mean"],
                          x_cov_reference=a_ref["x_cov"], x_cov_candidate=a_cand["x_cov"])
        io.atomic_save_npz(stage / XC_NPZ, **arrays)
        io.atomic_write_json(stage / XC_JSON, m.to_dict())
        if arrays:
            plot_crosscheck(stage / XC_NPZ, stage, m)
        return m
    return staged(out_dir, work, family="crosscheck", prep=prep)[0]


def plot_crosscheck(npz_path: Path, out_dir: Path, m: CrosscheckSummary) -> Path:
    """crosscheck.png from crosscheck.npz (reads files only)."""
    plt = pyplot()
    z = np.load(npz_path)
    t = z["t_s"] * 1e6
    k = min(3, z["x_reference"].shape[1])
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    for i in range(k):
        axes[0].plot(t, z["x_reference"][:, i], lw=1.2, label=f"x{i + 1} {m.reference}")
        axes[0].plot(t, z["x_candidate"][:, i], "k--", lw=0.7, label=f"x{i + 1} {m.candidate}" if i == 0 else None)
        axes[1].plot(t, z["diff_sd"][:, i], lw=0.8, label=f"x{i + 1}")
    axes[0].set_ylabel("x (problem units)")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set_ylabel("difference [stationary sd]")
    axes[1].set_xlabel("t [us]")
    axes[1].set_title(f"rms {m.path_rms_diff_sd:.2e} sd, max {m.path_max_diff_sd:.2e} sd "
                      f"(reltol {m.reltol:g}); {m.reference} {m.reference_s:.2f} s, {m.candidate} "
                      f"{m.candidate_s:.3f} s", fontsize=8)
    axes[1].legend(fontsize=7)
    return save_png(fig, Path(out_dir) / XC_PNG)
