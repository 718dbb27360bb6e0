"""Engines: a circuit description (spu_sim.circuit) -> waveforms per analysis. One file per engine, registered
once (contract and registry in base.py).

    plots = get_engine(cfg.simulation.backend).run(circuit, run_dir, timeout_s=None, progress=None)

Built in: ngspice-shared (libngspice in-process), ngspice-subprocess (plain ngspice -b), linear and
linear-aggregated (the exact linear-circuit engine: spu_sim/engines/linear.py, docs/linear_engine.md).
"""

from .base import Engine, available, get_engine, names, register
from .raw import Waveforms
from . import ngspice_shared, ngspice_subprocess  # noqa: E402,F401  (the built-in engines register themselves)
from . import linear  # noqa: E402,F401

__all__ = ["Engine", "Waveforms", "available", "get_engine", "names", "register"]
