"""Engines: a circuit description (spu_sim.circuit) -> waveforms per analysis. One file per engine.

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

from pathlib import Path
from typing import Callable, Protocol

from ..circuit import Circuit
from .raw import Waveforms

Progress = Callable[[float], None]


class Engine(Protocol):
    name: str
    #: True when run() honours ``progress`` (a bar is only shown for engines that feed it)
    reports_progress: bool

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
        raise BadInputError(f"simulation.backend: {name!r} is not an engine; choose one of: {', '.join(_ENGINES)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _ENGINES[name]()
    return _INSTANCES[name]


def available() -> bool:
    """True when the ngspice executable is on PATH (the shared library is probed on first use)."""
    import shutil  # noqa: PLC0415
    return shutil.which("ngspice") is not None


from . import ngspice_shared, ngspice_subprocess  # noqa: E402,F401  (registers the engines)
from . import linear  # noqa: E402,F401

__all__ = ["Engine", "Waveforms", "available", "get_engine", "names", "register"]
