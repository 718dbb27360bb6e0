"""The ``circuit`` section of topology ``opamp``: integrator element ranges and the op-amp model, plus the
shared tolerance / quantization / temperature sections (spu_sim.topologies.elements)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...config.base import Strict, finite as _finite
from ..elements import CircuitBase


class IntegratorConfig(Strict):
    """Element ranges of the op-amp integrator SPU (see spu_sim.topologies.opamp.design for the mapping).

    c_farad: integrator feedback capacitor. r_min_ohm / r_max_ohm: realisable resistor range; the
    largest |A_ij| maps to r_min_ohm. v_swing_v: the largest node voltage the scaling aims for
    (mean + 4 sigma). v_dac_max_v: full scale of the DAC that drives b. noise_v_rms: rms of the
    noise-DAC samples (sets the noise resistor). prune_below_relative: matrix entries with
    |A_ij| < prune * max|A| get no resistor (reported in the realised matrix); 0 = never prune.
    """

    c_farad: float = Field(default=1e-9, gt=0)
    r_min_ohm: float = Field(default=1e3, gt=0)
    r_max_ohm: float = Field(default=1e8, gt=0)
    v_swing_v: float = Field(default=1.0, gt=0)
    v_dac_max_v: float = Field(default=1.0, gt=0)
    noise_v_rms: float = Field(default=0.5, gt=0)
    prune_below_relative: float = Field(default=0.0, ge=0, lt=1)

    _fin = field_validator("c_farad", "r_min_ohm", "r_max_ohm", "v_swing_v", "v_dac_max_v",
                           "noise_v_rms")(_finite)

    @model_validator(mode="after")
    def _range(self) -> "IntegratorConfig":
        if self.r_max_ohm <= self.r_min_ohm:
            raise ValueError(f"r_max_ohm ({self.r_max_ohm:g}) must exceed r_min_ohm ({self.r_min_ohm:g})")
        return self


class OpampConfig(Strict):
    """The op-amp model. ``ideal``: a nullor (virtual ground held exactly, no gain error).

    ``macro``: a real op-amp subcircuit per integrator and inverter (see
    spu_sim.topologies.opamp.nonideal and docs/nonideal.md): VCCS into a noiseless R-C pole (DC gain ``gain``, unity-gain frequency
    ``gbw_hz``; null = no pole), an E-TABLE output stage clipped at +/- ``v_out_max_v`` (null = no
    limit), input offset ``offset_v`` (plus a seeded per-op-amp Gaussian of rms ``offset_sigma_v``,
    drawn from circuit.tolerance.seed), unity-gain inverters of two ``r_inverter_ohm`` resistors, and
    supplies +/- ``supply_v`` that provide the output-stage load current plus ``i_quiescent_a`` per op-amp
    (energy metric). The knobs other than ``model`` are ignored by the ideal model.
    """

    model: Literal["ideal", "macro"] = "ideal"
    gain: float = Field(default=1e5, gt=1)
    gbw_hz: float | None = Field(default=1e7, gt=0)
    v_out_max_v: float | None = Field(default=None, gt=0)
    offset_v: float = 0.0
    offset_sigma_v: float = Field(default=0.0, ge=0)
    r_inverter_ohm: float = Field(default=1e4, gt=0)
    supply_v: float = Field(default=5.0, gt=0)
    i_quiescent_a: float = Field(default=0.0, ge=0)

    _fin = field_validator("gain", "gbw_hz", "v_out_max_v", "offset_v", "offset_sigma_v", "r_inverter_ohm",
                           "supply_v", "i_quiescent_a")(_finite)



class OpampCircuitConfig(CircuitBase):
    topology: Literal["opamp"] = "opamp"
    integrator: IntegratorConfig = IntegratorConfig()
    opamp: OpampConfig = OpampConfig()

    @model_validator(mode="after")
    def _knobs(self) -> "OpampCircuitConfig":
        if self.temperature.l_tc1_per_k != 0:
            raise ValueError("temperature.l_tc1_per_k does not apply to topology opamp (no inductors); remove it")
        return self
