"""Packaged experiments: ``spu-sim experiment NAME CONFIG --out DIR``.

An experiment config is a normal run config plus an ``experiment:`` section validated by the experiment's
own model (unknown keys rejected). Each experiment runs, saves .npz/.json/.csv with the resolved config,
then plots from the saved files only (``replot`` redraws without simulating).

    rlc_sampling         Gaussian sampling histograms and empirical covariance vs kT Cm^-1
    rlc_inversion        inverse-estimate error vs duration for ideal and B-bit coupling banks
    rlc_autocorrelation  node-voltage autocorrelation vs the exact underdamped prediction
    sc_clock             switched-capacitor SPU: error vs f_clk tau and bank bits, kT/C floor, energy per clock
    posterior_scaling    mixing time and energy of the Gaussian posterior circuit vs d (spu_sim.posterior.scaling)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInputError

#: name -> (module, its run function, its plot function); modules are imported only when used
_REGISTRY = {
    "rlc_sampling": ("spu_sim.experiments.rlc", "run_sampling", "plot_sampling"),
    "rlc_inversion": ("spu_sim.experiments.rlc", "run_inversion", "plot_inversion"),
    "rlc_autocorrelation": ("spu_sim.experiments.rlc", "run_autocorrelation", "plot_autocorrelation"),
    "sc_clock": ("spu_sim.experiments.sc_clock", "run_sc_clock", "plot_sc_clock"),
    "posterior_scaling": ("spu_sim.posterior.scaling", "run", "plot"),
}
EXPERIMENTS = tuple(_REGISTRY)


def _function(name: str, which: int):
    import importlib  # noqa: PLC0415 - heavy imports only when used
    if name not in _REGISTRY:
        raise BadInputError(f"experiment: {name!r} is not an experiment; choose one of: {', '.join(EXPERIMENTS)}")
    module, *funcs = _REGISTRY[name]
    return getattr(importlib.import_module(module), funcs[which])


def run_experiment(name: str, config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Run experiment ``name`` on the YAML config and return the files written to out_dir."""
    return _function(name, 0)(config_path, out_dir)


def replot(name: str, out_dir: str | Path) -> list[Path]:
    """Redraw an experiment's plots from its saved files (no simulation)."""
    out = _function(name, 1)(Path(out_dir))
    return out if isinstance(out, list) else [out]
