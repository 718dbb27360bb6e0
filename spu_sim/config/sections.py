"""The sections every run config shares: ``simulation`` (what the engine runs) and ``readout`` (the ADC).

The engine named by ``simulation.backend`` is checked against the engine registry by the composite run
configuration (spu_sim.run_config), which sits above the registries; this module imports nothing of spu_sim
but errors and the base model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Strict, finite as _finite


class SimulationConfig(Strict):
    """What the engine runs.

    t_stop_tau: transient length in problem time units tau (the tau of dx = -(A x - b) dt/tau).
    burn_in_tau: discarded before averaging; default: 10 relaxation times of the slowest mode, capped
    at half the run. noise_dt_tau: step of the injected noise samples; default 1/(noise_oversample *
    lambda_max). backend: a registered engine (spu_sim.engines; checked by the run configuration, spu_sim.run_config): ``ngspice-shared`` (in-process through
    PySpice), ``ngspice-subprocess`` (plain ``ngspice -b -r``). analyses: which of op / tran to run.
    timeout_s: the engine run is stopped at this limit (every engine). Limits checked from the config before
    any work: max_noise_samples (noise samples over all noise sources), max_readout_values (readout points
    times variables), max_disk_mb (estimated netlist + noise files; the free space of --out is checked too).
    """

    t_stop_tau: float = Field(default=100.0, gt=0)
    burn_in_tau: float | None = Field(default=None, ge=0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    noise_dt_tau: float | None = Field(default=None, gt=0)
    noise_oversample: float = Field(default=50.0, ge=2)
    max_noise_samples: int = Field(default=20_000_000, ge=10)
    max_readout_values: int = Field(default=50_000_000, ge=10)
    max_disk_mb: float = Field(default=500.0, gt=0)
    backend: str = "ngspice-shared"
    analyses: list[Literal["op", "tran"]] = ["op", "tran"]
    timeout_s: float | None = Field(default=None, gt=0)
    reltol: float = Field(default=1e-4, gt=0, le=1e-2)

    _fin = field_validator("t_stop_tau", "burn_in_tau", "noise_dt_tau")(_finite)

    @model_validator(mode="after")
    def _burn(self) -> "SimulationConfig":
        if self.burn_in_tau is not None and self.burn_in_tau >= self.t_stop_tau:
            raise ValueError(f"burn_in_tau ({self.burn_in_tau:g}) must be below t_stop_tau ({self.t_stop_tau:g})")
        if not self.analyses:
            raise ValueError("analyses: name at least one of op, tran")
        return self


class AdcConfig(Strict):
    """ADC of the readout: ``bits`` null = ideal (no quantisation); range_v: full scale +/- range_v
    (default 1.25 * the design's voltage swing); values beyond it clip."""

    bits: int | None = Field(default=None, ge=1, le=32)
    range_v: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _range_needs_bits(self) -> "AdcConfig":
        """range_v without bits would be silently ignored: the ideal ADC neither clips nor rounds."""
        if self.bits is None and self.range_v is not None:
            raise ValueError(f"range_v = {self.range_v:g} is used only by a quantising ADC (the ideal one, bits: null, "
                             "neither clips nor rounds); set readout.adc.bits, or remove range_v")
        return self


class ReadoutConfig(Strict):
    """sample_dt_tau: ADC sample period in tau (default: the noise step)."""

    sample_dt_tau: float | None = Field(default=None, gt=0)
    adc: AdcConfig = AdcConfig()
