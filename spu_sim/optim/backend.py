"""The SPU backend of a circuit optimiser (``backend`` of a tngd, tngd_adam or tkfac entry): ``ideal`` or an engine.

``ideal`` is the exact OU transient (no circuit, ``spu_sim.optim.tngd.ou_transient``); every other value is the
name of a registered engine (``spu_sim.engines.ENGINES``, the names of a run's ``simulation.backend``:
ngspice-shared, ngspice-subprocess, linear, ...), on which ``spu_sim.analog.AnalogSolver`` runs the op-amp circuit.
One name per engine across run configs, optimiser configs and Python: the former value ``circuit`` is
``ngspice-shared`` (RENAMED, refused with one line naming the new value).
"""

from __future__ import annotations

from spu_sim.engines import ENGINES
from spu_sim.errors import ConfigError

IDEAL = "ideal"
#: former backend values -> their name now
RENAMED = {"circuit": "ngspice-shared"}


def names() -> tuple[str, ...]:
    """Every backend: ideal, then the registered engines."""
    return (IDEAL, *ENGINES.names())


def problem(value: object) -> str | None:
    """The one-line problem with a backend value without its key (None when it is a backend)."""
    if isinstance(value, str) and (value == IDEAL or value in ENGINES):
        return None
    if isinstance(value, str) and value in RENAMED:
        return f"{value!r} was renamed {RENAMED[value]} (the engine's name, as simulation.backend); write " \
               f"backend: {RENAMED[value]}"
    return f"{value!r:.40} is not a backend; choose one of: {', '.join(names())} (ideal: the exact OU transient, " \
           "else an engine)"


def check(value: object, field: str = "backend") -> str:
    """``value`` if it is a backend, else ConfigError naming ``field``."""
    err = problem(value)
    if err is not None:
        raise ConfigError(f"{field}: {err}")
    return value


def engine(value: str) -> str | None:
    """The engine that produces a backend's readouts (None for ideal: no circuit, the exact OU transient)."""
    return None if check(value) == IDEAL else value
