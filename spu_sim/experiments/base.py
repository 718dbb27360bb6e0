"""The registry of packaged experiments (``spu-sim experiment NAME``): each experiment module registers its
run and plot functions where it defines them,

    EXPERIMENTS.register("rlc_sampling", Experiment(run_sampling, plot_sampling))

and the experiments package imports those modules (spu_sim.experiments). An unknown name is a ConfigError:

    experiment: 'x' is not an experiment; choose one of: rlc_sampling, ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ValidationError

from ..config import format_validation_error, read_yaml
from ..errors import BadInputError, ConfigError
from ..registry import Registry

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Experiment:
    """run(config_path, out_dir) -> the files written; plot(out_dir) -> the plots redrawn from the saved files
    (never simulates; a list of paths or one path); key_numbers(out_dir) -> the lines the terminal shows."""

    run: Callable[[str | Path, str | Path], list[Path]]
    plot: Callable[[Path], list[Path] | Path]
    #: key_numbers(out_dir) -> lines: the key numbers in words with units, from the saved files (``spu-sim
    #: experiment`` prints them; spu_sim.experiments.key_numbers)
    key_numbers: Callable[[Path], list[str]] | None = None


EXPERIMENTS: Registry[Experiment] = Registry("an experiment", "experiment")


def read_experiment(config_path: str | Path, model: type[M]) -> tuple[dict[str, Any], Path, M]:
    """An experiment's YAML -> (the run config's raw dict without ``experiment``, the YAML's folder, the
    ``experiment`` section validated by ``model``); ConfigError naming the key otherwise. Each experiment then
    validates the run config (load_run_config) and its own constraints."""
    data, base_dir = read_yaml(config_path)
    section = data.pop("experiment", None) or {}
    if not isinstance(section, dict):
        raise ConfigError("experiment: must be a mapping of settings")
    try:
        exp = model.model_validate(section)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, root="experiment", model=model)) from None
    return data, base_dir, exp


@contextlib.contextmanager
def as_setting(key: str, value: object) -> Iterator[None]:
    """Report bad input met while a run is built from one experiment setting under that setting's key, e.g.

        with as_setting(f"experiment.f_clk_tau[{i}]", v):
            cfg_i = variant(cfg, f_clk_tau=v)      # "experiment.f_clk_tau[2] = 0.01: circuit.sc.f_clk_tau ..."

    so the message names the key the user wrote, then the run key it was copied into."""
    try:
        yield
    except BadInputError as e:
        raise type(e)(f"{key} = {value!r}: {e}") from None
