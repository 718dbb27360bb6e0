"""Packaged experiments: ``spu-sim experiment NAME CONFIG --out DIR``.

An experiment config is a normal run config plus an ``experiment:`` section validated by the experiment's
own model (unknown keys rejected). Each experiment runs, saves .npz/.json/.csv with the resolved config,
then plots from the saved files only (``replot`` redraws without simulating).

    rlc_sampling         Gaussian sampling histograms and empirical covariance vs kT Cm^-1
    rlc_inversion        inverse-estimate error vs duration for ideal and B-bit coupling banks
    rlc_autocorrelation  node-voltage autocorrelation vs the exact underdamped prediction
    posterior_scaling    mixing time and energy of the Gaussian posterior circuit vs d (spu_sim.posterior.scaling)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInputError

EXPERIMENTS = ("rlc_sampling", "rlc_inversion", "rlc_autocorrelation", "posterior_scaling")


def _runners(name: str):
    """(run, plot) of an experiment; rlc's live in experiments/rlc.py, posterior_scaling in spu_sim.posterior."""
    if name == "posterior_scaling":
        from ..posterior import scaling  # noqa: PLC0415
        return scaling.run, scaling.plot
    from . import rlc  # noqa: PLC0415 - heavy imports only when used
    return rlc.RUNNERS[name], rlc.PLOTTERS[name]


def run_experiment(name: str, config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Run experiment ``name`` on the YAML config and return the files written to out_dir."""
    if name not in EXPERIMENTS:
        raise BadInputError(f"experiment: {name!r} is not an experiment; choose one of: {', '.join(EXPERIMENTS)}")
    return _runners(name)[0](config_path, out_dir)


def replot(name: str, out_dir: str | Path) -> list[Path]:
    """Redraw an experiment's plots from its saved files (no simulation)."""
    if name not in EXPERIMENTS:
        raise BadInputError(f"experiment: {name!r} is not an experiment; choose one of: {', '.join(EXPERIMENTS)}")
    out = _runners(name)[1](Path(out_dir))
    return out if isinstance(out, list) else [out]
