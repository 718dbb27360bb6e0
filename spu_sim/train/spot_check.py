"""Spot checks of TNGD's SPU engines: the same steps on two backends, compared direction by direction.

    spot_check(cfg, label=None, backends=("linear", "ngspice-shared")) -> report dict

One TNGD entry of a training config (``name: tngd``; the first one unless ``label`` names another) is replayed
on the config's data, model, initial parameters and mini-batches (``spu_sim.train.loop.prepare``: the same
seeds and batches as ``spu-sim train``). The first backend drives the trajectory (theta and the warm-started
SPU state); at every step each backend gets the *same* SPU inputs (curvature factor U, damping, gradient,
previous state, delay) through ``tngd.spu_step``, so the readouts differ only by the engines. A third,
circuit-free reference is the exact OU transient of the nominal A = U^T U + lambda I in low-rank form
(``ou_transient_lowrank``, O(m^2 N), any N).

Reported per step: which circuit ran (``topology``: ``opamp_factored`` when U has m < N rows, else the dense ``opamp``),
|x_b - x_a| / |x_a| between the two backends, |x_b - x_exact| / |x_exact| for each, and the wall time per
backend. ``tolerance`` is what ngspice's transient may differ from an exact integration of the same circuit:
ngspice accepts a local truncation error up to trtol * reltol of the state per time point (trtol = 7, its
default; reltol = simulation.reltol = 1e-4, the AnalogSolver's), and the global error of these stable, noise-free
transients stays within 3 x that (measured: tests/test_opamp_factored.py), i.e. 3 * 7 * 1e-4 = 2.1e-3. The linear
engine steps the same circuit exactly (round-off only), so the linear-vs-ngspice difference is ngspice's error.

Noise-free only (kappa = 0): ngspice's noise sources cannot share the linear engine's samples through this path.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from spu_sim.config import SimulationConfig
from spu_sim.errors import ConfigError
from spu_sim.optim import tngd
from spu_sim.optim import backend as spu_backend
from spu_sim.optim.base import lr_at
from spu_sim.train import models
from spu_sim.train.config import TrainConfig, validate_config
from spu_sim.train.loop import prepare

NGSPICE_TRTOL = 7.0   # ngspice's default truncation-error factor (the project never sets .options trtol)


def engine_tolerance(reltol: float) -> float:
    """Bound on |ngspice - exact| / |exact| of one noise-free TNGD transient (module docstring): 3 trtol reltol."""
    return 3.0 * NGSPICE_TRTOL * reltol


def ou_transient_lowrank(u: np.ndarray, damping: float, b: np.ndarray, x0: np.ndarray, t_stop_tau: float) -> np.ndarray:
    """Exact noise-free OU state after t_stop_tau for A = U^T U + damping I, U (m, N), without forming A.

    With U U^T = V diag(s2) V^T and W = U^T V diag(s2)^-1/2 (orthonormal columns spanning U's row space),
    A = W diag(s2 + lambda) W^T + lambda (I - W W^T), so x* = A^-1 b and expm(-A t) act on the two parts
    separately: O(m^2 N + m^3). Directions with s2 <= 1e-13 max(s2) count as null space (their rate is lambda).
    """
    u = np.asarray(u, dtype=float)
    s2, v = np.linalg.eigh(u @ u.T)
    keep = s2 > 1e-13 * max(float(s2.max()), np.finfo(float).tiny)
    w = (u.T @ v[:, keep]) / np.sqrt(s2[keep])
    rate = s2[keep] + damping

    def split(y):
        c = w.T @ y
        return c, y - w @ c

    cb, nb = split(np.asarray(b, dtype=float))
    x_star_c, x_star_n = cb / rate, nb / damping
    c0, n0 = split(np.asarray(x0, dtype=float))
    c = x_star_c + np.exp(-rate * t_stop_tau) * (c0 - x_star_c)
    n = x_star_n + np.exp(-damping * t_stop_tau) * (n0 - x_star_n)
    return w @ c + n


def evolve_exact(a, b, x0, t_stop_tau, step, phase) -> np.ndarray:
    """A TNGD ``Evolve`` without a circuit: the exact noise-free OU transient (low-rank form for a Curvature)."""
    if isinstance(a, tngd.Curvature):
        return ou_transient_lowrank(a.factor, a.damping, b, x0, t_stop_tau)
    return tngd.ou_transient(np.asarray(a, dtype=float), b, x0, t_stop_tau)


def _entry(cfg: TrainConfig, label: str | None):
    entries = [e for e in cfg.train.optimizers if e.name == "tngd" and (label is None or e.label == label)]
    if not entries:
        what = f"an entry labelled {label!r} with name tngd" if label else "an entry with name tngd"
        raise ConfigError(f"train.optimizers: the spot check needs {what}; add one (e.g. {{name: tngd, lr: 0.1}})")
    entry = entries[0]
    if entry.hyper()["kappa"] > 0:
        raise ConfigError(f"train.optimizers[{entry.label}].kappa: the spot check compares noise-free transients; "
                          "set kappa: 0")
    return entry


def _rel(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def spot_check(config: TrainConfig | dict[str, Any], *, label: str | None = None,
               backends: tuple[str, str] = ("linear", "ngspice-shared"), progress: bool = False) -> dict[str, Any]:
    """Replay the TNGD entry's steps on ``backends`` (module docstring); returns the report (JSON-ready)."""
    cfg = validate_config(config)
    entry = _entry(cfg, label)
    hyper = entry.hyper()
    for b in backends:
        spu_backend.check(b, field="spot check backend")
    ds, model, batches, theta = prepare(cfg)
    evolves = {b: tngd.make_evolve(b, kappa=0.0, seed=hyper["seed"], circuit=hyper["circuit"],
                                   readout=hyper["readout"])[0] for b in backends}
    evolves["exact"] = evolve_exact
    kw = dict(damping=hyper["damping"], t_stop_tau=hyper["t_stop_tau"], delay_tau=hyper["delay_tau"],
              warm_start=hyper["warm_start"])
    spu = tngd.SPUState(None, None, None)
    rows = []
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415 - optional heavy dependency, only for the progress bar
        bar = tqdm(total=len(batches), file=sys.stderr, unit="step", desc=f"spot check {' vs '.join(backends)}")
    a_name, b_name = backends
    for k, idx in enumerate(batches):
        problem = models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx], cfg.model.curvature)
        out, wall, states = {}, {}, {}
        for name, evolve in evolves.items():
            t0 = time.perf_counter()
            out[name], states[name] = tngd.spu_step(problem, spu, k, evolve, **kw)
            wall[name] = time.perf_counter() - t0
        factored = tngd.Curvature(problem.factor, hyper["damping"]).factored
        rows.append({"step": k, "topology": "opamp_factored" if factored else "opamp",
                     "rows_m": int(problem.factor.shape[0]), "rel_diff": _rel(out[b_name], out[a_name]),
                     **{f"rel_err_{n}_vs_exact": _rel(out[n], out["exact"]) for n in backends},
                     **{f"wall_s_{n}": wall[n] for n in evolves}})
        spu = states[a_name]
        theta = theta - lr_at(hyper["lr"], k) * out[a_name]
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    tol = engine_tolerance(SimulationConfig.model_fields["reltol"].default)
    max_diff = max(r["rel_diff"] for r in rows)
    return {
        "label": entry.label, "backends": list(backends),
        "engines": {b: spu_backend.engine(b) or "none (exact OU transient)" for b in backends},
        "n_params": int(model.n_params), "batch_size": cfg.train.batch_size, "d_z": int(model.d_z),
        "steps": len(rows), "t_stop_tau": hyper["t_stop_tau"], "damping": hyper["damping"],
        "topologies": sorted({r["topology"] for r in rows}),
        "max_rel_diff": max_diff,
        "max_rel_err_vs_exact": {b: max(r[f"rel_err_{b}_vs_exact"] for r in rows) for b in backends},
        "tolerance": tol, "within_tolerance": bool(max_diff < tol),
        "tolerance_note": f"3 x ngspice trtol ({NGSPICE_TRTOL:g}) x reltol: ngspice's bound against an exact "
                          "integration of the same circuit",
        "per_step": rows,
    }


def format_report(rep: dict[str, Any]) -> str:
    """The report as a Markdown table plus a verdict line."""
    a, b = rep["backends"]
    head = (f"spot check '{rep['label']}': N = {rep['n_params']}, batch {rep['batch_size']} x d_z {rep['d_z']}, "
            f"t = {rep['t_stop_tau']:g} tau, lambda = {rep['damping']:g}; {a} ({rep['engines'][a]}) vs {b} "
            f"({rep['engines'][b]})\n\n| step | topology | m | |{b} - {a}| / |{a}| | {a} vs exact OU | {b} vs exact OU "
            f"| wall {a} (s) | wall {b} (s) |\n|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['step']} | {r['topology']} | {r['rows_m']} | {r['rel_diff']:.3g} | {r[f'rel_err_{a}_vs_exact']:.3g} "
             f"| {r[f'rel_err_{b}_vs_exact']:.3g} | {r[f'wall_s_{a}']:.2f} | {r[f'wall_s_{b}']:.2f} |"
             for r in rep["per_step"]]
    verdict = (f"\nmax relative difference {rep['max_rel_diff']:.3g} "
               f"{'<' if rep['within_tolerance'] else '>='} tolerance {rep['tolerance']:.3g} ({rep['tolerance_note']})\n")
    return head + "\n".join(lines) + "\n" + verdict
