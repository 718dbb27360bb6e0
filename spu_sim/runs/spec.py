"""The ``sweep:`` section of a config, dotted keys, and the plan: one validated config per run.

A sweep config is a normal spu-sim config plus a ``sweep:`` section (``SweepSpec``):

    sweep:
      grid: {circuit.integrator.c_farad: [1.0e-9, 1.0e-8]}     # dotted keys -> values; runs = their product
      monte_carlo: {runs: 200, seed: 0, seed_key: circuit.tolerance.seed}   # draw i sets seed_key = seed + i
                                                              # (a list of keys: each set to seed + i)
      mitigation: {enabled: true, group_size: 4}              # average estimates over K perturbed draws
      metric: op_rel_err                                      # one of SWEEP_METRICS
      threshold: 0.05                                         # yield: fraction of runs with metric <= threshold
      timeout_s: 300                                          # per run (the worker is killed after it)

``load_sweep`` validates the sweep section and every run's config up front (a bad grid key or value is a
ConfigError naming ``sweep.grid.<key>``; an unknown metric lists the valid ones), then ``plan_runs`` gives
one ``RunSpec`` per run, its id the hash of its resolved config.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from ..config import format_validation_error, read_yaml
from ..run_config import load_run_config
from ..errors import ConfigError

# what ``sweep.metric`` may name: the per-run metrics of spu_sim.compare.compute_metrics for which "lower
# is better" (relative errors, and the op-amp designs' settling time and energy); the yield counts runs
# with metric <= threshold. tests/test_runs.py checks that a real run reports every one of them.
SWEEP_METRICS = ("mean_rel_err", "op_rel_err", "cov_rel_err", "mean_rel_err_vs_realized", "op_rel_err_vs_realized",
                 "cov_rel_err_vs_realized", "matrix_rel_err", "mean_rel_err_expected", "cov_rel_err_expected",
                 "settle_measured_tau", "settle_measured_s", "energy_resistive_j", "power_resistive_mean_w",
                 "energy_supply_j", "power_supply_mean_w")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MonteCarloSpec(_Strict):
    """N draws of the component tolerances: draw i sets the dotted key ``seed_key`` to ``seed + i``
    (a list of keys, e.g. [circuit.tolerance.seed, simulation.seed], sets each; then the noise record
    differs between draws too)."""

    runs: StrictInt = Field(ge=1, le=1_000_000)
    seed: StrictInt = Field(default=0, ge=0)
    seed_key: str | list[str] = "circuit.tolerance.seed"

    @property
    def seed_keys(self) -> list[str]:
        return [self.seed_key] if isinstance(self.seed_key, str) else list(self.seed_key)


class MitigationSpec(_Strict):
    """Error mitigation by ensembles of perturbed realisations (Aifer et al. 2024): the estimates of K
    Monte Carlo draws (consecutive draws of one grid point) are averaged. A realisation's mismatch moves
    the estimate by O(eps) in a random direction; the average over K independent draws keeps only the
    O(eps^2) bias plus an O(eps / sqrt(K)) remainder."""

    enabled: bool = False
    group_size: StrictInt = Field(default=4, ge=2)


class SweepSpec(_Strict):
    """The ``sweep:`` section.

    grid: dotted config keys -> lists of values (runs = the product). monte_carlo: draws of the
    tolerances (combined with every grid point). workers: parallel processes (default: all cores).
    timeout_s: wall time per run before its worker is killed and the run recorded as failed.
    retry_failed: re-run failed runs when the sweep is restarted (default: keep them as failed).
    max_runs_per_worker: recycle a worker process after this many runs (1 = a fresh process per run).
    metric: the summary.csv column plotted and used for the yield (one of SWEEP_METRICS); threshold:
    yield = fraction of all runs with metric <= threshold (failed runs count as misses).
    """

    grid: dict[str, list[Any]] = {}
    monte_carlo: MonteCarloSpec | None = None
    mitigation: MitigationSpec = MitigationSpec()
    workers: StrictInt | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=600.0, gt=0)
    retry_failed: bool = False
    max_runs_per_worker: StrictInt | None = Field(default=None, ge=1)
    metric: str = "mean_rel_err"
    threshold: float | None = Field(default=None, gt=0)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in SWEEP_METRICS:
            raise ValueError(f"{v!r} is not a sweep metric; choose one of: {', '.join(SWEEP_METRICS)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "SweepSpec":
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{key}: give at least one value")
        if not self.grid and self.monte_carlo is None:
            raise ValueError("give a grid, a monte_carlo section, or both")
        if self.mitigation.enabled:
            if self.monte_carlo is None:
                raise ValueError("mitigation.enabled needs a monte_carlo section (it averages over draws)")
            if self.monte_carlo.runs < self.mitigation.group_size:
                raise ValueError(f"mitigation.group_size ({self.mitigation.group_size}) exceeds "
                                 f"monte_carlo.runs ({self.monte_carlo.runs})")
        for key in self.monte_carlo.seed_keys if self.monte_carlo is not None else []:
            if key in self.grid:
                raise ValueError(f"grid.{key}: is also a monte_carlo.seed_key; use one of them")
        return self


@dataclass(frozen=True)
class RunSpec:
    """One run of the sweep: its position, stable id, swept values and resolved config (plain data)."""

    index: int
    run_id: str
    params: dict[str, Any]
    draw: int | None
    config: dict[str, Any]
    base_dir: str


@dataclass
class Sweep:
    spec: SweepSpec
    runs: list[RunSpec]
    config_path: Path
    base: dict[str, Any] = field(default_factory=dict)

    @property
    def grid_keys(self) -> list[str]:
        return list(self.spec.grid)

    @property
    def param_keys(self) -> list[str]:
        """The swept keys of summary.csv: the grid's, then the Monte Carlo seed keys."""
        return self.grid_keys + (self.spec.monte_carlo.seed_keys if self.spec.monte_carlo else [])


# ---------------------------------------------------------------- dotted keys


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data[a][b][c] = value for key 'a.b.c', creating missing sections (validation rejects unknown ones)."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"sweep.grid.{key}: {'.'.join(parts[:i + 1])} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def get_dotted(data: dict[str, Any], key: str, default: Any = None) -> Any:
    """data[a][b][c] for key 'a.b.c', or default when a part is missing."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


# ---------------------------------------------------------------- load -> plan


def _absolute_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Make the file paths of the problem section absolute (load_config on a dict resolves against '.')."""
    problem = data.get("problem")
    if isinstance(problem, dict):
        for key in ("matrix", "vector"):
            if isinstance(problem.get(key), str) and not Path(problem[key]).is_absolute():
                problem[key] = str((base_dir / problem[key]).resolve())


def run_id_of(resolved: dict[str, Any]) -> str:
    """Stable 12-hex id of a resolved config (canonical JSON, sorted keys)."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _grid_error(msg: str, params: dict[str, Any]) -> ConfigError:
    """Name the swept key responsible for a config error (its path is a prefix of the error's, or vice versa)."""
    path = msg.split(":", 1)[0].strip()
    for key, value in params.items():
        if path == key or path.startswith(key + ".") or path.startswith(key + "[") or key.startswith(path + "."):
            rest = msg.split(":", 1)[1].strip() if ":" in msg else msg
            return ConfigError(f"sweep.grid.{key}: value {value!r}: {path}: {rest}"[:2000])
    return ConfigError(msg)


def load_sweep(config_path: str | Path) -> Sweep:
    """Read the YAML, validate the sweep section and every run's config; no run starts on bad input."""
    data, base_dir = read_yaml(config_path)
    if "sweep" not in data:
        raise ConfigError("sweep: required section is missing (grid and/or monte_carlo)")
    try:
        spec = SweepSpec.model_validate(data.pop("sweep") or {})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, root="sweep", model=SweepSpec)) from None
    _absolute_paths(data, base_dir)
    load_run_config(copy.deepcopy(data))  # the base config alone must be valid: its errors are not the grid's
    sweep = Sweep(spec, [], Path(config_path), data)
    sweep.runs = plan_runs(data, spec, base_dir)
    for key in spec.grid:  # the validated values (YAML 1.1 reads 1.0e5 as a string; pydantic made it a float)
        spec.grid[key] = list({json.dumps(r.params[key]): r.params[key] for r in sweep.runs}.values())
    return sweep


def _points(spec: SweepSpec) -> list[tuple[dict[str, Any], int | None]]:
    keys = list(spec.grid)
    grid = [dict(zip(keys, values)) for values in product(*(spec.grid[k] for k in keys))] or [{}]
    if spec.monte_carlo is None:
        return [(g, None) for g in grid]
    mc = spec.monte_carlo
    return [({**g, **{k: mc.seed + i for k in mc.seed_keys}}, i) for g in grid for i in range(mc.runs)]


def plan_runs(base: dict[str, Any], spec: SweepSpec, base_dir: Path) -> list[RunSpec]:
    """One RunSpec per grid point x Monte Carlo draw, each config validated through load_config."""
    runs: list[RunSpec] = []
    seen: dict[str, int] = {}
    for index, (params, draw) in enumerate(_points(spec)):
        data = copy.deepcopy(base)
        for key, value in params.items():
            set_dotted(data, key, value)
        try:
            cfg = load_run_config(data)
        except ConfigError as e:
            raise _grid_error(str(e), params) from None
        resolved = cfg.to_dict()
        params = {k: get_dotted(resolved, k, v) for k, v in params.items()}  # as validated: "1e4" -> 10000.0
        rid = run_id_of(resolved)
        if rid in seen:
            raise ConfigError(f"sweep.grid: runs {seen[rid]} and {index} have the same resolved config "
                              f"({params}); remove the duplicate value"[:2000])
        seen[rid] = index
        runs.append(RunSpec(index, rid, params, draw, resolved, str(base_dir)))
    return runs
