"""The files of a sweep folder: DIR/plan.json and one record per finished run, DIR/runs/<run_id>.json.

A record is written atomically as its run finishes; on resume every stored record is read back and
checked against the run it is stored for (``read_record``): a file that is not JSON, JSON of the wrong
shape (``{}``, ``[]``), a record of another run id or with the wrong fields is invalid, and the run is
redone ("run <id>: stored record invalid (<why>); redoing it"), so every planned run is one row.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from .. import io
from ..config import format_validation_error
from ..errors import BadInputError
from .spec import RunSpec, Sweep

RUNS_DIR = "runs"
PLAN_NAME = "plan.json"
MAX_REASON_CHARS = 300


class RunRecord(BaseModel):
    """The schema of DIR/runs/<run_id>.json (further keys are kept: seed, host, pid, config, traceback, ...)."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    index: int
    params: dict[str, Any]
    draw: int | None = None
    status: Literal["ok", "failed"]
    error: str = ""
    run_time_s: float
    metrics: dict[str, float | None]
    estimates: dict[str, list[Any]] | None = None


def run_file(out: Path, run_id: str) -> Path:
    return Path(out) / RUNS_DIR / f"{run_id}.json"


def check_record(data: Any, run: RunSpec) -> str | None:
    """Why ``data`` is not a valid record of ``run`` (None when it is one)."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__.replace('dict', 'object')}, not a run record"
    if data.get("run_id") != run.run_id:
        got = data.get("run_id")
        return "no run_id" if got is None else f"it is the record of run {str(got)[:40]!r}"
    try:
        RunRecord.model_validate(data)
    except ValidationError as e:
        return format_validation_error(e, root="record")[:MAX_REASON_CHARS]
    if json.dumps(data["params"], sort_keys=True) != json.dumps(run.params, sort_keys=True):
        return "its swept values differ from the plan's"
    return None


def read_record(out: Path, run: RunSpec) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a valid stored record of run; (None, None) when there is none; (None, why) when
    the stored file is not a valid record of this run."""
    path = run_file(out, run.run_id)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"unreadable: {type(e).__name__}"
    try:
        data = json.loads(text)
    except ValueError:
        return None, "not valid JSON"
    why = check_record(data, run)
    if why is not None:
        return None, why
    data["index"] = run.index  # the plan's position (a grid that gained a value moves the runs after it)
    return data, None


def failure_record(run: RunSpec, error: str, run_time_s: float) -> dict[str, Any]:
    """The record of a run whose worker produced none (died, timed out, or the task could not be sent)."""
    return {"run_id": run.run_id, "index": run.index, "params": run.params, "draw": run.draw,
            "seed": run.config.get("simulation", {}).get("seed"), "status": "failed", "error": error,
            "run_time_s": run_time_s, "metrics": {}}


def write_record(out: Path, run: RunSpec, record: dict[str, Any]) -> None:
    """DIR/runs/<run_id>.json, atomically, with the run's resolved config."""
    io.atomic_write_json(run_file(out, run.run_id), {**record, "config": run.config})


def write_plan(out: Path, sweep: Sweep, config_path: str | Path) -> None:
    io.atomic_write_json(Path(out) / PLAN_NAME, {
        "config": str(Path(config_path).resolve()), "sweep": sweep.spec.model_dump(mode="json"),
        "runs": [{"index": r.index, "run_id": r.run_id, "params": r.params, "draw": r.draw} for r in sweep.runs]})


@contextmanager
def locked(out: Path) -> Iterator[Path]:
    """Hold the out folder's lock (spu_sim.io.LOCK_NAME, the one every spu-sim run takes) for the whole
    sweep: a second sweep, or any other run, into the same folder is refused instead of mixing in."""
    out = io.check_out_dir(Path(out))
    fd = os.open(out / io.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BadInputError(f"--out {out}: another spu-sim run is writing into this folder; wait for it to "
                                "finish or choose another --out") from None
        yield out
    finally:
        os.close(fd)  # releases the lock (the forked workers die with the sweep)
