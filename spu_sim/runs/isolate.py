"""One task in a child Python process that can be killed: what a Dask worker does with each run.

    value, wall_s = run_isolated(fn, task, timeout_s=300)     # raises TaskFailed with the reason

A Dask worker cannot have multiprocessing children (it is daemonic) and no process of the sweep can kill
a task on a remote worker, so each task runs in ``python -m spu_sim.runs.isolate`` started with
subprocess: ``timeout_s`` after it has started the run the child is killed (SIGKILL); a crash (a segfault in libngspice) ends the
child only, and the Dask worker stays up. The child sees the worker's sys.path, reads the pickled
(fn, task) from stdin and writes the pickled result to a file; it dies with the worker (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .. import io

MAX_ERROR_CHARS = 1000
STARTUP_S = 120.0
_POLL_S = 0.25


def _dask_task_released() -> Callable[[], bool]:
    """In a Dask worker's task thread: a check that is True once the scheduler has cancelled or released this
    task (the sweep was interrupted, gave up on it, or its client is gone), so its task process is killed
    instead of computing on for nobody. Outside Dask: never True."""
    try:
        from distributed import get_worker  # noqa: PLC0415
        from distributed.worker import thread_state  # noqa: PLC0415
        worker, key = get_worker(), thread_state.key
    except Exception:  # noqa: BLE001 - not in a Dask task
        return lambda: False

    def released() -> bool:
        ts = worker.state.tasks.get(key)
        return ts is None or ts.state not in ("executing", "long-running")
    return released


def error_line(exc: BaseException) -> str:
    """``ExceptionName: first line of the message`` (bounded)."""
    text = str(exc)
    line = text.splitlines()[0] if text.strip() else ""
    return (f"{type(exc).__name__}: {line}" if line else type(exc).__name__)[:MAX_ERROR_CHARS]


def death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            how = f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"signal {-exitcode}"
    else:
        how = f"exit code {exitcode}"
    return f"worker process died ({how}); a crash of the ngspice library?"


class TaskFailed(Exception):
    """The isolated task did not return: the one-line reason (timed out, died, raised)."""


def run_isolated(fn: Callable[[Any], Any], task: Any, timeout_s: float | None = None) -> tuple[Any, float]:
    """fn(task) in a child process; returns (value, wall_s) or raises TaskFailed(reason).

    timeout_s counts from the moment the child has started and unpickled the task (its imports done),
    as for a local worker, which is warm when its run starts; the start itself may take STARTUP_S.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with io.temp_folder("spu-sim-task-") as tmp:     # locked: a killed sweep's is removed by the next run
        result, log = Path(tmp) / "result.pkl", Path(tmp) / "stderr.txt"
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "spu_sim.runs.isolate", str(result)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
        try:
            proc.stdin.write(pickle.dumps((fn, task)))
            proc.stdin.close()
            ready, _, _ = select.select([proc.stdout], [], [], STARTUP_S)
            if not ready or proc.stdout.readline() != b"ready\n":
                proc.kill()
                proc.wait()
                if not ready:
                    raise TaskFailed(f"the task process did not start within {STARTUP_S:g} s")
            t0 = time.perf_counter()
            released = _dask_task_released()
            wall_s = None
            while True:
                try:
                    proc.wait(timeout=_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    if result.is_file():   # done (written atomically); its interpreter teardown is not waited for
                        wall_s = time.perf_counter() - t0
                        break
                    if timeout_s is not None and time.perf_counter() - t0 > timeout_s:
                        raise TaskFailed(f"timed out after {timeout_s:g} s (task process killed)") from None
                    if released():
                        raise TaskFailed("cancelled: the sweep stopped waiting for it (task process killed)") from None
            wall_s = time.perf_counter() - t0 if wall_s is None else wall_s
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if not result.is_file():
            last = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
            if proc.returncode > 0 and last:  # a Python error before or after the task (e.g. an import)
                raise TaskFailed(f"task process exited with code {proc.returncode}: {last[0][:300]}")
            raise TaskFailed(death_reason(proc.returncode).replace("worker", "task"))
        ok, value = pickle.loads(result.read_bytes())
    if not ok:
        raise TaskFailed(value)
    return value, wall_s


def _main(result_path: str) -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - best effort
            pass
    fn, task = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(b"ready\n")
    sys.stdout.flush()
    os.dup2(2, 1)  # whatever the task prints goes to the log, not into the pipe nobody reads any more
    try:
        out = (True, fn(task))
    except Exception as e:  # noqa: BLE001 - the reason goes back to the worker
        out = (False, error_line(e))
    tmp = result_path + ".tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(out, fh)
    os.replace(tmp, result_path)


if __name__ == "__main__":
    _main(sys.argv[1])
