"""The ``circuit`` section of topology ``opamp_sc``: the clock, the capacitor banks, the switches, the noise
sources, the op-amp model (``circuit.opamp``: spu_sim.parts.config.OpampConfig, as every op-amp topology) and the
shared tolerance / quantization / temperature sections (spu_sim.topologies.elements.CircuitBase)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...config.base import Strict, finite as _finite
from ...parts.config import OpampConfig, check_opamp_knobs
from ..elements import CircuitBase


class SwitchedCapConfig(Strict):
    """Switched-capacitor coupling (see spu_sim.topologies.opamp_sc.design for the equations).

    Clock: ``f_clk_hz`` (two non-overlapping phases per period T = 1/f_clk), ``f_clk_tau`` = clock periods
    per problem time unit tau (so tau = f_clk_tau / f_clk_hz seconds and one period is h = 1/f_clk_tau tau),
    ``t_nonoverlap_s`` (gap between the phases), ``t_edge_s`` (clock rise and fall), ``v_clk_v`` (clock
    high level; switches close above v_clk_v / 2).
    Banks: ``bits`` binary-weighted unit capacitors of ``c_unit_farad`` per branch; the largest |A_ij| gets
    the full code 2^bits - 1. ``c_bottom_plate_rel``: parasitic from each unit capacitor's bottom plate to
    ground (relative to its value, every bit, set or not); ``c_top_plate_farad``: parasitic on each
    branch's input-side switch node.
    Switches: ``r_on_ohm`` / ``r_off_ohm``; ``c_overlap_farad`` (clock feedthrough: a gate-to-terminal
    capacitance on both terminals of every switch) and ``q_injection_c`` (charge injection: the channel
    charge released at turn-off, half to each side, modelled as the gate-to-terminal capacitance
    q / (2 v_clk)); both 0 = ideal. The theory includes their offset in the fast-switch limit
    (design.OpampScDesign.feedthrough_offset_v).
    Signals: ``v_swing_v`` (node swing at mean + 4 sigma), ``v_dac_max_v`` (DAC full scale of b),
    ``noise_v_rms`` (rms of the injected noise DAC's held samples).
    Noise: ``injected_noise`` (the noise DAC that realises kappa), ``ktc_noise`` (kT/C of every sampling
    capacitor at every phase, at circuit.temperature.temp_c): either, both or neither.
    """

    f_clk_hz: float = Field(default=1e6, gt=0)
    f_clk_tau: float = Field(default=20.0, gt=0)
    t_nonoverlap_s: float = Field(default=2e-8, gt=0)
    t_edge_s: float = Field(default=1e-9, gt=0)
    v_clk_v: float = Field(default=1.8, gt=0)
    bits: int = Field(default=6, ge=1, le=16)
    c_unit_farad: float = Field(default=1e-14, gt=0)
    c_bottom_plate_rel: float = Field(default=0.1, ge=0, le=1)
    c_top_plate_farad: float = Field(default=0.0, ge=0)
    r_on_ohm: float = Field(default=1e3, gt=0)
    r_off_ohm: float = Field(default=1e12, gt=0)
    c_overlap_farad: float = Field(default=0.0, ge=0)
    q_injection_c: float = Field(default=0.0, ge=0)
    v_swing_v: float = Field(default=1.0, gt=0)
    v_dac_max_v: float = Field(default=1.0, gt=0)
    noise_v_rms: float = Field(default=0.5, gt=0)
    injected_noise: bool = True
    ktc_noise: bool = True

    _fin = field_validator("f_clk_hz", "f_clk_tau", "t_nonoverlap_s", "t_edge_s", "v_clk_v", "c_unit_farad",
                           "c_bottom_plate_rel", "c_top_plate_farad", "r_on_ohm", "r_off_ohm", "c_overlap_farad",
                           "q_injection_c", "v_swing_v", "v_dac_max_v", "noise_v_rms")(_finite)

    @model_validator(mode="after")
    def _timing(self) -> "SwitchedCapConfig":
        half = 0.5 / self.f_clk_hz
        if self.t_nonoverlap_s + self.t_edge_s >= 0.5 * half:
            raise ValueError(f"t_nonoverlap_s + t_edge_s ({self.t_nonoverlap_s + self.t_edge_s:.3g} s) must be below a "
                             f"quarter clock period ({0.5 * half:.3g} s at f_clk_hz = {self.f_clk_hz:.3g}); "
                             "shorten them or lower f_clk_hz")
        if self.r_off_ohm <= self.r_on_ohm:
            raise ValueError(f"r_off_ohm ({self.r_off_ohm:g}) must exceed r_on_ohm ({self.r_on_ohm:g})")
        return self


class OpampScCircuitConfig(CircuitBase):
    topology: Literal["opamp_sc"] = "opamp_sc"
    sc: SwitchedCapConfig = SwitchedCapConfig()
    opamp: OpampConfig = OpampConfig()

    @model_validator(mode="after")
    def _knobs(self) -> "OpampScCircuitConfig":
        q, t = self.quantization, self.temperature
        if q.r_bits is not None or q.c_bits is not None:
            raise ValueError("quantization.r_bits / c_bits do not apply to topology opamp_sc (the banks are "
                             "circuit.sc.bits); remove them")
        if t.r_tc1_per_k != 0 or t.l_tc1_per_k != 0:
            raise ValueError("temperature.r_tc1_per_k / l_tc1_per_k do not apply to topology opamp_sc (no resistors "
                             "or inductors in the signal path); remove them")
        if self.thermal_noise:
            raise ValueError("thermal_noise does not apply to topology opamp_sc: its only resistors are the switches', "
                             "whose thermal noise is the kT/C noise it samples (circuit.sc.ktc_noise, on by default); "
                             "remove thermal_noise")
        check_opamp_knobs(self.opamp, "opamp_sc", unused={"r_inverter_ohm": "no inverters: the branches invert by clock phase"})
        return self
