"""The sections every run config shares: ``simulation`` (what the engine runs) and ``readout`` (the ADC).

The engine named by ``simulation.backend`` is checked against the engine registry by the composite run
configuration (spu_sim.run_config), which sits above the registries; this module imports nothing of spu_sim
but errors and the base model.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Seed, Strict, finite as _finite


#: what simulation.save_nodes accepts: a node name, v(a), v(a,b), i(source)
SAVE_VECTOR = re.compile(r"^(?:\w+|[vV]\(\w+(?:,\w+)?\)|[iI]\(\w+\))$", re.ASCII)


class SimulationConfig(Strict):
    """What the engine runs.

    t_stop_tau: transient length in problem time units tau (the tau of dx = -(A x - b) dt/tau).
    burn_in_tau: discarded before averaging; default: 10 relaxation times of the slowest mode, capped
    at half the run. noise_dt_tau: step of the injected noise samples; default 1/(noise_oversample *
    lambda_max). backend: a registered engine (spu_sim.engines; checked by the run configuration, spu_sim.run_config): ``ngspice-shared`` (in-process through
    PySpice), ``ngspice-subprocess`` (plain ``ngspice -b netlist.cir``). analyses: which of op / tran to run.
    timeout_s: the engine run is stopped at this limit (every engine). Limits checked from the config before
    any work: the engine's estimate of its memory (against the machine's free memory) and disk (netlist, noise
    and result files; against max_disk_mb and the free space of --out), max_readout_values (readout points
    times variables), and max_noise_samples only when set (a count is no limit of its own: an engine that never
    makes the samples is not refused for them). save_nodes: vectors kept beyond the readout nodes, on every engine (in the waveform file,
    readout.waveforms, and SimulationResult.waveforms): a node name (``sum1``, its voltage), ``v(a)``,
    ``v(a,b)`` or ``i(vsource)`` (a voltage source's current, e.g. ``i(vo1)``); each name is checked against
    the circuit's own nodes and sources before the engine runs.
    """

    t_stop_tau: float = Field(default=100.0, gt=0)
    burn_in_tau: float | None = Field(default=None, ge=0)
    seed: Seed = 0
    noise_dt_tau: float | None = Field(default=None, gt=0)
    noise_oversample: float = Field(default=50.0, ge=2)
    max_noise_samples: int | None = Field(default=None, ge=10)
    max_readout_values: int = Field(default=50_000_000, ge=10)
    max_disk_mb: float = Field(default=500.0, gt=0)
    backend: str = "ngspice-shared"
    analyses: list[Literal["op", "tran"]] = ["op", "tran"]
    timeout_s: float | None = Field(default=None, gt=0)
    reltol: float = Field(default=1e-4, gt=0, le=1e-2)
    save_nodes: list[str] = Field(default_factory=list, max_length=10_000)

    _fin = field_validator("t_stop_tau", "burn_in_tau", "noise_dt_tau")(_finite)

    @field_validator("save_nodes")
    @classmethod
    def _save_syntax(cls, v: list[str]) -> list[str]:
        for s in v:
            if not SAVE_VECTOR.fullmatch(s):
                raise ValueError(f"{s[:40]!r} is not a vector: write a node name (sum1), v(a), v(a,b) or "
                                 "i(vsource) with letters, digits and underscores")
        return v

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
    """sample_dt_tau: ADC sample period in tau (default: the noise step). waveforms: the file of the engine's
    waveforms (every saved vector of every analysis at the engine's own points) kept in the run folder:
    ``raw`` (waveforms.raw, ngspice's binary raw format: ngspice's ``load``, spicelib and waveform viewers read
    it), ``csv`` (waveforms_<analysis>.csv, one per analysis) or ``none``."""

    sample_dt_tau: float | None = Field(default=None, gt=0)
    adc: AdcConfig = AdcConfig()
    waveforms: Literal["raw", "csv", "none"] = "raw"
