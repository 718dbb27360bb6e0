"""The registry of packaged experiments (``spu-sim experiment NAME``): each experiment module registers its
run and plot functions where it defines them,

    EXPERIMENTS.register("rlc_sampling", Experiment(run_sampling, plot_sampling))

and the experiments package imports those modules (spu_sim.experiments). An unknown name is a ConfigError:

    experiment: 'x' is not an experiment; choose one of: rlc_sampling, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..registry import Registry


@dataclass(frozen=True)
class Experiment:
    """run(config_path, out_dir) -> the files written; plot(out_dir) -> the plots redrawn from the saved files
    (never simulates; a list of paths or one path)."""

    run: Callable[[str | Path, str | Path], list[Path]]
    plot: Callable[[Path], list[Path] | Path]


EXPERIMENTS: Registry[Experiment] = Registry("an experiment", "experiment")
