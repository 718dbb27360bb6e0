"""The circuit sections the shared parts read (each topology's ``circuit`` model embeds the ones it uses).

Every topology: ``tolerance``, ``quantization``, ``temperature`` (spu_sim.topologies.elements.CircuitBase holds
them). The op-amp topologies (opamp, opamp_factored, posterior_*; opamp_sc the op-amp model only): ``integrator``
(element ranges) and ``opamp`` (the op-amp model, spu_sim.parts.opamp).
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator, model_serializer, model_validator

from ..config.base import Seed, Strict, finite as _finite
from .subckt_opamp import resolve_file, shipped_cell


class ToleranceConfig(Strict):
    """Component tolerance and mismatch: each element value is multiplied by (1 + g)(1 + l), with g one
    Gaussian draw of rms ``global_rel`` per element kind (process) and l one draw of rms ``local_rel`` per
    element (mismatch). Drawn from ``seed`` (numpy PCG64, one stream per element group, so a draw is
    reproducible and does not depend on which other elements exist). 0 and 0 = exact nominal values."""

    global_rel: float = Field(default=0.0, ge=0, lt=0.5)
    local_rel: float = Field(default=0.0, ge=0, lt=0.5)
    seed: Seed = 0

    _fin = field_validator("global_rel", "local_rel")(_finite)


class QuantizationConfig(Strict):
    """Programming resolution. r_bits: every programmable conductance (coupling resistors, R_in) is
    rounded to the grid k * G_max / (2^bits - 1), G_max = 1 / circuit.integrator.r_min_ohm (k = 0 removes
    the resistor). c_bits: capacitors on the grid k * C_nom / 2^(bits-1) (C_f itself is on the grid, so this
    only matters with the RLC topology's coupling banks). dac_bits: the b-DAC voltages rounded to
    2 v_dac_max_v / 2^bits steps and clipped to +/- v_dac_max_v. null = exact."""

    r_bits: int | None = Field(default=None, ge=1, le=32)
    c_bits: int | None = Field(default=None, ge=1, le=32)
    dac_bits: int | None = Field(default=None, ge=1, le=32)


class TemperatureConfig(Strict):
    """Operating temperature. Resistors scale by 1 + r_tc1_per_k (temp_c - tnom_c), capacitors by
    1 + c_tc1_per_k (temp_c - tnom_c), inductors (rlc topology only) by 1 + l_tc1_per_k (temp_c - tnom_c)
    (values written into the netlist); temp_c also sets kT of the thermal noise in the ``.noise`` analysis
    (ngspice ``.temp``)."""

    temp_c: float = Field(default=27.0, gt=-273.15)
    tnom_c: float = Field(default=27.0, gt=-273.15)
    r_tc1_per_k: float = 0.0
    c_tc1_per_k: float = 0.0
    l_tc1_per_k: float = 0.0

    _fin = field_validator("temp_c", "tnom_c", "r_tc1_per_k", "c_tc1_per_k", "l_tc1_per_k")(_finite)


class IntegratorConfig(Strict):
    """Element ranges of an op-amp integrator network (see spu_sim.topologies.opamp.design for the mapping).

    c_farad: integrator feedback capacitor. r_min_ohm / r_max_ohm: realisable resistor range; the
    largest |A_ij| maps to r_min_ohm. v_swing_v: the largest node voltage the scaling aims for
    (mean + 4 sigma). v_dac_max_v: full scale of the DAC that drives b. noise_v_rms: rms of the
    noise-DAC samples (sets the noise resistor; never exceeded). r_noise_min_ohm: the smallest (fixed) noise
    resistor R_noise the design may use (it is not a programmable resistor, so it may lie below r_min_ohm).
    prune_below_relative: matrix entries with |A_ij| < prune * max|A| get no resistor (reported in the realised
    matrix); 0 = never prune.
    """

    c_farad: float = Field(default=1e-9, gt=0)
    r_min_ohm: float = Field(default=1e3, gt=0)
    r_max_ohm: float = Field(default=1e8, gt=0)
    v_swing_v: float = Field(default=1.0, gt=0)
    v_dac_max_v: float = Field(default=1.0, gt=0)
    noise_v_rms: float = Field(default=0.5, gt=0)
    r_noise_min_ohm: float = Field(default=10.0, gt=0)
    prune_below_relative: float = Field(default=0.0, ge=0, lt=1)

    _fin = field_validator("c_farad", "r_min_ohm", "r_max_ohm", "v_swing_v", "v_dac_max_v",
                           "noise_v_rms", "r_noise_min_ohm")(_finite)

    @model_validator(mode="after")
    def _range(self) -> "IntegratorConfig":
        if self.r_max_ohm <= self.r_min_ohm:
            raise ValueError(f"r_max_ohm ({self.r_max_ohm:g}) must exceed r_min_ohm ({self.r_min_ohm:g})")
        return self


class SubcktPinsConfig(Strict):
    """The pin names of the user's op-amp subcircuit (as its ``.subckt`` line spells them) for each role:
    non-inverting input, inverting input, output, positive and negative supply."""

    inp: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    inn: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    out: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    vdd: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    vss: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")

    @model_validator(mode="after")
    def _distinct(self) -> "SubcktPinsConfig":
        names = [v.lower() for v in (self.inp, self.inn, self.out, self.vdd, self.vss)]
        if len(set(names)) != 5:
            raise ValueError("the five pins inp, inn, out, vdd, vss must name five different pins of the subcircuit")
        return self


class SubcktConfig(Strict):
    """The designer's own op-amp (``circuit.opamp.model: subckt``): ``file`` (a SPICE file, relative to the config
    file) holding ``.subckt name ...``, and which of its pins is which. Only the include reaches the netlist; the file
    is scanned before ngspice runs (spu_sim.parts.subckt_opamp.scan_subckt_file)."""

    file: str = Field(min_length=1, max_length=4096)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    pins: SubcktPinsConfig

    @field_validator("file")
    @classmethod
    def _absolute(cls, v: str, info: ValidationInfo) -> str:
        """The file as an absolute path, a relative one resolved at load against the config file's folder (the
        validation context's ``base_dir``, spu_sim.config.load_config; without one the current folder)."""
        return resolve_file(v, (info.context or {}).get("base_dir"))


def check_subckt_section(model: str, subckt: SubcktConfig | None) -> None:
    """``subckt`` (the designer's op-amp) is given with model: subckt and only with it: ValueError otherwise (the one
    rule of every ``circuit.opamp`` section: OpampConfig's, and characterise's CellChoice)."""
    if model == "subckt" and subckt is None:
        raise ValueError("model: subckt needs circuit.opamp.subckt: {file, name, pins: {inp, inn, out, vdd, vss}}")
    if model != "subckt" and subckt is not None:
        raise ValueError(f"subckt is the designer's op-amp of model: subckt (model is {model}); set "
                         "circuit.opamp.model: subckt, or remove circuit.opamp.subckt")


class OpampConfig(Strict):
    """The op-amp model. ``ideal``: a nullor (virtual ground held exactly, no gain error).

    ``macro``: a real op-amp subcircuit per integrator, summer and inverter (spu_sim.parts.opamp and
    docs/nonideal.md): VCCS into a noiseless R-C pole (DC gain ``gain``, unity-gain frequency
    ``gbw_hz``; null = no pole), an output limited to +/- ``v_out_max_v`` (null = no limit; on the output
    node, after ``r_out_ohm``), input offset ``offset_v`` (plus a seeded per-op-amp Gaussian of rms ``offset_sigma_v``,
    drawn from circuit.tolerance.seed), unity-gain inverters of two ``r_inverter_ohm`` resistors, and
    supplies +/- ``supply_v`` that provide the output-stage load current plus ``i_quiescent_a`` per op-amp
    (energy metric). ``r_out_ohm``: output resistance in series with the output (0 = none), at every frequency
    unless ``r_out_pole_hz`` is set: then the open-loop output impedance falls above that pole to ``r_out_hf_ohm``,
    Z_out(f) = r_out_hf_ohm + (r_out_ohm - r_out_hf_ohm) / (1 + j f / r_out_pole_hz) (a Miller op-amp: its
    compensation capacitor shunts the output stage above the dominant pole; ``spu-sim characterise`` fits both);
    ``c_in_farad``: input capacitance from the inverting input to ground (0 = none). A knob the chosen model does not use is an
    error (``check_opamp_knobs``, called by every topology that has op-amps): the knobs other than ``model`` and
    the noise densities are the macromodel's unless a topology's ideal model uses them too.

    ``characterised`` (a transistor-level op-amp only): the folder ``spu-sim characterise`` wrote for this op-amp
    (relative to the config file); ``spu-sim compare`` then also runs the design with that macromodel, on the run's
    engine and on the linear engine, and reports the gap as the macromodel's error (spu_sim.parts.characterised).

    Noise (every op-amp of every topology, ideal model included; spu_sim.parts.intrinsic_noise): input voltage
    noise density ``en_v_per_rthz`` (V/sqrt(Hz), one-sided, in series with the + input), input current noise
    density ``in_a_per_rthz`` (A/sqrt(Hz), into the inverting input) and the 1/f corner ``flicker_corner_hz`` of
    the voltage noise (PSD en^2 (1 + f_c / f); 0 = white). 0 = noiseless (the default).
    """

    model: str = "ideal"
    gain: float = Field(default=1e5, gt=1)
    gbw_hz: float | None = Field(default=1e7, gt=0)
    v_out_max_v: float | None = Field(default=None, gt=0)
    offset_v: float = 0.0
    offset_sigma_v: float = Field(default=0.0, ge=0)
    r_inverter_ohm: float = Field(default=1e4, gt=0)
    supply_v: float = Field(default=5.0, gt=0)
    i_quiescent_a: float = Field(default=0.0, ge=0)
    en_v_per_rthz: float = Field(default=0.0, ge=0)
    in_a_per_rthz: float = Field(default=0.0, ge=0)
    flicker_corner_hz: float = Field(default=0.0, ge=0)
    r_out_ohm: float = Field(default=0.0, ge=0)
    r_out_hf_ohm: float | None = Field(default=None, ge=0)
    r_out_pole_hz: float | None = Field(default=None, gt=0)
    c_in_farad: float = Field(default=0.0, ge=0)
    subckt: SubcktConfig | None = None
    corner: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    characterised: str | None = Field(default=None, min_length=1, max_length=4096)

    @field_validator("characterised")
    @classmethod
    def _characterised_absolute(cls, v: str | None, info: ValidationInfo) -> str | None:
        """The characterise folder as an absolute path, resolved at load like SubcktConfig.file."""
        return None if v is None else resolve_file(v, (info.context or {}).get("base_dir"))

    _fin = field_validator("gain", "gbw_hz", "v_out_max_v", "offset_v", "offset_sigma_v", "r_inverter_ohm",
                           "supply_v", "i_quiescent_a", "en_v_per_rthz", "in_a_per_rthz",
                           "flicker_corner_hz", "r_out_ohm", "r_out_hf_ohm", "r_out_pole_hz", "c_in_farad")(_finite)

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """The ideal model's dump leaves out the macromodel knobs at their defaults (the nullor ignores them, and
        check_opamp_knobs refuses them when written out), so a resolved config loads again."""
        out = handler(self)
        if self.model == "ideal" and isinstance(out, dict):
            fields = type(self).model_fields
            for name in [k for k in out if k not in IDEAL_OPAMP_KNOBS and k in fields]:
                if getattr(self, name) == fields[name].default:
                    del out[name]
        return out

    @property
    def is_subckt(self) -> bool:
        """Whether the op-amp is a subcircuit (model: subckt or a shipped cell), not one of spu-sim's behavioural
        models (BEHAVIOURAL_OPAMP_MODELS)."""
        return self.model not in BEHAVIOURAL_OPAMP_MODELS

    @model_validator(mode="after")
    def _model(self) -> "OpampConfig":
        """``model`` is ideal, macro, subckt or a shipped cell (spu_sim.parts.subckt_opamp); ``subckt`` goes with
        model: subckt only, and the op-amp's own noise keys with the behavioural models only."""
        if self.model not in OPAMP_MODELS:
            cell = shipped_cell(self.model)   # a shipped transistor-level cell, or a ConfigError naming what there is
            if "supply_v" not in self.model_fields_set:   # the cell's own supplies (written back: a saved config says it)
                self.__dict__["supply_v"] = cell.supply_v
        check_subckt_section(self.model, self.subckt)
        if not self.is_subckt and self.characterised is not None:
            raise ValueError(f"characterised names the characterisation of a transistor-level op-amp (model: subckt or a "
                             f"shipped cell), which model: {self.model} is not; remove circuit.opamp.characterised")
        if not self.is_subckt and self.corner is not None:
            raise ValueError(f"corner selects a process section of a transistor-level op-amp (model: subckt or a shipped "
                             f"cell), not of model: {self.model}; remove circuit.opamp.corner")
        if self.is_subckt:
            for key in ("en_v_per_rthz", "in_a_per_rthz", "flicker_corner_hz"):
                if getattr(self, key):
                    raise ValueError(f"{key}: a transistor-level op-amp (model: {self.model}) has its own noise in its "
                                     "devices; remove circuit.opamp." + key)
        return self

    @model_validator(mode="after")
    def _r_out_pole(self) -> "OpampConfig":
        """r_out_hf_ohm and r_out_pole_hz go together, below a DC output resistance r_out_ohm."""
        if (self.r_out_hf_ohm is None) != (self.r_out_pole_hz is None):
            raise ValueError("r_out_hf_ohm and r_out_pole_hz describe one output-impedance pole: set both (Z_out falls "
                             "from r_out_ohm to r_out_hf_ohm above r_out_pole_hz) or neither")
        if self.r_out_hf_ohm is not None and not self.r_out_hf_ohm < self.r_out_ohm:
            raise ValueError(f"r_out_hf_ohm ({self.r_out_hf_ohm:g}) must lie below r_out_ohm ({self.r_out_ohm:g}), the "
                             "DC output resistance it falls from; raise r_out_ohm or remove r_out_hf_ohm and r_out_pole_hz")
        return self

    @model_validator(mode="after")
    def _flicker(self) -> "OpampConfig":
        if self.flicker_corner_hz > 0 and self.en_v_per_rthz == 0:
            raise ValueError("flicker_corner_hz is the corner of the voltage noise: set en_v_per_rthz > 0 too, "
                             "or flicker_corner_hz to 0")
        return self


class WiresConfig(Strict):
    """Parasitics of the resistor arrays (``circuit.wires``): every crossbar is built on real lines with one wire
    segment of ``r_ohm_per_segment`` between neighbouring cross-points (and from each line's terminal to its first
    cross-point) and ``c_farad_per_segment`` to ground at each line node (layout: spu_sim.circuit.ResistorArray).
    0 and 0 = ideal lines (no line nodes: the default, bit-identical to a circuit without this section). The IR
    drop grows about as r_ohm_per_segment G_cell N^2 / 2 along an N-cell line."""

    r_ohm_per_segment: float = Field(default=0.0, ge=0)
    c_farad_per_segment: float = Field(default=0.0, ge=0)

    _fin = field_validator("r_ohm_per_segment", "c_farad_per_segment")(_finite)

    @model_validator(mode="after")
    def _needs_r(self) -> "WiresConfig":
        if self.c_farad_per_segment > 0 and self.r_ohm_per_segment == 0:
            raise ValueError("c_farad_per_segment > 0 needs r_ohm_per_segment > 0 (a line without resistance is one "
                             "node); set r_ohm_per_segment")
        return self

    @property
    def on(self) -> bool:
        return self.r_ohm_per_segment > 0


#: the behavioural op-amp models (spu-sim's own: a nullor and the macromodel); every other ``circuit.opamp.model``
#: is a subcircuit (subckt or a shipped cell, spu_sim.parts.subckt_opamp)
BEHAVIOURAL_OPAMP_MODELS: tuple[str, ...] = ("ideal", "macro")
OPAMP_MODELS: tuple[str, ...] = (*BEHAVIOURAL_OPAMP_MODELS, "subckt")

#: the OpampConfig knobs a subcircuit op-amp (model: subckt or a shipped cell) uses besides ``model``: its supplies,
#: its process corner, the inverters' resistors; every other knob is the macromodel's
SUBCKT_OPAMP_KNOBS: tuple[str, ...] = ("subckt", "corner", "supply_v", "r_inverter_ohm", "characterised")

#: the OpampConfig knobs the ideal model (a nullor) uses in every topology; every other knob, a new one included,
#: is the macromodel's unless a topology lists it in its ``ideal_uses`` (check_opamp_knobs)
IDEAL_OPAMP_KNOBS: tuple[str, ...] = ("model", "en_v_per_rthz", "in_a_per_rthz", "flicker_corner_hz")


def check_opamp_knobs(oc: OpampConfig, topology: str, ideal_uses: tuple[str, ...] = (),
                      unused: dict[str, str] | None = None) -> None:
    """ValueError (one line, naming the model that would use it) for the first op-amp knob that the chosen model of
    ``topology`` does not use: a macromodel knob written out (at any value but 0 / null, which mean none) or set off its
    default with ``model: ideal`` (unless
    in ``ideal_uses``: knobs the topology's ideal op-amps use too), or a knob in ``unused`` ({knob: why}) that no
    model of this topology uses. Called from each topology's circuit-section validator."""
    for name, f in type(oc).model_fields.items():
        value = getattr(oc, name)
        # a macromodel knob written out with an ideal op-amp is refused even at its default value (gain: 1.0e5);
        # 0 / null ("none": r_out_ohm: 0, v_out_max_v: null) is what the nullor has anyway
        written = (name in oc.model_fields_set and oc.model == "ideal" and name not in ideal_uses
                   and value is not None and value != 0)
        if name in IDEAL_OPAMP_KNOBS or (value == f.default and not written):
            continue
        if oc.is_subckt:
            if name in SUBCKT_OPAMP_KNOBS and not (unused and name in unused):
                continue
            if name not in SUBCKT_OPAMP_KNOBS:
                raise ValueError(f"opamp.{name} = {value!r} is a knob of model: macro; a subcircuit op-amp (model: "
                                 f"{oc.model}) is what its devices make it; remove {name}")
        if unused and name in unused:
            raise ValueError(f"opamp.{name} = {value!r} does not apply to topology {topology} ({unused[name]}); remove it")
        if oc.model == "ideal" and name not in ideal_uses:
            raise ValueError(f"opamp.{name} = {value!r} is used only by model: macro (the ideal op-amp is a nullor and "
                             f"ignores it); set circuit.opamp.model: macro, or remove {name}")
