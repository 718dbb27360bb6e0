"""Config of ``spu-sim train``: one pydantic model per YAML section, unknown keys rejected.

    data:   name (digits | blobs | arrays | function), test_fraction, seed, features (none | pca | pool), n_components,
            pool, n_samples, n_features, n_classes, spread (blobs only), x_train, y_train, x_test, y_test (arrays:
            .npy paths), function (function: 'module:function')
    model:  name (logreg | mlp | function), hidden (int, or a list of widths: deeper MLP), activation (tanh | relu),
            curvature (ggn | empirical_fisher), init_scale, function (function: 'module:build' -> UserModel)
    train:  steps, batch_size, seed, eval_every, progress, diagnostics, blas_threads, optimizers: [ {name, label, lr, damping, ...} ]
    timing: the TNGD hardware time model (spu_sim.train.timing)
    plots:  groups: {plot name: [labels]} -> one extra plot per group

Every validation error becomes one ``ConfigError`` line: "<dotted.path>: <problem>; <fix>". The names come from
the registries where the things are defined: ``data.name`` from ``spu_sim.train.data.DATASETS``, ``model.name``
from ``spu_sim.train.models.MODELS``, an optimiser's ``name`` from ``spu_sim.optim.OPTIMIZERS`` and its ``backend``
(tngd, tngd_adam, tkfac) is ``ideal`` or an engine of ``spu_sim.engines.ENGINES`` (spu_sim.optim.backend).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from spu_sim.config import AdcConfig, Seed, format_validation_error, physical, read_yaml
from spu_sim.errors import ConfigError
from spu_sim.optim import OPTIMIZERS
from spu_sim.optim import backend as spu_backend
from spu_sim.optim.tngd import MAX_T_TAU
from spu_sim.registry import Registry
from spu_sim.train.data import DATASETS
from spu_sim.train.layers import ACTIVATIONS
from spu_sim.train.models import CURVATURES, MODELS

_LABEL_CHARS = 60
_LABEL = re.compile(r"^[^$\\\"'\r\n\t]{1,%d}$" % _LABEL_CHARS)
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")

# config key -> keyword of the optimiser's build(); keys not listed for a name are rejected
_OPTIONS: dict[str, dict[str, str]] = {
    "sgd": {"lr": "lr"},
    "adam": {"lr": "lr", "b1": "b1", "b2": "b2", "eps": "eps"},
    "ngd": {"lr": "lr", "damping": "damping"},
    "ngd_cg": {"lr": "lr", "damping": "damping", "cg_iters": "cg_iters", "cg_tol": "cg_tol"},
    "ngd_woodbury": {"lr": "lr", "damping": "damping"},
    "tngd": {k: k for k in ("lr", "damping", "t_stop_tau", "delay_tau", "warm_start", "backend", "kappa", "seed",
                            "circuit", "readout")},
}
_OPTIONS["tngd_adam"] = {**_OPTIONS["tngd"], "b1": "b1", "b2": "b2", "eps": "eps"}
_OPTIONS["kfac"] = {k: k for k in ("lr", "damping", "decay", "inverse_every")}
_OPTIONS["tkfac"] = {**_OPTIONS["kfac"], **{k: k for k in ("backend", "t_stop_tau", "kappa", "factor_bits", "readout",
                                                              "seed")}}
#: former optimiser keys -> (the name now, what it is): one name per concept across CLI, config and Python (a run
#: config's and the engine registry's names); a config with a former key is refused naming the new one
RENAMED_KEYS: dict[str, tuple[str, str, str]] = {   # former key: (new key, what it is, how to write it)
    "t_tau": ("t_stop_tau", "the analog time per step, as a run's simulation.t_stop_tau", "t_stop_tau: {}"),
    "adc_bits": ("readout.adc.bits", "the readout ADC's resolution, as a run's readout.adc.bits",
                 "readout: {{adc: {{bits: {}}}}}"),
}


def _choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ValueError(f"{value!r} is not {what}; choose one of: {', '.join(choices)}")
    return value


def _registered(value: str, registry: Registry) -> str:
    """``value`` if ``registry`` holds it, else the registry's one-line error (the field path comes from pydantic)."""
    if value not in registry:
        raise ValueError(registry.unknown(value, field=""))
    return value


class _Section(BaseModel):
    """Unknown keys rejected, every float finite, unit-named fields in their physical range (as spu_sim.config.Strict)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    _physical = field_validator("*", mode="after")(physical)


MAX_DATA_VALUES = 20_000_000    # a generated data set's float64 values (160 MB)


class DataConfig(_Section):
    name: str = "digits"
    test_fraction: float = Field(0.25, gt=0, lt=1)
    seed: Seed = 0
    features: str = "pca"
    n_components: int = Field(12, ge=1)
    pool: int = Field(2, ge=1)
    n_samples: int = Field(400, ge=10, le=1_000_000)
    n_features: int = Field(4, ge=1, le=10_000)
    n_classes: int = Field(3, ge=2, le=1000)
    spread: float = Field(1.0, gt=0, le=1e6)     # in units of the class means' sd / 2; 1e6: classes indistinguishable
    x_train: str | None = None   # arrays: .npy paths (relative to the config file)
    y_train: str | None = None
    x_test: str | None = None
    y_test: str | None = None
    function: str | None = None  # function: 'module:function' returning a Dataset or (x_train, y_train, x_test, y_test)

    @model_validator(mode="after")
    def _size(self) -> "DataConfig":
        if self.name == "blobs" and self.n_samples * self.n_features > MAX_DATA_VALUES:
            raise ValueError(f"n_samples x n_features = {self.n_samples * self.n_features:.3g} values is beyond "
                             f"{MAX_DATA_VALUES:.0e} ({MAX_DATA_VALUES * 8 / 1e6:.0f} MB); lower n_samples or n_features")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _registered(v, DATASETS)

    @model_validator(mode="after")
    def _source(self) -> "DataConfig":
        keys = {"arrays": ("x_train", "y_train", "x_test", "y_test"), "function": ("function",)}
        for key in ("x_train", "y_train", "x_test", "y_test", "function"):
            if getattr(self, key) is not None and key not in keys.get(self.name, ()):
                raise ValueError(f"{key!r} is not an option of data.name {self.name}; remove it or set data.name: "
                                 f"{'function' if key == 'function' else 'arrays'}")
        for key in keys.get(self.name, ()):
            if getattr(self, key) is None:
                raise ValueError(f"data.name {self.name} needs {key!r}; add it ("
                                 f"{'a .npy path' if self.name == 'arrays' else 'module:function'})")
        return self

    @field_validator("features")
    @classmethod
    def _features(cls, v: str) -> str:
        return _choice(v, ("none", "pca", "pool"), "a feature reduction")


class ModelConfig(_Section):
    name: str = "logreg"
    hidden: int | list[int] = 16  # an int: the one-hidden-layer MLP; a list: DeepMLP with these widths
    activation: str = "tanh"
    curvature: str = "ggn"
    init_scale: float | None = Field(None, ge=0)
    function: str | None = None  # model.name function: 'module:build', build(dataset) -> spu_sim.train.custom.UserModel

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _registered(v, MODELS)

    @model_validator(mode="after")
    def _function(self) -> "ModelConfig":
        if (self.name == "function") != (self.function is not None):
            raise ValueError("model.name function and model.function ('module:build') go together; give both or "
                             "neither")
        return self

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, v: int | list[int]) -> int | list[int]:
        widths = v if isinstance(v, list) else [v]
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"{v!r} is not a width; give an integer >= 1 or a non-empty list of them (e.g. [32, 32])")
        return v

    @field_validator("activation")
    @classmethod
    def _act(cls, v: str) -> str:
        return _choice(v, ACTIVATIONS, "an activation")

    @field_validator("curvature")
    @classmethod
    def _curv(cls, v: str) -> str:
        return _choice(v, CURVATURES, "a curvature")


class OptimizerReadout(_Section):
    """A circuit optimiser's ``readout``: a run's readout section with only ``adc`` (bits, range_v): the SPU is read
    once per run, its final state at t_stop_tau, so there is no sample period or waveform file to set."""

    adc: AdcConfig = Field(default_factory=AdcConfig)


class OptimizerConfig(_Section):
    name: str
    label: str | None = None
    lr: float = Field(gt=0)
    damping: float | None = Field(None, gt=0)
    t_stop_tau: float | None = Field(None, ge=0)      # analog time per step (tau), at most MAX_T_TAU (_time)
    delay_tau: float | None = Field(None, ge=0)
    backend: str | None = None
    warm_start: bool | None = None
    kappa: float | None = Field(None, ge=0)
    seed: Seed | None = None
    circuit: dict[str, Any] | None = None
    readout: OptimizerReadout | None = None
    b1: float | None = Field(None, ge=0, lt=1)
    b2: float | None = Field(None, ge=0, lt=1)
    eps: float | None = Field(None, gt=0)
    cg_iters: int | None = Field(None, ge=1)
    cg_tol: float | None = Field(None, ge=0)
    decay: float | None = Field(None, ge=0, lt=1)
    inverse_every: int | None = Field(None, ge=1)
    factor_bits: int | None = Field(None, ge=1, le=32)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _registered(v, OPTIMIZERS)

    @field_validator("t_stop_tau", "delay_tau")
    @classmethod
    def _time(cls, v: float | None) -> float | None:
        """An analog time or delay per step has a physical range (spu_sim.optim.tngd.MAX_T_TAU): checked here, before
        training, because an engine would stall on a transient of, say, 1e300 tau only after training started."""
        if v is not None and v > MAX_T_TAU:
            raise ValueError(f"{v:.4g} tau is beyond the physical range 0 .. {MAX_T_TAU:.0e} tau of an analog time per "
                             "step (1e6 tau is a second at tau = 1 us; the SPU settles within tens of tau); give a "
                             "shorter time (e.g. 50)")
        return v

    @field_validator("label")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        """A label names a curve in legends, a history column and plot groups: checked here, before training,
        because a label the plots cannot draw would fail after the training and lose its outputs."""
        if v is not None and not _LABEL.match(v):
            raise ValueError(f"{v!r:.40} is not a label; give 1 to {_LABEL_CHARS} characters of plain text without "
                             "'$' (matplotlib reads $...$ as mathtext), '\\', quotes or line breaks (e.g. tngd_t5)")
        return v

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str | None) -> str | None:
        err = None if v is None else spu_backend.problem(v)
        if err is not None:
            raise ValueError(err)
        return v

    @model_validator(mode="after")
    def _options(self) -> "OptimizerConfig":
        allowed = _OPTIONS[self.name]
        for key in self.model_fields_set - {"name", "label"}:
            if key not in allowed and getattr(self, key) is not None:
                raise ValueError(f"{key!r} is not an option of {self.name}; remove it "
                                 f"(options of {self.name}: label, {', '.join(allowed)})")
        if self.label is None:
            self.label = self.name
        return self

    def resolved(self) -> dict[str, Any]:
        """The config keys of this optimiser with the ``build`` defaults filled in."""
        params = inspect.signature(OPTIMIZERS.get(self.name).build).parameters
        out = {}
        for key, kw in _OPTIONS[self.name].items():
            value = getattr(self, key)
            out[key] = params[kw].default if value is None else \
                value.model_dump() if isinstance(value, BaseModel) else value
        return out

    def hyper(self) -> dict[str, Any]:
        """Keyword arguments of the optimiser's ``build``, with its defaults filled in."""
        return {_OPTIONS[self.name][k]: v for k, v in self.resolved().items()}

    @property
    def is_tngd(self) -> bool:
        return self.name in ("tngd", "tngd_adam")

    @property
    def is_tkfac(self) -> bool:
        return self.name == "tkfac"


class TrainSection(_Section):
    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    seed: Seed = 0
    eval_every: int = Field(1, ge=1)
    progress: bool = True
    diagnostics: bool = True  # TNGD: log |readout - exact natural gradient| / |exact| (untimed)
    blas_threads: int | None = Field(1, ge=1)  # BLAS threads while training (stable timings); null = library default
    optimizers: list[OptimizerConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_labels(self) -> "TrainSection":
        seen: set[str] = set()
        for entry in self.optimizers:
            if entry.label in seen:
                raise ValueError(f"label {entry.label!r} is used twice; give each optimizer entry a distinct "
                                 "'label' (e.g. tngd_t5)")
            seen.add(entry.label)
        return self


class TimingConfig(_Section):
    """TNGD hardware time model (see spu_sim.train.timing); every term is a knob."""

    r_ohm: float = Field(1e3, gt=0)
    c_farad: float = Field(1e-9, gt=0)
    link_bits_per_s: float = Field(50e9, gt=0)
    dac_bits: int = Field(16, ge=1)
    resistor_bits: int = Field(16, ge=1)
    adc_bits: int = Field(16, ge=1)
    dac_latency_s: float = Field(0.0, ge=0, le=1.0)     # a converter's latency: at most a second
    adc_latency_s: float = Field(0.0, ge=0, le=1.0)
    include_digital: bool = True


class PlotsConfig(_Section):
    groups: dict[str, list[str]] = Field(default_factory=dict)


class TrainConfig(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainSection
    timing: TimingConfig = Field(default_factory=TimingConfig)
    plots: PlotsConfig = Field(default_factory=PlotsConfig)

    @model_validator(mode="after")
    def _groups(self) -> "TrainConfig":
        labels = [o.label for o in self.train.optimizers]
        for group, members in self.plots.groups.items():
            if not _FILE_NAME.match(group) or ".." in group:
                raise ValueError(f"plots.groups: {group!r:.60} becomes the file name group_<name>.png; use letters, "
                                 "digits, '_', '.', '-' (no '/', no '..')")
            for m in members:
                if m not in labels:
                    raise ValueError(f"plots.groups.{group}: {m!r} is not an optimizer label; "
                                     f"choose among: {', '.join(labels)}")
        return self


def check_renamed(raw: dict[str, Any]) -> None:
    """ConfigError naming the first former key of an optimiser entry (``RENAMED_KEYS``) and the name it has now."""
    train = raw.get("train")
    entries = train.get("optimizers") if isinstance(train, dict) else None
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        for old, (new, what, written) in RENAMED_KEYS.items():
            if isinstance(entry, dict) and old in entry:
                raise ConfigError(f"train.optimizers[{i}].{old}: was renamed {new} ({what}); write "
                                  f"{written.format(f'{entry[old]!r:.20}')} instead")


def validate_config(raw: dict[str, Any] | TrainConfig) -> TrainConfig:
    """Validate a config dict (as loaded from YAML) into a ``TrainConfig``; raises ConfigError."""
    if isinstance(raw, TrainConfig):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of sections (data, model, train, ...), got {type(raw).__name__}")
    check_renamed(raw)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model=TrainConfig)) from None


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML file (spu_sim.config.read_yaml) and validate it; data.x_train etc. resolve against its folder."""
    raw, base = read_yaml(path)
    data = raw.get("data") if isinstance(raw, dict) else None
    if isinstance(data, dict):
        for key in ("x_train", "y_train", "x_test", "y_test"):
            if isinstance(data.get(key), str):
                data[key] = str((base / data[key]).resolve())
    return validate_config(raw)


def resolved_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config with every default filled in (optimiser hyper-parameters included), for config.yaml."""
    out = cfg.model_dump(mode="json")
    out["train"]["optimizers"] = [{"name": o.name, "label": o.label, **o.resolved()} for o in cfg.train.optimizers]
    return out
