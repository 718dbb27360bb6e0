"""The engine contract and registry (spu_sim.engines imports this, then the built-in engines).

Engines: a circuit description (spu_sim.circuit) -> waveforms per analysis. One file per engine.

    engine = get_engine("ngspice-shared")
    plots = engine.run(circuit, run_dir, timeout_s=None, progress=None)   # {"op": Waveforms, "tran": ...}

The protocol (``Engine``) is small: a ``name``, and ``run`` of every analysis of the circuit in a run
folder, returning ``spu_sim.engines.raw.Waveforms`` keyed as described there. The folder holds the circuit
as written by ``spu_sim.spice.write_circuit`` (the pipeline writes it once as the run's artifact; an
engine that reads files writes it itself when it is missing). Failures raise ``SimulationError``.

Engines register once, in this package, with ``register(EngineClass)``; a test or a plug-in can register
another. Nothing else compares engine names.
"""

from __future__ import annotations

import reprlib

from pathlib import Path
from typing import Callable, Protocol

from ..circuit import Circuit
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


_ENGINES: dict[str, type] = {}
_INSTANCES: dict[str, Engine] = {}


def register(cls: type) -> type:
    """Register an engine class under ``cls.name`` (usable as a decorator)."""
    _ENGINES[cls.name] = cls
    return cls


def names() -> tuple[str, ...]:
    return tuple(_ENGINES)


def get_engine(name: str) -> Engine:
    """The engine instance of that name (one per process)."""
    if name not in _ENGINES:
        from ..errors import BadInputError  # noqa: PLC0415
        raise BadInputError(f"simulation.backend: {reprlib.repr(name)} is not an engine; choose one of: {', '.join(_ENGINES)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _ENGINES[name]()
    return _INSTANCES[name]


def run_in_child(work: Callable[[Progress], object], timeout_s: float, progress: Progress | None, *,
                 what: str = "the engine", run_dir: Path | None = None, child_setup: Callable[[], None] | None = None):
    """work(progress) in a forked child (os.fork: allowed in daemonic pool workers too) that is killed at
    timeout_s: the way every engine honours ``timeout_s`` for work it cannot interrupt itself (a netlist load, an
    operating point, a BLAS call). Progress and the result (or the error) come back pickled through a pipe; the
    child exits with os._exit (no interpreter teardown with native libraries loaded)."""
    import contextlib  # noqa: PLC0415
    import os  # noqa: PLC0415
    import pickle  # noqa: PLC0415
    import select  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    from ..errors import SimulationError  # noqa: PLC0415
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
    import pickle  # noqa: PLC0415
    try:
        pickle.loads(pickle.dumps(e))
        return True
    except Exception:  # noqa: BLE001
        return False


def available() -> bool:
    """True when the ngspice executable is on PATH (the shared library is probed on first use)."""
    import shutil  # noqa: PLC0415
    return shutil.which("ngspice") is not None
