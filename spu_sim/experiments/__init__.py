"""Packaged experiments: ``spu-sim experiment NAME CONFIG --out DIR``.

An experiment config is a normal run config plus an ``experiment:`` section validated by the experiment's
own model (unknown keys rejected). Each experiment runs, saves .npz/.json/.csv with the resolved config,
then plots from the saved files only (``replot`` redraws without simulating).

    rlc_sampling         Gaussian sampling histograms and empirical covariance vs kT Cm^-1
    rlc_inversion        inverse-estimate error vs duration for ideal and B-bit coupling banks
    rlc_autocorrelation  node-voltage autocorrelation vs the exact underdamped prediction
    sc_clock             switched-capacitor SPU: error vs f_clk tau and bank bits, kT/C floor, energy per clock
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInputError

EXPERIMENTS = ("rlc_sampling", "rlc_inversion", "rlc_autocorrelation", "sc_clock")
#: the module of each experiment that is not an RLC one (it holds run_<name> and plot_<name>)
_OWN_MODULE = {"sc_clock": "sc_clock"}


def _own(name: str):
    import importlib  # noqa: PLC0415
    return importlib.import_module(f".{_OWN_MODULE[name]}", __name__)


def run_experiment(name: str, config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Run experiment ``name`` on the YAML config and return the files written to out_dir."""
    if name not in EXPERIMENTS:
        raise BadInputError(f"experiment: {name!r} is not an experiment; choose one of: {', '.join(EXPERIMENTS)}")
    if name in _OWN_MODULE:
        return getattr(_own(name), f"run_{name}")(config_path, out_dir)
    from . import rlc  # noqa: PLC0415 - heavy imports only when used
    return rlc.RUNNERS[name](config_path, out_dir)


def replot(name: str, out_dir: str | Path) -> list[Path]:
    """Redraw an experiment's plots from its saved files (no simulation)."""
    if name not in EXPERIMENTS:
        raise BadInputError(f"experiment: {name!r} is not an experiment; choose one of: {', '.join(EXPERIMENTS)}")
    if name in _OWN_MODULE:
        return getattr(_own(name), f"plot_{name}")(Path(out_dir))
    from . import rlc  # noqa: PLC0415
    return rlc.PLOTTERS[name](Path(out_dir))
