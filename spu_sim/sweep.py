"""Sweeps and Monte Carlo: many runs of one config, in parallel, resumable, failures recorded.

    summary_csv = run_sweep("configs/sweep_mismatch_mc.yaml", "runs/mc")      # spu-sim sweep CONFIG --out DIR

A sweep config is a normal spu-sim config plus a ``sweep:`` section (``SweepSpec``):

    sweep:
      grid: {circuit.integrator.c_farad: [1.0e-9, 1.0e-8]}     # dotted keys -> values; runs = their product
      monte_carlo: {runs: 200, seed: 0, seed_key: circuit.tolerance.seed}   # draw i sets seed_key = seed + i
                                                              # (a list of keys: each set to seed + i)
      mitigation: {enabled: true, group_size: 4}              # average estimates over K perturbed draws
      threshold: 0.05                                         # yield: fraction of runs with metric <= threshold
      timeout_s: 300                                          # per run (the worker is killed after it)

The steps, in order: ``load_sweep`` (validate the sweep section and every run's config up front; a bad
grid key or value is a ConfigError naming ``sweep.grid.<key>``) -> ``plan_runs`` (one ``RunSpec`` per
run, id = hash of its resolved config) -> ``execute`` (runs not yet stored go to worker processes or a
Dask cluster; each finished run is written to DIR/runs/<run_id>.json at once) -> ``write_summary``
(summary.csv, mitigation.csv, summary.json rebuilt from the run files) -> ``plot_sweep`` (PNGs from the
CSV files only).

Worker processes are managed here (``run_in_processes``) rather than by concurrent.futures: a crash of
libngspice kills a worker, which must fail only the run it was doing. A dead or timed-out worker is
recorded as a failed run and replaced; the others keep going.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import io
from .config import format_validation_error, load_config, read_yaml
from .errors import BadInputError, ConfigError

RUNS_DIR = "runs"
SUMMARY_NAME = "summary.csv"
MITIGATION_NAME = "mitigation.csv"
SUMMARY_JSON = "summary.json"
PLAN_NAME = "plan.json"
# metrics reported first in summary.csv (others follow alphabetically)
METRIC_ORDER = ("mean_rel_err", "op_rel_err", "cov_rel_err", "mean_rel_err_vs_realized", "op_rel_err_vs_realized",
                "cov_rel_err_vs_realized", "matrix_rel_err")
# estimates averaged by the mitigation step, with the metric they feed
_ESTIMATES = {"x_mean": "mean_rel_err", "x_op": "op_rel_err", "x_cov": "cov_rel_err"}
_MAX_D_STORED_COV = 64


# ---------------------------------------------------------------- the sweep section


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MonteCarloSpec(_Strict):
    """N draws of the component tolerances: draw i sets the dotted key ``seed_key`` to ``seed + i``
    (a list of keys, e.g. [circuit.tolerance.seed, simulation.seed], sets each; then the noise record
    differs between draws too)."""

    runs: int = Field(ge=1, le=1_000_000)
    seed: int = 0
    seed_key: str | list[str] = "circuit.tolerance.seed"

    @property
    def seed_keys(self) -> list[str]:
        return [self.seed_key] if isinstance(self.seed_key, str) else list(self.seed_key)


class MitigationSpec(_Strict):
    """Error mitigation by ensembles of perturbed realisations (Aifer et al. 2024): the estimates of K
    Monte Carlo draws (consecutive draws of one grid point) are averaged. A realisation's mismatch moves
    the estimate by O(eps) in a random direction; the average over K independent draws keeps only the
    O(eps^2) bias plus an O(eps / sqrt(K)) remainder."""

    enabled: bool = False
    group_size: int = Field(default=4, ge=2)


class SweepSpec(_Strict):
    """The ``sweep:`` section.

    grid: dotted config keys -> lists of values (runs = the product). monte_carlo: draws of the
    tolerances (combined with every grid point). workers: parallel processes (default: all cores).
    timeout_s: wall time per run before its worker is killed and the run recorded as failed.
    retry_failed: re-run failed runs when the sweep is restarted (default: keep them as failed).
    max_runs_per_worker: recycle a worker process after this many runs (1 = a fresh process per run).
    metric: the summary.csv column plotted and used for the yield; threshold: yield = fraction of all
    runs with metric <= threshold (failed runs count as misses).
    """

    grid: dict[str, list[Any]] = {}
    monte_carlo: MonteCarloSpec | None = None
    mitigation: MitigationSpec = MitigationSpec()
    workers: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=600.0, gt=0)
    retry_failed: bool = False
    max_runs_per_worker: int | None = Field(default=None, ge=1)
    metric: str = "mean_rel_err"
    threshold: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "SweepSpec":
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{key}: give at least one value")
        if not self.grid and self.monte_carlo is None:
            raise ValueError("give a grid, a monte_carlo section, or both")
        if self.mitigation.enabled:
            if self.monte_carlo is None:
                raise ValueError("mitigation.enabled needs a monte_carlo section (it averages over draws)")
            if self.monte_carlo.runs < self.mitigation.group_size:
                raise ValueError(f"mitigation.group_size ({self.mitigation.group_size}) exceeds "
                                 f"monte_carlo.runs ({self.monte_carlo.runs})")
        for key in self.monte_carlo.seed_keys if self.monte_carlo is not None else []:
            if key in self.grid:
                raise ValueError(f"grid.{key}: is also a monte_carlo.seed_key; use one of them")
        return self


@dataclass(frozen=True)
class RunSpec:
    """One run of the sweep: its position, stable id, swept values and resolved config (plain data)."""

    index: int
    run_id: str
    params: dict[str, Any]
    draw: int | None
    config: dict[str, Any]
    base_dir: str


@dataclass
class Sweep:
    spec: SweepSpec
    runs: list[RunSpec]
    config_path: Path
    base: dict[str, Any] = field(default_factory=dict)

    @property
    def grid_keys(self) -> list[str]:
        return list(self.spec.grid)


# ---------------------------------------------------------------- load -> plan


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data[a][b][c] = value for key 'a.b.c', creating missing sections (validation rejects unknown ones)."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"sweep.grid.{key}: {'.'.join(parts[:i + 1])} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def _get_dotted(data: dict[str, Any], key: str, default: Any) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _absolute_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Make the file paths of the problem section absolute (load_config on a dict resolves against '.')."""
    problem = data.get("problem")
    if isinstance(problem, dict):
        for key in ("matrix", "vector"):
            if isinstance(problem.get(key), str) and not Path(problem[key]).is_absolute():
                problem[key] = str((base_dir / problem[key]).resolve())


def run_id_of(resolved: dict[str, Any]) -> str:
    """Stable 12-hex id of a resolved config (canonical JSON, sorted keys)."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _grid_error(msg: str, params: dict[str, Any]) -> ConfigError:
    """Name the swept key responsible for a config error (its path is a prefix of the error's, or vice versa)."""
    path = msg.split(":", 1)[0].strip()
    for key, value in params.items():
        if path == key or path.startswith(key + ".") or path.startswith(key + "[") or key.startswith(path + "."):
            rest = msg.split(":", 1)[1].strip() if ":" in msg else msg
            return ConfigError(f"sweep.grid.{key}: value {value!r}: {path}: {rest}")
    return ConfigError(msg)


def load_sweep(config_path: str | Path) -> Sweep:
    """Read the YAML, validate the sweep section and every run's config; no run starts on bad input."""
    data, base_dir = read_yaml(config_path)
    if "sweep" not in data:
        raise ConfigError("sweep: required section is missing (grid and/or monte_carlo)")
    try:
        spec = SweepSpec.model_validate(data.pop("sweep") or {})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, root="sweep")) from None
    _absolute_paths(data, base_dir)
    load_config(copy.deepcopy(data))  # the base config alone must be valid: its errors are not the grid's
    sweep = Sweep(spec, [], Path(config_path), data)
    sweep.runs = plan_runs(data, spec, base_dir)
    for key in spec.grid:  # the validated values (YAML 1.1 reads 1.0e5 as a string; pydantic made it a float)
        spec.grid[key] = list({json.dumps(r.params[key]): r.params[key] for r in sweep.runs}.values())
    return sweep


def _points(spec: SweepSpec) -> list[tuple[dict[str, Any], int | None]]:
    keys = list(spec.grid)
    grid = [dict(zip(keys, values)) for values in product(*(spec.grid[k] for k in keys))] or [{}]
    if spec.monte_carlo is None:
        return [(g, None) for g in grid]
    mc = spec.monte_carlo
    return [({**g, **{k: mc.seed + i for k in mc.seed_keys}}, i) for g in grid for i in range(mc.runs)]


def plan_runs(base: dict[str, Any], spec: SweepSpec, base_dir: Path) -> list[RunSpec]:
    """One RunSpec per grid point x Monte Carlo draw, each config validated through load_config."""
    runs: list[RunSpec] = []
    seen: dict[str, int] = {}
    for index, (params, draw) in enumerate(_points(spec)):
        data = copy.deepcopy(base)
        for key, value in params.items():
            set_dotted(data, key, value)
        try:
            cfg = load_config(data)
        except ConfigError as e:
            raise _grid_error(str(e), params) from None
        resolved = cfg.to_dict()
        params = {k: _get_dotted(resolved, k, v) for k, v in params.items()}  # as validated: "1e4" -> 10000.0
        rid = run_id_of(resolved)
        if rid in seen:
            raise ConfigError(f"sweep.grid: runs {seen[rid]} and {index} have the same resolved config "
                              f"({params}); remove the duplicate value")
        seen[rid] = index
        runs.append(RunSpec(index, rid, params, draw, resolved, str(base_dir)))
    return runs


# ---------------------------------------------------------------- one run (in a worker process)


def _rel(err: np.ndarray, ref: np.ndarray) -> float:
    n = float(np.linalg.norm(ref))
    return float(np.linalg.norm(err) / n) if n > 0 else float("nan")


def compute_run_metrics(prep: Any, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """The scalar metrics of one run (spu_sim.compare.compute_metrics, booleans and strings dropped)."""
    from .compare import compute_metrics  # noqa: PLC0415
    return {k: float(v) for k, v in compute_metrics(prep, arrays).items()
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))}


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Simulate one run (in the calling process) and return its record; never raises for run failures.

    task: {run_id, index, params, draw, config (resolved dict), base_dir, soft_timeout_s (optional: caps
    simulation.timeout_s; used on Dask, where no parent can kill the worker)}. The record holds
    status ``ok``/``failed``, the error line, run_time_s, scalar metrics and the small estimate arrays
    the mitigation step averages (x_mean, x_op, x_cov for d <= 64, and the targets).
    """
    from .pipeline import prepare, simulate  # noqa: PLC0415 - heavy imports in the worker
    from . import ideal  # noqa: PLC0415

    t0 = time.perf_counter()
    record: dict[str, Any] = {k: task[k] for k in ("run_id", "index", "params", "draw")}
    record.update(seed=task["config"].get("simulation", {}).get("seed"), host=os.uname().nodename, pid=os.getpid())
    try:
        cfg = load_config(copy.deepcopy(task["config"]))
        cfg._base_dir = Path(task["base_dir"])
        timeout_s = task.get("soft_timeout_s")
        if timeout_s and (cfg.simulation.timeout_s is None or cfg.simulation.timeout_s > timeout_s):
            cfg.simulation.timeout_s = timeout_s  # soft limit inside ngspice; the hard one kills the worker
        prep = prepare(cfg)
        result = simulate(prep)
        arrays = result.arrays
        record["metrics"] = compute_run_metrics(prep, arrays)
        d = prep.design.d
        est: dict[str, Any] = {"x_mean": arrays["x_mean"], "x_op": arrays["x_op"], "x_star": arrays["x_star"]}
        if d <= _MAX_D_STORED_COV and prep.problem.kappa > 0:
            est["x_cov"] = arrays["x_cov"]
            est["cov_target"] = ideal.stationary_cov(ideal.ou_sde(prep.problem.A, prep.problem.b, prep.problem.kappa))
        record["estimates"] = {k: np.where(np.isfinite(v), v, np.nan).tolist() for k, v in est.items()}
        record["ngspice_s"] = float(result.timings_s.get("ngspice_s", float("nan")))
        record.update(status="ok", error="")
    except Exception as e:  # noqa: BLE001 - every failure becomes a recorded row
        line = str(e).splitlines()[0] if str(e) else type(e).__name__
        record.update(status="failed", error=f"{type(e).__name__}: {line}"[:1000],
                      traceback=traceback.format_exc()[-4000:])
    record["run_time_s"] = time.perf_counter() - t0
    return record


# ---------------------------------------------------------------- worker processes


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (a killed sweep leaves no orphans)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes  # noqa: PLC0415
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - best effort
            pass


def _worker_main(conn: Any, fn: Callable[[Any], Any]) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        key, task = msg
        try:
            out = (True, fn(task))
        except BaseException as e:  # noqa: BLE001 - report, keep serving
            out = (False, f"{type(e).__name__}: {e}")
        conn.send((key, out))


def _death_reason(code: int | None) -> str:
    how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    return f"worker process died ({how}); a crash of the ngspice library?"


@dataclass
class _Worker:
    proc: Any
    conn: Any
    key: Any = None
    started: float = 0.0
    n_done: int = 0


def run_in_processes(fn: Callable[[Any], Any], tasks: Iterable[tuple[Any, Any]], *, workers: int,
                     timeout_s: float | None, on_done: Callable[[Any, bool, Any], None],
                     max_tasks_per_worker: int | None = None) -> None:
    """Run fn(task) for each (key, task) in worker processes; on_done(key, ok, value_or_error) in this process.

    A worker that dies (signal, os._exit, a crash inside libngspice) fails only its current task
    ("worker process died ...") and is replaced; a task running longer than timeout_s has its worker
    killed and is failed ("timed out ..."). Workers are forked (cheap: this process has the imports but
    no ngspice loaded), serve tasks until max_tasks_per_worker, and die with this process.
    """
    import multiprocessing as mp  # noqa: PLC0415
    from multiprocessing.connection import wait  # noqa: PLC0415

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pending = deque(tasks)
    pool: list[_Worker] = []

    def spawn() -> _Worker:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child, fn), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def retire(w: _Worker, kill: bool) -> None:
        if kill and w.proc.is_alive():
            w.proc.kill()
        else:
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        w.proc.join(timeout=5)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join()
        w.conn.close()
        pool.remove(w)

    try:
        while pending or any(w.key is not None for w in pool):
            # hand out work
            for w in pool:
                if w.key is None and pending:
                    w.key, task = pending.popleft()
                    w.started = time.monotonic()
                    w.conn.send((w.key, task))
            while pending and len(pool) < workers:
                w = spawn()
                pool.append(w)
                w.key, task = pending.popleft()
                w.started = time.monotonic()
                w.conn.send((w.key, task))
            busy = [w for w in pool if w.key is not None]
            wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=0.2)
            now = time.monotonic()
            for w in busy:
                key = w.key
                if w.conn.poll():
                    try:
                        got_key, (ok, value) = w.conn.recv()
                    except (EOFError, OSError):
                        got_key, ok, value = key, False, None
                    if value is None and not ok:
                        w.proc.join(timeout=5)
                        why = _death_reason(w.proc.exitcode)
                        retire(w, kill=True)
                        on_done(key, False, why)
                        continue
                    w.key = None
                    w.n_done += 1
                    on_done(got_key, ok, value)
                    if max_tasks_per_worker and w.n_done >= max_tasks_per_worker:
                        retire(w, kill=False)
                elif not w.proc.is_alive():
                    why = _death_reason(w.proc.exitcode)
                    retire(w, kill=True)
                    on_done(key, False, why)
                elif timeout_s is not None and now - w.started > timeout_s:
                    retire(w, kill=True)
                    on_done(key, False, f"timed out after {timeout_s:g} s (worker killed)")
    finally:
        for w in list(pool):
            retire(w, kill=w.key is not None)


def run_on_dask(fn: Callable[[Any], Any], tasks: Iterable[tuple[Any, Any]], *, scheduler: str,
                timeout_s: float | None, on_done: Callable[[Any, bool, Any], None]) -> None:
    """Submit fn(task) to an existing dask.distributed scheduler; on_done as results arrive.

    A worker killed by a crash is restarted by its nanny; dask retries the task on other workers and
    gives up with KilledWorker, which is recorded as the run's failure. The per-run timeout is the
    soft one inside ngspice (simulation.timeout_s), plus timeout_s on waiting for each result.
    """
    from dask.distributed import Client, as_completed  # noqa: PLC0415

    with Client(scheduler, timeout="30s") as client:
        futures = {}
        for key, task in tasks:
            fut = client.submit(fn, task, key=f"spu-sim-run-{key}-{time.time_ns()}", pure=False)
            futures[fut] = key
        for fut in as_completed(futures):
            key = futures[fut]
            try:
                on_done(key, True, fut.result(timeout=timeout_s))
            except Exception as e:  # noqa: BLE001 - KilledWorker, timeouts, ...
                on_done(key, False, f"{type(e).__name__}: {e}"[:1000])


# ---------------------------------------------------------------- execute -> summary -> plots


def _run_file(out: Path, run_id: str) -> Path:
    return out / RUNS_DIR / f"{run_id}.json"


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _todo(sweep: Sweep, out: Path) -> list[RunSpec]:
    todo = []
    for run in sweep.runs:
        rec = _read_record(_run_file(out, run.run_id))
        if rec is None or (sweep.spec.retry_failed and rec.get("status") != "ok"):
            todo.append(run)
    return todo


def _failure_record(run: RunSpec, error: str, run_time_s: float) -> dict[str, Any]:
    return {"run_id": run.run_id, "index": run.index, "params": run.params, "draw": run.draw,
            "seed": run.config.get("simulation", {}).get("seed"), "status": "failed", "error": error,
            "run_time_s": run_time_s, "metrics": {}}


def execute(sweep: Sweep, out: Path, *, scheduler: str | None = None, workers: int | None = None,
            progress: bool = True) -> dict[str, int]:
    """Run every run that has no stored record yet; store each record as it finishes."""
    from tqdm import tqdm  # noqa: PLC0415

    todo = _todo(sweep, out)
    by_id = {r.run_id: r for r in todo}
    n_workers = workers or sweep.spec.workers or os.cpu_count() or 1
    timeout_s = sweep.spec.timeout_s
    counts = {"ok": 0, "failed": 0, "skipped": len(sweep.runs) - len(todo)}
    started = {r.run_id: time.monotonic() for r in todo}
    tqdm.monitor_interval = 0  # no monitor thread in a process that forks workers
    bar = tqdm(total=len(sweep.runs), initial=counts["skipped"], desc="sweep", unit="run", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    bar.set_postfix(ok=0, failed=0)

    def on_done(run_id: str, ok: bool, value: Any) -> None:
        run = by_id[run_id]
        if ok and isinstance(value, dict):
            record = value
        else:
            record = _failure_record(run, str(value), time.monotonic() - started[run_id])
        record["config"] = run.config
        io.atomic_write_json(_run_file(out, run_id), record)
        counts["ok" if record["status"] == "ok" else "failed"] += 1
        bar.update(1)
        bar.set_postfix(ok=counts["ok"], failed=counts["failed"])

    tasks = [(r.run_id, {"run_id": r.run_id, "index": r.index, "params": r.params, "draw": r.draw,
                         "config": r.config, "base_dir": r.base_dir,
                         "soft_timeout_s": timeout_s if scheduler else None}) for r in todo]
    try:
        if not tasks:
            pass
        elif scheduler:
            run_on_dask(run_one, tasks, scheduler=scheduler, timeout_s=timeout_s + 60, on_done=on_done)
        else:
            run_in_processes(run_one, tasks, workers=min(n_workers, len(tasks)), timeout_s=timeout_s,
                             on_done=on_done, max_tasks_per_worker=sweep.spec.max_runs_per_worker)
    finally:
        bar.close()
    return counts


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else str(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return "" if v is None else v


def _write_csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    import io as _io  # noqa: PLC0415

    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _fmt(row.get(k)) for k in header})
    io.atomic_write_text(path, buf.getvalue())


def _mitigation(sweep: Sweep, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups of K consecutive draws per grid point: error of the averaged estimate vs the single draws'."""
    spec = sweep.spec
    if not spec.mitigation.enabled or spec.monte_carlo is None:
        return []
    k = spec.mitigation.group_size
    seed_keys = spec.monte_carlo.seed_keys
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        point = tuple((key, json.dumps(v)) for key, v in rec["params"].items() if key not in seed_keys)
        groups.setdefault((point, rec["draw"] // k), []).append(rec)
    rows = []
    for (point, g), members in groups.items():
        if len(members) < k:
            continue
        row: dict[str, Any] = {key: json.loads(v) for key, v in point}
        row.update(group=g, group_size=k, n_ok=sum(m["status"] == "ok" for m in members))
        ok = [m for m in members if m["status"] == "ok" and "estimates" in m]
        if len(ok) == k:
            est = ok[0]["estimates"]
            for name, metric in _ESTIMATES.items():
                if name not in est:
                    continue
                ref = np.array(est["x_star"] if name != "x_cov" else est["cov_target"], dtype=float)
                avg = np.mean([np.array(m["estimates"][name], dtype=float) for m in ok], axis=0)
                singles = [m["metrics"].get(metric, _rel(np.array(m["estimates"][name], dtype=float) - ref, ref))
                           for m in ok]
                row[f"{metric}_single_mean"] = float(np.mean(singles))
                row[f"{metric}_averaged"] = _rel(avg - ref, ref)
        rows.append(row)
    rows.sort(key=lambda r: (json.dumps([r.get(k) for k in sweep.grid_keys]), r["group"]))
    return rows


def _stats(values: list[float]) -> dict[str, float]:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v)),
            "p95": float(np.percentile(v, 95)), "max": float(v.max())}


def write_summary(sweep: Sweep, out: Path) -> Path:
    """summary.csv (one row per run of the plan, from DIR/runs/*.json), mitigation.csv, summary.json."""
    records = []
    for run in sweep.runs:
        rec = _read_record(_run_file(out, run.run_id))
        if rec is not None:
            rec["index"] = run.index
            records.append(rec)
    param_keys = sweep.grid_keys + (sweep.spec.monte_carlo.seed_keys if sweep.spec.monte_carlo else [])
    fixed = ["index", "run_id", "draw", "seed", "run_time_s", "status", "error"]
    names = {k for r in records for k in r.get("metrics", {})} - set(fixed) - set(param_keys)
    metrics = [m for m in METRIC_ORDER if m in names] + sorted(names - set(METRIC_ORDER))
    header = ["index", "run_id", *param_keys, "draw", "seed", *metrics, "run_time_s", "status", "error"]
    rows = []
    for rec in records:
        row = {**{k: v for k, v in rec.get("metrics", {}).items() if k in names},
               **{k: rec["params"].get(k) for k in param_keys}}
        row.update({k: rec.get(k) for k in ("index", "run_id", "draw", "seed", "run_time_s", "status", "error")})
        rows.append(row)
    summary = out / SUMMARY_NAME
    _write_csv(summary, header, rows)

    info: dict[str, Any] = {"config": str(sweep.config_path), "runs_planned": len(sweep.runs),
                            "runs_stored": len(records), "ok": sum(r["status"] == "ok" for r in records),
                            "failed": sum(r["status"] != "ok" for r in records), "metric": sweep.spec.metric,
                            "run_time_s": _stats([r.get("run_time_s") for r in records])}
    info["metric_stats"] = {m: _stats([r.get(m) for r in rows]) for m in metrics}
    if sweep.spec.threshold is not None and records:
        passed = sum(1 for r in rows if r["status"] == "ok" and (r.get(sweep.spec.metric) or math.inf) <= sweep.spec.threshold)
        info["threshold"] = sweep.spec.threshold
        info["yield"] = passed / len(sweep.runs)
    mit = _mitigation(sweep, records)
    if mit:
        point_keys = [k for k in sweep.grid_keys]
        err_cols = sorted({c for r in mit for c in r if c.endswith(("_averaged", "_single_mean"))})
        _write_csv(out / MITIGATION_NAME, [*point_keys, "group", "group_size", "n_ok", *err_cols], mit)
        info["mitigation"] = {"group_size": sweep.spec.mitigation.group_size,
                              **{c: _stats([r.get(c) for r in mit]) for c in err_cols}}
        col = f"{sweep.spec.metric}_averaged"
        if sweep.spec.threshold is not None and col in err_cols:
            info["mitigation"]["yield"] = sum(1 for r in mit if (r.get(col) or math.inf) <= sweep.spec.threshold) / len(mit)
    io.atomic_write_json(out / SUMMARY_JSON, info)
    return summary


def run_sweep(config_path: str, out_dir: str, *, scheduler: str | None = None, workers: int | None = None,
              progress: bool = True, plots: bool = True) -> Path:
    """load -> plan -> execute the missing runs -> summary.csv (+ plots); returns the summary.csv path.

    Bad input (sweep section, grid keys or values, base config) raises ConfigError before any run;
    failed runs are rows with status ``failed``, never exceptions. Re-running skips stored runs.
    """
    sweep = load_sweep(config_path)
    out = Path(out_dir)
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    io.atomic_write_json(out / PLAN_NAME, {"config": str(Path(config_path).resolve()),
                                           "sweep": sweep.spec.model_dump(mode="json"),
                                           "runs": [{"index": r.index, "run_id": r.run_id, "params": r.params,
                                                     "draw": r.draw} for r in sweep.runs]})
    try:
        execute(sweep, out, scheduler=scheduler, workers=workers, progress=progress)
    finally:
        summary = write_summary(sweep, out)
    if plots:
        from .sweep_plots import plot_sweep  # noqa: PLC0415
        plot_sweep(out)
    return summary


def _main(argv: list[str] | None = None) -> int:
    """python -m spu_sim.sweep CONFIG OUT [--scheduler ADDR] [--workers N] (until the CLI wires it)."""
    import argparse  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m spu_sim.sweep", description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("out")
    p.add_argument("--scheduler")
    p.add_argument("--workers", type=int)
    p.add_argument("--no-plots", action="store_true")
    a = p.parse_args(argv)
    try:
        path = run_sweep(a.config, a.out, scheduler=a.scheduler, workers=a.workers, plots=not a.no_plots)
    except BadInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
