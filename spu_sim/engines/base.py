"""The engine contract and registry (spu_sim.engines imports this, then the built-in engines).

Engines: a circuit description (spu_sim.circuit) -> waveforms per analysis. One file per engine.

    engine = get_engine("ngspice-shared")        # the one instance per process of ENGINES.get("ngspice-shared")
    plots = engine.run(circuit, run_dir, timeout_s=None, progress=None)   # {"op": Waveforms, "tran": ...}

The protocol (``Engine``) is small: a ``name``, and ``run`` of every analysis of the circuit in a run
folder, returning ``spu_sim.engines.raw.Waveforms`` keyed as described there. The folder holds the circuit
as written by ``spu_sim.spice.write_circuit`` (the pipeline writes it once as the run's artifact; an
engine that reads files writes it itself when it is missing). Failures raise ``SimulationError``.

Engines register once, where they are defined, with ``@ENGINES.add`` above the class (its ``name`` is the
key); a test or a plug-in can register another the same way. Nothing else compares engine names.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import signal
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..circuit import Circuit
from ..errors import ResultError, SimulationError
from ..registry import Registry
from .raw import Waveforms

Progress = Callable[[float], None]


class Engine(Protocol):
    name: str
    #: True when run() honours ``progress`` (a bar is only shown for engines that feed it)
    reports_progress: bool
    #: True for the sign-off reference (ngspice); cross-checks judge the others against it
    sign_off: bool
    #: True when run() reads the netlist and noise files from the run folder (else they are written only as
    #: artifacts of runs that keep an out folder)
    reads_files: bool

    def run(self, circuit: Circuit, run_dir: Path, *, timeout_s: float | None = None,
            progress: Progress | None = None) -> dict[str, Waveforms]: ...


def check_finite_waveforms(engine_name: str, plots: dict[str, Waveforms]) -> dict[str, Waveforms]:
    """``plots`` if every number the engine returned (axes and vectors) is finite, else ResultError naming the
    engine, the analysis and the vector: a NaN or inf waveform never becomes an estimate. Called on every engine
    run whose numbers are read (spu_sim.pipeline.run_engine, spu_sim.analyses.crosscheck)."""
    for name, w in plots.items():
        arrays = ([("axis", w.axis)] if w.axis is not None else []) + list(w.vectors.items())
        for key, a in arrays:
            a = np.asarray(a)
            if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
                bad = int(a.size - np.count_nonzero(np.isfinite(a)))
                raise ResultError(f"engine {engine_name}: {w.kind} vector {key} holds {bad} of {a.size} values that are "
                                  "not finite numbers (NaN or inf), so no estimate is made from it; the circuit's "
                                  "values or time scales leave floating-point range on this engine: check the "
                                  "config's scales or try another simulation.backend")
    return plots


#: engine classes by name (``@ENGINES.add`` above the class)
ENGINES: Registry[type] = Registry("an engine", "simulation.backend")
_INSTANCES: dict[type, Engine] = {}


def get_engine(name: str) -> Engine:
    """The one instance per process of the engine class registered under ``name`` (ConfigError naming
    simulation.backend and the choices for an unknown name)."""
    cls = ENGINES.get(name)
    if cls not in _INSTANCES:
        _INSTANCES[cls] = cls()
    return _INSTANCES[cls]


def run_in_child(work: Callable[[Progress], object], timeout_s: float, progress: Progress | None, *,
                 what: str = "the engine", run_dir: Path | None = None, child_setup: Callable[[], None] | None = None):
    """work(progress) in a forked child (os.fork: allowed in daemonic pool workers too) that is killed at
    timeout_s: the way every engine honours ``timeout_s`` for work it cannot interrupt itself (a netlist load, an
    operating point, a BLAS call). Progress and the result (or the error) come back pickled through a pipe; the
    child exits with os._exit (no interpreter teardown with native libraries loaded)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # the child
        os.close(r)
        conn = os.fdopen(w, "wb")

        def send(obj) -> None:
            pickle.dump(obj, conn, protocol=pickle.HIGHEST_PROTOCOL)
            conn.flush()
        try:
            if child_setup is not None:
                child_setup()
            send(("ok", work(lambda f: send(("progress", f)))))
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
            with contextlib.suppress(Exception):
                send(("error", e if isinstance(e, Exception) and _picklable(e) else
                      SimulationError(f"{what} failed: {type(e).__name__}: {e}")))
        finally:
            with contextlib.suppress(Exception):
                conn.close()
            os._exit(0)
    os.close(w)
    reader = os.fdopen(r, "rb")
    deadline = time.monotonic() + timeout_s
    done = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimulationError(f"{what} did not finish within {timeout_s:g} s (run stopped)", run_dir=run_dir)
            ready, _, _ = select.select([reader], [], [], min(left, 0.1))
            if not ready:
                continue
            try:
                kind, value = pickle.load(reader)
            except EOFError:
                raise SimulationError(f"{what} died without a result (crash)", run_dir=run_dir) from None
            if kind == "progress":
                if progress is not None:
                    progress(value)
                continue
            done = True
            if kind == "ok":
                return value
            raise value
    finally:
        if not done:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        reader.close()


def _picklable(e: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(e))
        return True
    except Exception:  # noqa: BLE001
        return False


def available() -> bool:
    """True when the ngspice executable is on PATH (the shared library is probed on first use)."""
    return shutil.which("ngspice") is not None
