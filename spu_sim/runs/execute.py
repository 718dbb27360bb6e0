"""Execute a planned sweep: the runs without a valid stored record go through the scheduler, and each
finished run is stored at once (DIR/runs/<run_id>.json), so a killed sweep loses only the runs in flight.

``run_one`` is what a worker process does for one run: config -> prepare -> simulate -> metrics; it never
raises for a failure of the run (the record says ``failed`` and why).
"""

from __future__ import annotations

import copy
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import ideal
from ..compare import compute_metrics
from ..run_config import load_run_config
from ..pipeline import prepare, simulate
from . import records
from .scheduler import error_line, run_tasks
from .spec import RunSpec, Sweep

MAX_D_STORED_COV = 64


def compute_run_metrics(prep: Any, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """The scalar metrics of one run (spu_sim.compare.compute_metrics, booleans and strings dropped)."""
    return {k: float(v) for k, v in compute_metrics(prep, arrays).items()
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))}


@dataclass(frozen=True)
class RunTask:
    """What a worker gets for one run: the planned run and, on Dask, a soft limit that caps
    simulation.timeout_s (so ngspice stops itself with a clear error before the scheduler's kill)."""

    run: RunSpec
    soft_timeout_s: float | None = None


@dataclass
class ExecuteCounts:
    """What ``execute`` did: runs ok and failed now, runs skipped (a valid stored record kept) and the ids of
    the runs redone because their stored record was invalid."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    invalid: list[str] = field(default_factory=list)


def run_one(task: RunTask) -> dict[str, Any]:
    """Simulate one run (in the calling process) and return its record; never raises for run failures.

    The record (DIR/runs/<run_id>.json, schema records.RunRecord) holds status ``ok``/``failed``, the error
    line, run_time_s, scalar metrics and the small estimate arrays the mitigation step averages (x_mean, x_op,
    x_cov for d <= 64, and the targets).
    """
    t0 = time.perf_counter()
    run = task.run
    record: dict[str, Any] = {"run_id": run.run_id, "index": run.index, "params": run.params, "draw": run.draw}
    record.update(seed=run.config.get("simulation", {}).get("seed"), host=os.uname().nodename, pid=os.getpid())
    try:
        cfg = load_run_config(copy.deepcopy(run.config), run.base_dir)
        timeout_s = task.soft_timeout_s
        if timeout_s and (cfg.simulation.timeout_s is None or cfg.simulation.timeout_s > timeout_s):
            cfg.simulation.timeout_s = timeout_s  # soft limit inside ngspice; the hard one kills the worker
        prep = prepare(cfg)
        result = simulate(prep)
        arrays = result.arrays
        record["metrics"] = compute_run_metrics(prep, arrays)
        d = prep.design.d
        est: dict[str, Any] = {"x_mean": arrays["x_mean"], "x_op": arrays["x_op"], "x_star": arrays["x_star"]}
        if d <= MAX_D_STORED_COV and prep.problem.kappa > 0:
            est["x_cov"] = arrays["x_cov"]
            est["cov_target"] = ideal.stationary_cov(ideal.ou_sde(prep.problem.A, prep.problem.b, prep.problem.kappa))
        record["estimates"] = {k: np.where(np.isfinite(v), v, np.nan).tolist() for k, v in est.items()}
        record["engine_s"] = float(result.timings_s.engine_s)
        record.update(status="ok", error="")
    except Exception as e:  # noqa: BLE001 - every failure becomes a recorded row
        record.update(status="failed", error=error_line(e), metrics={}, traceback=traceback.format_exc()[-4000:])
    record["run_time_s"] = time.perf_counter() - t0
    return record


def runs_to_do(sweep: Sweep, out: Path, *, report: bool = True) -> tuple[list[RunSpec], list[str]]:
    """The runs without a valid stored record (and the failed ones with retry_failed), and the ids of the
    runs whose stored record was invalid (each reported on stderr: they are redone)."""
    todo, invalid = [], []
    for run in sweep.runs:
        rec, why = records.read_record(out, run)
        if why is not None:
            invalid.append(run.run_id)
            if report:
                print(f"run {run.run_id}: stored record invalid ({why}); redoing it", file=sys.stderr)
        if rec is None or (sweep.spec.retry_failed and rec.get("status") != "ok"):
            todo.append(run)
    return todo, invalid


def execute(sweep: Sweep, out: Path, *, scheduler: str | None = None, workers: int | None = None,
            progress: bool = True) -> ExecuteCounts:
    """Run every run that has no valid stored record yet; store each record as it finishes; returns the counts."""
    todo, invalid = runs_to_do(sweep, out)
    by_id = {r.run_id: r for r in todo}
    timeout_s = sweep.spec.timeout_s
    counts = ExecuteCounts(skipped=len(sweep.runs) - len(todo), invalid=invalid)
    submitted = time.monotonic()

    def on_done(run_id: str, ok: bool, value: Any) -> bool:
        run = by_id[run_id]
        if ok and isinstance(value, dict):
            record = value
        else:  # the worker died, timed out, or the task could not even start
            record = records.failure_record(run, str(value), time.monotonic() - submitted)
        records.write_record(out, run, record)
        if record["status"] == "ok":
            counts.ok += 1
        else:
            counts.failed += 1
        return record["status"] == "ok"

    tasks = [(r.run_id, RunTask(r, timeout_s if scheduler else None)) for r in todo]
    if tasks:
        run_tasks(run_one, tasks, workers=workers if workers is not None else sweep.spec.workers,
                  scheduler=scheduler, timeout_s=timeout_s, on_done=on_done,
                  progress="sweep" if progress else None, skipped=counts.skipped,
                  max_tasks_per_worker=sweep.spec.max_runs_per_worker)
    return counts
