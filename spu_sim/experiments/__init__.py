"""Packaged experiments: ``spu-sim experiment NAME CONFIG --out DIR``.

An experiment config is a normal run config plus an ``experiment:`` section validated by the experiment's
own model (unknown keys rejected). Each experiment runs, saves .npz/.json/.csv with the resolved config,
then plots from the saved files only (``replot`` redraws without simulating).

    rlc_sampling         Gaussian sampling histograms and empirical covariance vs kT Cm^-1
    rlc_inversion        inverse-estimate error vs duration for ideal and B-bit coupling banks
    rlc_autocorrelation  node-voltage autocorrelation vs the exact underdamped prediction
    sc_clock             switched-capacitor SPU: error vs f_clk tau and bank bits, kT/C floor, energy per clock
    posterior_scaling    mixing time and energy of the Gaussian posterior circuit vs d (posterior_scaling.py)
    array_limits         solution error vs N for wire resistances and noise levels, the largest N within a budget

Each module registers its experiments in ``base.EXPERIMENTS`` where it defines them; this package imports
the modules it exposes.
"""

from __future__ import annotations

from pathlib import Path

from .base import EXPERIMENTS, Experiment
from . import rlc, sc_clock, posterior_scaling, array_limits  # in this order: the order ``choose one of`` lists them

__all__ = ["EXPERIMENTS", "Experiment", "array_limits", "key_numbers", "posterior_scaling", "replot", "rlc", "run_experiment", "sc_clock"]


def run_experiment(name: str, config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Run experiment ``name`` on the YAML config and return the files written to out_dir."""
    return EXPERIMENTS.get(name).run(config_path, out_dir)


def key_numbers(name: str, out_dir: str | Path) -> list[str]:
    """The key numbers of experiment ``name``'s results in out_dir, in words with units (read from its files)."""
    fn = EXPERIMENTS.get(name).key_numbers
    return [] if fn is None else fn(Path(out_dir))


def replot(name: str, out_dir: str | Path) -> list[Path]:
    """Redraw an experiment's plots from its saved files (no simulation)."""
    out = EXPERIMENTS.get(name).plot(Path(out_dir))
    return out if isinstance(out, list) else [out]
