"""Sweeps and Monte Carlo: many runs of one config, in parallel, resumable, failures recorded.

    summary_csv = run_sweep("configs/sweep_mismatch_mc.yaml", "runs/mc")      # spu-sim sweep CONFIG --out DIR

The steps, in order (each in its module of spu_sim.runs): ``spec.load_sweep`` (validate the sweep section
and every run's config up front) -> ``spec.plan_runs`` (one RunSpec per run, id = hash of its resolved
config) -> ``execute.execute`` (runs without a valid stored record go to the scheduler: local worker
processes or a Dask cluster; each finished run is written to DIR/runs/<run_id>.json at once) ->
``summary.write_summary`` (summary.csv, mitigation.csv, summary.json rebuilt from the run files) ->
``spu_sim.sweep_plots.plot_sweep`` (PNGs from the CSV files only).

From the shell: ``spu-sim sweep CONFIG --out DIR`` (spu_sim.cli; ``python -m spu_sim.cli sweep ...``).
"""

from __future__ import annotations

from pathlib import Path

from . import io
from .runs.execute import execute
from .runs.records import PLAN_NAME, RUNS_DIR, locked, write_plan
from .runs.scheduler import check_scheduler, check_workers
from .runs.spec import load_sweep
from .runs.summary import MITIGATION_NAME, SUMMARY_JSON, SUMMARY_NAME, write_summary
from .sweep_plots import plot_sweep

SWEEP_NAMES = (PLAN_NAME, RUNS_DIR, SUMMARY_NAME, MITIGATION_NAME, SUMMARY_JSON)


def run_sweep(config_path: str | Path, out_dir: str | Path, *, scheduler: str | None = None,
              workers: int | None = None, progress: bool = True, plots: bool = True) -> Path:
    """load -> plan -> execute the missing runs -> summary.csv (+ plots); returns the summary.csv path.

    Bad input (sweep section, grid keys or values, base config, a worker count that is not a positive
    integer, an out folder that is a file or in use by another run) raises a BadInputError before any run; failed runs are rows with status ``failed``, never
    exceptions. Re-running skips the runs with a valid stored record and redoes the others.
    """
    if workers is not None:
        check_workers(workers, name="--workers")
    sweep = load_sweep(config_path)
    if scheduler is not None:  # a scheduler that does not answer, is not Dask or has no worker: refused, nothing written
        check_scheduler(scheduler)
    with locked(Path(out_dir)) as out:  # a second sweep into DIR is refused while this one runs
        # the folder becomes this sweep's: files of an earlier run of another kind (compare, train) go; a
        # sweep's own records stay (resume)
        io.claim(out, "sweep", SWEEP_NAMES)
        (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
        write_plan(out, sweep, config_path)
        try:
            execute(sweep, out, scheduler=scheduler, workers=workers, progress=progress)
        finally:
            summary = write_summary(sweep, out)
        pngs = plot_sweep(out) if plots else []
        io.claim(out, "sweep", set(SWEEP_NAMES) | {Path(p).name for p in pngs})
    return summary

