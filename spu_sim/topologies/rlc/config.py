"""The ``circuit`` section of topology ``rlc``: the cell and bank element values, plus the shared tolerance /
quantization (c_bits only) / temperature sections. Knobs it has no element for are errors."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ...config.base import Strict, finite as _finite
from ..elements import CircuitBase


class RlcConfig(Strict):
    """Element values of the RLC unit-cell SPU (see spu_sim.topologies.rlc.design for the mapping).

    Cell i: grounded capacitor, inductor l_henry and resistor r_ohm (in series with the noise source) to
    ground; cells coupled all-to-all by capacitors. c_cell_farad: the total (Maxwell diagonal) capacitance
    of the cell with the largest A_ii; sets the scale gamma = c_cell_farad / max_i A_ii [F per unit of A],
    Cm = gamma A, and the time unit tau = sqrt(l_henry * c_cell_farad). coupling: ``ideal`` (one capacitor
    of the exact value per coupling) or ``switched`` (a bank of ``bits`` binary-weighted capacitors
    c_unit_farad * 2^k, each in series with an ngspice S switch of r_on_ohm / r_off_ohm driven by a
    control voltage of 0 or v_control_v; c_parasitic_farad from every switch node to ground).
    compensate_parasitics: trim the cell capacitor by the known parasitic load of the bank (calibration).
    v_swing_v: the node voltage of 4 standard deviations of the most variable cell.
    """

    c_cell_farad: float = Field(default=1e-9, gt=0)
    l_henry: float = Field(default=10e-6, gt=0)
    r_ohm: float = Field(default=100.0, gt=0)
    coupling: Literal["ideal", "switched"] = "switched"
    bits: int = Field(default=6, ge=1, le=16)
    c_unit_farad: float = Field(default=10e-12, gt=0)
    r_on_ohm: float = Field(default=1.0, gt=0)
    r_off_ohm: float = Field(default=1e9, gt=0)
    c_parasitic_farad: float = Field(default=1e-12, ge=0)
    v_control_v: float = Field(default=1.0, gt=0)
    compensate_parasitics: bool = True
    v_swing_v: float = Field(default=1.0, gt=0)

    _fin = field_validator("c_cell_farad", "l_henry", "r_ohm", "c_unit_farad", "r_on_ohm", "r_off_ohm",
                           "c_parasitic_farad", "v_control_v", "v_swing_v")(_finite)

    #: the knobs every coupling uses; the others are the switched banks' (an error with coupling: ideal)
    EVERY_COUPLING: ClassVar[tuple[str, ...]] = ("c_cell_farad", "l_henry", "r_ohm", "coupling", "v_swing_v")

    @model_validator(mode="after")
    def _switch(self) -> "RlcConfig":
        if self.r_off_ohm <= self.r_on_ohm:
            raise ValueError(f"r_off_ohm ({self.r_off_ohm:g}) must exceed r_on_ohm ({self.r_on_ohm:g})")
        if self.coupling == "ideal":      # a bank knob set to a value other than its default is not silently ignored
            for name, f in type(self).model_fields.items():
                value = getattr(self, name)
                if name not in self.EVERY_COUPLING and value != f.default:
                    raise ValueError(f"{name} = {value!r} is used only by coupling: switched (ideal coupling is one "
                                     f"exact capacitor per pair); set circuit.rlc.coupling: switched, or remove {name}")
        return self



class RlcCircuitConfig(CircuitBase):
    topology: Literal["rlc"] = "rlc"
    rlc: RlcConfig = RlcConfig()
    # accepted only to name why they do not apply (an op-amp topology's sections)
    integrator: dict[str, Any] | None = None
    opamp: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _knobs(self) -> "RlcCircuitConfig":
        """A knob the topology has no element for is an error, never silently ignored."""
        why = {"r_bits": "it has no programmable resistors", "dac_bits": "it has no b-DAC (the mean is 0)"}
        for key, reason in why.items():
            if getattr(self.quantization, key) is not None:
                raise ValueError(f"quantization.{key} does not apply to topology rlc ({reason}); remove it "
                                 "(rlc quantisation: rlc.bits for the coupling banks, quantization.c_bits "
                                 "for the cell capacitors)")
        for section in ("opamp", "integrator"):
            got = getattr(self, section)
            if got:
                raise ValueError(f"{section}.{next(iter(got))} does not apply to topology rlc (no op-amps or "
                                 f"integrators); remove the circuit.{section} section or use topology opamp")
        return self
