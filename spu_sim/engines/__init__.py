"""Engines: a circuit description (spu_sim.circuit) -> waveforms per analysis. One unit per engine, each
registered once where it is defined (contract and registry in base.py).

    plots = get_engine(cfg.simulation.backend).run(circuit, run_dir, timeout_s=None, progress=None)

Built in: ngspice-shared (libngspice in-process), ngspice-subprocess (plain ngspice -b), linear and
linear-aggregated (the exact linear-circuit engine: spu_sim/engines/linear, docs/linear_engine.md).
"""

from . import ngspice_shared, ngspice_subprocess  # the sign-off engines first: their order is the choices' order
from . import linear
from .base import ENGINES, Cost, Engine, Workload, available, check_finite_waveforms, free_memory_mb, get_engine
from .raw import Waveforms

__all__ = ["ENGINES", "Cost", "Engine", "Waveforms", "Workload", "available", "check_finite_waveforms",
           "free_memory_mb", "get_engine", "linear", "ngspice_shared", "ngspice_subprocess"]
