"""The one scheduler of spu-sim: many independent runs through one function, locally or on a Dask cluster.

    outcomes = run_tasks(fn, [(key, task), ...], workers=None, timeout_s=600, progress="sweep")
    # -> [Outcome(key, ok, value, wall_s), ...] in the order of the tasks (whatever order they finished in)

Every many-run job (sweeps, Monte Carlo, the experiments' bank runs) goes through ``run_tasks``:

- local (default): a ``pebble.ProcessPool`` of ``workers`` processes (None = all cores). A run longer
  than ``timeout_s`` has its worker process killed (SIGTERM, whose default action ends the process even
  inside a C library such as libngspice; SIGKILL after pebble's grace period) and is a failed outcome
  ``timed out after T s (worker killed)``. A worker that dies (segfault in libngspice, os._exit, the OOM
  killer) fails only the run it was doing (``worker process died (signal SIGSEGV) ...``) and is replaced.
  Workers die with the scheduling process (Linux PR_SET_PDEATHSIG), so a killed sweep leaves no orphans.
- Dask (``scheduler="tcp://host:port"``): each task is submitted to an existing dask.distributed
  scheduler and runs there in a child process of the Dask worker (spu_sim.runs.isolate), which is killed
  past ``timeout_s`` (``timed out after T s (task process killed)``); a crash ends that child only
  (``task process died (signal SIGSEGV) ...``), the Dask worker stays up.

``fn`` must be picklable (a module-level function) and must not need the caller's process state; its
exceptions become failed outcomes (``ExceptionName: first line``). ``on_done(key, ok, value)`` is called
in this process as each run finishes (in completion order), e.g. to store a result at once; it may return
a bool that the progress bar counts as ok / failed instead of ``ok``.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any, Callable, Hashable, NamedTuple, Sequence

from pebble import ProcessExpired, ProcessPool

from ..errors import BadInputError
from .isolate import STARTUP_S, TaskFailed, death_reason, error_line, run_isolated

# a run pebble should have stopped by now is failed by the scheduler itself: a guard against a
# future left pending by a pool bug (pebble issue 153), so a sweep can never wait forever
WATCHDOG_GRACE_S = 30.0
_POLL_S = 0.2

OnDone = Callable[[Hashable, bool, Any], "bool | None"]


class Outcome(NamedTuple):
    """One finished run: ``value`` is fn(task) when ``ok``, else the one-line reason it failed."""

    key: Hashable
    ok: bool
    value: Any
    wall_s: float


def check_workers(workers: Any, *, name: str = "workers") -> int:
    """The number of local worker processes: a positive int, or None for all cores; else BadInputError."""
    n_cores = os.cpu_count() or 1
    if workers is None:
        return n_cores
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise BadInputError(f"{name}: {workers!r} is not a number of worker processes; give a positive "
                            f"integer, or leave it out for all cores ({n_cores} here)")
    return workers


# ---------------------------------------------------------------- local worker processes (pebble)


def _init_worker() -> None:
    """In each worker: die with the parent; let SIGTERM end the process at once (also inside C code)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - best effort
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # pebble's handler would wait for the bytecode loop


def _timed_call(fn: Callable[[Any], Any], task: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = fn(task)
    return value, time.perf_counter() - t0


def _failure_of(exc: BaseException, timeout_s: float | None) -> str:
    if isinstance(exc, ProcessExpired):
        return death_reason(exc.exitcode)
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout_s:g} s (worker killed)"
    return error_line(exc)


def run_in_processes(fn: Callable[[Any], Any], tasks: Sequence[tuple[Hashable, Any]], *, workers: int | None,
                     timeout_s: float | None = None, on_done: OnDone | None = None,
                     max_tasks_per_worker: int | None = None, start_method: str = "fork") -> list[Outcome]:
    """fn(task) for each (key, task) in local worker processes; returns the outcomes in task order.

    start_method: "fork" (cheap: workers inherit this process's imports; use it when this process has
    not loaded ngspice) or "spawn" (fresh interpreters; safe in a process that already ran ngspice).
    max_tasks_per_worker: replace a worker after this many runs (1 = a fresh process per run).
    """
    n = min(check_workers(workers), max(len(tasks), 1))
    if timeout_s is not None and not timeout_s > 0:
        raise BadInputError(f"timeout_s: {timeout_s!r} must be a positive number of seconds (or None)")
    outcomes: list[Outcome | None] = [None] * len(tasks)
    if not tasks:
        return []
    method = start_method if start_method in mp.get_all_start_methods() else "spawn"
    pool = ProcessPool(max_workers=n, max_tasks=max_tasks_per_worker or 0, initializer=_init_worker,
                       context=mp.get_context(method))
    clean = False
    try:
        index = {pool.schedule(_timed_call, args=(fn, task), timeout=timeout_s): i
                 for i, (_, task) in enumerate(tasks)}
        pending = set(index)
        running_since: dict[Any, float] = {}
        abandoned = False

        def finish(fut: Any, ok: bool, value: Any, wall_s: float) -> None:
            i = index[fut]
            outcomes[i] = Outcome(tasks[i][0], ok, value, wall_s)
            if on_done is not None:
                on_done(tasks[i][0], ok, value)

        while pending:
            done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            now = time.monotonic()
            for fut in sorted(done, key=index.__getitem__):
                try:
                    value, wall_s = fut.result()
                except BaseException as e:  # noqa: BLE001 - every failure is an outcome
                    finish(fut, False, _failure_of(e, timeout_s), now - running_since.get(fut, now))
                else:
                    finish(fut, True, value, wall_s)
            for fut in pending:
                if fut.running():
                    running_since.setdefault(fut, now)
            if timeout_s is not None:
                stuck = [f for f in pending if now - running_since.get(f, now) > timeout_s + WATCHDOG_GRACE_S]
                for fut in sorted(stuck, key=index.__getitem__):
                    pending.discard(fut)
                    abandoned = True
                    finish(fut, False, f"timed out after {timeout_s:g} s (not stopped by the pool; abandoned)",
                           now - running_since[fut])
        clean = not abandoned  # joining a pool with an abandoned task would wait for it
    finally:
        if clean:
            pool.close()
        else:
            pool.stop()  # Ctrl-C or an error in on_done: kill the workers, do not wait for their runs
        pool.join()
    return outcomes  # type: ignore[return-value]


# ---------------------------------------------------------------- a Dask cluster


CONNECT_S = 30.0    # a Dask scheduler must answer within this
WORKERS_S = 60.0    # ... and have a worker within this (also: the longest a sweep waits with no worker at all)


def parse_scheduler_address(address: str) -> tuple[str, int]:
    """(host, port) of a Dask scheduler address ``[tcp://]host:port``; BadInputError naming what is wrong.

    Only plain TCP is supported: ``tls://`` needs certificates that spu-sim does not pass to Dask, and
    ``ucx://`` / ``inproc://`` are not reachable from the worker processes spu-sim starts.
    """
    text = address.strip() if isinstance(address, str) else ""
    if not text:
        raise BadInputError(f"--scheduler {address!r}: empty address; give tcp://host:port of a dask scheduler, "
                            "or leave --scheduler out to run on local worker processes")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    if scheme != "tcp":
        raise BadInputError(f"--scheduler {address}: the {scheme}:// protocol is not supported (only plain tcp; "
                            "tls needs certificates spu-sim does not pass); give tcp://host:port")
    host, colon, port_text = rest.rpartition(":")
    if not colon or not host or not port_text or "/" in rest:
        raise BadInputError(f"--scheduler {address}: no port; give tcp://host:port (a dask scheduler listens "
                            "on 8786 by default: tcp://HOST:8786)")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise BadInputError(f"--scheduler {address}: port {port_text[:20]!r} is not a port number (1 .. 65535); "
                            "give tcp://host:port")
    return host.strip("[]"), int(port_text)


def _reach(address: str, host: str, port: int, timeout_s: float) -> None:
    """Open (and close) a plain TCP connection to host:port within timeout_s; BadInputError naming why not."""

    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except socket.gaierror:
        raise BadInputError(f"--scheduler {address}: host {host[:80]!r} is unknown (no DNS entry); give the "
                            "scheduler's host name or IP address") from None
    except ConnectionRefusedError:
        raise BadInputError(f"--scheduler {address}: nothing listens on {host[:80]} port {port} (connection "
                            "refused); start a scheduler there (dask scheduler --port PORT) or fix the port") from None
    except (TimeoutError, socket.timeout):
        raise BadInputError(f"--scheduler {address}: host {host[:80]} did not answer within {timeout_s:g} s "
                            "(unreachable or firewalled); give a reachable scheduler address") from None
    except OSError as e:
        raise BadInputError(f"--scheduler {address}: cannot connect to {host[:80]} port {port} "
                            f"({type(e).__name__}: {str(e)[:120]}); give a reachable scheduler address") from None


#: a Dask scheduler greets every new connection at once with its handshake (a msgpack map naming compression,
#: python and pickle-protocol), before the client says anything: a server silent for this long is not one
GREETING_S = 10.0
_DASK_GREETING = b"pickle-protocol"


def _greeting(address: str, host: str, port: int, timeout_s: float) -> None:
    """Read the first bytes the server at host:port sends on a new connection; BadInputError unless they are a Dask
    handshake: a silent server (HTTP, most line protocols) fails within timeout_s, one that sends something else
    (an SSH banner) or closes the connection fails at once -- not after Dask's own connect timeout and retries."""
    data = b""
    deadline = time.monotonic() + timeout_s
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            while _DASK_GREETING not in data and len(data) < 4096:
                conn.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
                deadline = min(deadline, time.monotonic() + 0.5)   # the rest of a greeting follows at once
    except (TimeoutError, socket.timeout):
        if not data:
            raise BadInputError(f"--scheduler {address}: a server accepted the connection but did not answer as a "
                                f"Dask scheduler within {timeout_s:g} s (a scheduler greets at once); give the address "
                                "of a dask scheduler (dask scheduler prints it)") from None
    except OSError as e:
        raise BadInputError(f"--scheduler {address}: the server there closed the connection without answering as "
                            f"a Dask scheduler ({type(e).__name__}: {str(e)[:120]}); give the address of a dask "
                            "scheduler") from None
    if _DASK_GREETING in data:
        return
    if not data:
        raise BadInputError(f"--scheduler {address}: the server there closed the connection without answering as a "
                            "Dask scheduler; give the address of a dask scheduler")
    raise BadInputError(f"--scheduler {address}: the server there is not a Dask scheduler (it sent "
                        f"{data[:24]!r}); give the address of a dask scheduler (dask scheduler prints it)")


def _identity(address: str, timeout_s: float) -> dict[str, Any]:
    """The scheduler's identity (type, workers), asked over Dask's own protocol under a hard deadline: a
    server that accepts the connection and never answers (not Dask) fails here instead of hanging."""
    import asyncio  # noqa: PLC0415
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415
    from distributed.core import rpc  # noqa: PLC0415

    async def ask() -> dict[str, Any]:
        r = rpc(address)
        try:
            return await r.identity()
        finally:
            await r.close_rpc()

    with ThreadPoolExecutor(1) as ex:   # a fresh event loop, also when the caller runs one (a notebook)
        return ex.submit(asyncio.run, asyncio.wait_for(ask(), timeout_s)).result()


def check_scheduler(address: str, *, connect_s: float | None = None, workers_s: float | None = None) -> int:
    """Reach the Dask scheduler at ``address`` and wait until it has a worker: the number of its workers.

    BadInputError (one line naming the cause and the fix) when nothing answers within connect_s (CONNECT_S),
    when what answers is not a Dask scheduler, or when no worker joins within workers_s (WORKERS_S) -- before
    a sweep writes anything.
    """
    connect_s = CONNECT_S if connect_s is None else connect_s
    workers_s = WORKERS_S if workers_s is None else workers_s
    t0 = time.monotonic()
    host, port = parse_scheduler_address(address)
    _reach(address, host, port, connect_s)
    _greeting(address, host, port, min(connect_s, GREETING_S))
    try:
        ident = _identity(address, connect_s)
    except TimeoutError:
        raise BadInputError(f"--scheduler {address}: a server accepted the connection but did not answer as a "
                            f"Dask scheduler within {connect_s:g} s; give the address of a dask scheduler "
                            "(dask scheduler prints it)") from None
    except OSError as e:
        raise BadInputError(f"--scheduler {address}: the server there closed the connection without answering as "
                            f"a Dask scheduler ({type(e).__name__}: {str(e)[:120]}); give the address of a dask "
                            "scheduler") from None
    except Exception as e:  # noqa: BLE001 - a server speaking another protocol
        raise BadInputError(f"--scheduler {address}: the server there is not a Dask scheduler "
                            f"({type(e).__name__}); give the address of a dask scheduler") from None
    if not isinstance(ident, dict) or ident.get("type") != "Scheduler":
        raise BadInputError(f"--scheduler {address}: the server there is not a Dask scheduler; give the address "
                            "of a dask scheduler")
    while not ident.get("workers"):
        if time.monotonic() - t0 > workers_s:
            raise BadInputError(f"--scheduler {address}: the Dask scheduler has no workers after {workers_s:g} s; "
                                f"start some (dask worker {address}) or run without --scheduler")
        time.sleep(0.5)
        ident = _identity(address, connect_s)
    return len(ident["workers"])


def run_on_dask(fn: Callable[[Any], Any], tasks: Sequence[tuple[Hashable, Any]], *, scheduler: str,
                timeout_s: float | None = None, on_done: OnDone | None = None) -> list[Outcome]:
    """fn(task) for each (key, task) on an existing dask.distributed scheduler; outcomes in task order.

    Each task runs in a child process of its Dask worker (spu_sim.runs.isolate): killed past timeout_s, and
    a crash ends the child only. Should a Dask worker itself die, its nanny restarts it and Dask retries
    the task elsewhere before giving up with KilledWorker, which becomes the run's failed outcome.

    Nothing waits forever: the scheduler must answer and have a worker first (check_scheduler); each run
    has a deadline counted from its submission (its share of the queue: timeout_s + the task process's
    start-up per run ahead of it on each worker thread, + WATCHDOG_GRACE_S), past which it is cancelled and
    failed; with no worker at all for WORKERS_S the remaining runs fail. On any exit before the end (Ctrl-C,
    an error in on_done) the pending runs are cancelled and their task processes killed (isolate polls the
    state of its Dask task).
    """
    from dask.distributed import Client, wait as dask_wait  # noqa: PLC0415

    outcomes: list[Outcome | None] = [None] * len(tasks)
    if not tasks:
        return []
    check_scheduler(scheduler)
    with Client(scheduler, timeout=f"{CONNECT_S:g}s") as client:
        slots = max(sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()), 1)
        index: dict[Any, int] = {}
        deadline: dict[Any, float] = {}
        t_sub = time.monotonic()
        per_run = (timeout_s if timeout_s is not None else float("inf")) + STARTUP_S
        try:
            for i, (key, task) in enumerate(tasks):
                fut = client.submit(run_isolated, fn, task, timeout_s, key=f"spu-sim-run-{key}-{time.time_ns()}",
                                    pure=False)
                index[fut] = i
                deadline[fut] = t_sub + (i // slots + 1) * per_run + WATCHDOG_GRACE_S
            pending = set(index)
            no_worker_since: float | None = None
            next_check = 0.0

            def finish(fut: Any, ok: bool, value: Any, wall_s: float) -> None:
                i = index[fut]
                outcomes[i] = Outcome(tasks[i][0], ok, value, wall_s)
                if on_done is not None:
                    on_done(tasks[i][0], ok, value)

            while pending:
                try:
                    done = set(dask_wait(list(pending), timeout=1.0, return_when="FIRST_COMPLETED").done)
                except TimeoutError:    # nothing finished within the poll period
                    done = set()
                pending -= done
                for fut in sorted(done, key=index.__getitem__):
                    try:
                        value, wall_s = fut.result()
                    except TaskFailed as e:  # timed out, died, or raised (the reason is already one line)
                        finish(fut, False, str(e), float("nan"))
                    except Exception as e:  # noqa: BLE001 - KilledWorker, a lost connection, ...
                        finish(fut, False, error_line(e), float("nan"))
                    else:
                        finish(fut, True, value, wall_s)
                now = time.monotonic()
                late = sorted((f for f in pending if now > deadline[f]), key=index.__getitem__)
                if now >= next_check:
                    next_check = now + 2.0
                    has_workers = bool(client.scheduler_info()["workers"])
                    no_worker_since = None if has_workers else (no_worker_since or now)
                    if no_worker_since is not None and now - no_worker_since > WORKERS_S:
                        late = sorted(pending, key=index.__getitem__)
                        why = f"no Dask worker for {WORKERS_S:g} s (run not started)"
                    else:
                        why = None
                else:
                    why = None
                for fut in late:
                    pending.discard(fut)
                    fut.cancel()
                    finish(fut, False, why or f"no result {deadline[fut] - t_sub:.0f} s after submission "
                           f"(timeout_s {timeout_s} per run; cancelled)", now - t_sub)
        finally:
            left = [f for f in index if not f.done()]
            if left:   # Ctrl-C or an error: nothing keeps computing on the workers
                client.cancel(left, force=True)
    return outcomes  # type: ignore[return-value]


# ---------------------------------------------------------------- the entry point


def run_tasks(fn: Callable[[Any], Any], tasks: Sequence[tuple[Hashable, Any]], *, workers: int | None = None,
              scheduler: str | None = None, timeout_s: float | None = None, on_done: OnDone | None = None,
              progress: str | None = None, skipped: int = 0, max_tasks_per_worker: int | None = None,
              start_method: str = "fork") -> list[Outcome]:
    """Run fn over the tasks locally (``workers`` processes) or on the Dask ``scheduler``; see the module doc.

    progress: the description of a tqdm bar on stderr (None: no bar); skipped: runs already done before
    (shown as done, e.g. a resumed sweep). Returns one Outcome per task, in task order.
    """
    n_workers = check_workers(workers)
    tasks = list(tasks)
    if len({k for k, _ in tasks}) != len(tasks):
        raise ValueError("run_tasks: the task keys must be unique")
    from tqdm import tqdm  # noqa: PLC0415

    tqdm.monitor_interval = 0  # no monitor thread in a process that forks workers
    bar = tqdm(total=len(tasks) + skipped, initial=skipped, desc=progress or "runs", unit="run", file=sys.stderr,
               disable=progress is None, dynamic_ncols=True)
    counts = {"ok": 0, "failed": 0}
    bar.set_postfix(counts)

    def done(key: Hashable, ok: bool, value: Any) -> None:
        verdict = on_done(key, ok, value) if on_done is not None else None
        counts["ok" if (verdict if isinstance(verdict, bool) else ok) else "failed"] += 1
        bar.update(1)
        bar.set_postfix(counts)

    try:
        if scheduler:
            return run_on_dask(fn, tasks, scheduler=scheduler, timeout_s=timeout_s, on_done=done)
        return run_in_processes(fn, tasks, workers=n_workers, timeout_s=timeout_s, on_done=done,
                                max_tasks_per_worker=max_tasks_per_worker, start_method=start_method)
    finally:
        bar.close()
