"""Characterise a transistor-level op-amp in ngspice and write it as a ``circuit.opamp`` section of the macromodel.

    metrics = run_characterise("configs/characterise_sky130_miller.yaml", "runs/char")
    # CLI: spu-sim characterise CONFIG --out DIR

CONFIG names the op-amp in ``circuit.opamp.model``: a shipped cell of spu_sim.parts.opamp_cells (sky130_miller,
sky130_ota5t, gf180_miller; ``circuit.opamp.corner``: tt, ff, ss, fs, sf) or ``subckt``, the designer's own
subcircuit (``circuit.opamp.subckt: {file, name, pins: {inp, inn, out, vdd, vss}}``, its rails ``supply_v``
(required) and optionally ``corner``, a ``.lib`` section of the file; scanned by spu_sim.parts.subckt_opamp exactly as
for a run). The temperature is ``circuit.temperature.temp_c`` (``.temp``), the testbench the optional
``characterise`` section. The other sections of an SPU config (problem, simulation, readout, the rest of circuit)
may be present and are not read, so the file that characterises an op-amp can be the file that runs it.

One netlist, one ngspice run (the process models load once), six copies of the cell on shared ideal supplies
vdd = +supply_v, vss = -supply_v (each bench is its own circuit; ideal supplies couple nothing):

    OL   open loop for AC: inp driven (VOLP, AC 1), out fed back to inn through LOL = 1 GH and inn held to AC ground
         by COL = 1 F: the DC loop is closed (unity follower, so the operating point is the real one with its
         offset), the AC loop open above ~1e-4 Hz; 6 Gohm at 1 Hz, so it does not load the output. A(f) = V(out) / (V(inp) - V(inn)), exact whatever the residual
         loop. Load: c_load_farad.
    OLR  the same with r_load_ohm || c_load_farad: the loaded gain, checked against A0 R_L / (R_L + r_out).
    ZO   the OL bench with inp at AC ground and an AC current of 1 A into out (no load): Z_out(f); r_out_ohm is its
         real part at f_start_hz (open loop, below the dominant pole).
    F    unity follower at inp = 0 V, no load, on its own supply sources: offset_v = V(out) - V(inp) at .op (the
         macromodel's VOS in series with the + input gives V(out) = offset A0 / (1 + A0)), i_quiescent_a = the
         current from its vdd (equal to the current into vss with no load).
    INV  inverting amplifier of gain -1 (R_in = R_f = r_load_ohm) with r_load_ohm to ground at out, its input swept
         over +/-(1.5 supply_v) (.dc): the output error e = V(out) minus its tangent at V_in = 0 (the linear
         response, with the finite-gain error and offset the macromodel has anyway); the swing is the range of
         V(out) over which |e| <= swing_tolerance_v; v_out_max_v is the smaller of its two ends (the macromodel
         clips symmetrically).
    IN   the OL bench with inp shorted to ground by VNI (0 V, AC 1) and HNI = 1 ohm x i(VNI): .noise at v(hni) is the
         short-circuit noise current of the input, in A/sqrt(Hz).

Analyses (a .control block: ``ngspice -b characterise.cir`` in the output folder reruns it; sky130 cells need
``-D ngbehavior=hsa`` as the netlist header says): .op, .ac (dec points_per_decade, f_start_hz .. f_stop_hz), .dc of
INV, .noise v(out) of OL referred to VOLP (input-referred voltage noise e_n(f)), .noise v(hni) of IN.

Fits (written as the macromodel's keys, spu_sim.parts.config.OpampConfig):

    gain, gbw_hz      least squares of 1 / A(f) = 1 / A0 + j f / GBW over f <= f_u / 10 (f_u: |A| = 1), each point
                      weighted by |A(f)|^2 (equal relative weight): the single-pole model the macromodel realises,
                      fitted where the second pole is negligible. f_u and the phase margin 180 + arg A(f_u) are
                      reported beside it (f_u < GBW when the second pole sits near f_u).
    en_v_per_rthz,    e_n(f)^2 = en^2 (1 + f_c / f) (the macromodel's PSD) by linear least squares in (en^2, en^2 f_c)
    flicker_corner_hz over f_start_hz .. f_u / 3 (below the rise of the second stage), relative weights; f_c = 0 when the fit gives a negative slope.
    in_a_per_rthz     the input's noise current at f_report_hz (MOS inputs: capacitive, rising with f; the macromodel
                      takes one white density).
    c_in_farad        C_in = Im(Y_in) / (2 pi f) at f_report_hz of the inverting input (bench CI: the OL bench with
                      inn driven by VCI, AC 1, in series with COL; Y_in = (-i(VCI) - i(LCI)) / V(inn), the feedback
                      inductor's current (V(inn) - V(out)) / (j w L) subtracted), open loop, so it includes the
                      Miller multiplication of the first stage at that frequency.
    r_out_ohm,        the open-loop output impedance Z_out(f) of bench ZO as r_out_ohm = Re Z_out(f_start_hz) and
    r_out_hf_ohm,     the zero/pole pair the macromodel realises (spu_sim.parts.opamp.output_impedance):
    r_out_pole_hz     Z(f) = r_hf + (r_out - r_hf) / (1 + j f / f_p), r_hf >= 0 and f_p by least squares of the
                      relative complex error over f <= f_u / 10 (as the gain), started from the linear fit of
                      Z - r_out = -j f (Z - r_hf) / f_p. A Miller op-amp's output impedance falls above its dominant
                      pole (the compensation capacitor closes a local loop round the output stage: sky130_miller 53
                      kohm -> 0.6 kohm), a one-stage OTA's falls to ~0 (its output node capacitance). When Z_out falls
                      by less than Z_FLAT_REL over the band, or the fitted pole lies outside it, the section has no
                      pole (r_out_ohm at every frequency). z_out_fit_max_rel_err: the fit's largest relative error.
    offset_v, i_quiescent_a, v_out_max_v, supply_v   as above.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import least_squares
from pydantic import Field, field_validator, model_validator

from .. import io
from ..config import Strict, load_config
from ..config.base import finite as _finite, read_yaml
from ..engines.ngspice_subprocess import NgspiceSubprocess
from ..engines.progress import elapsed_line
from ..errors import ConfigError, ResultError
from ..parts.config import BEHAVIOURAL_OPAMP_MODELS, OpampConfig, SubcktConfig, TemperatureConfig, check_subckt_section
from ..parts.opamp_cells import CELL_NAMES, CORNERS, cell_spec, format_model_file
from ..parts.subckt_opamp import PIN_ROLES, subckt_from_config
from ..pipeline import staged
from ..plotting import pyplot, save_png

ENGINE = "ngspice-subprocess"
NETLIST = "characterise.cir"
RAW = "characterise.raw"
NPZ = "characterise.npz"
METRICS = "metrics.json"
MACRO_YAML = "opamp_macro.yaml"
CONFIG_COPY = "characterise_config.yaml"
L_FEEDBACK_H = 1e9      # LOL: closes the DC loop, open for AC above ~1e-4 Hz with COL, and 6 Gohm at 1 Hz: no load
C_GROUND_F = 1.0        # COL: holds inn at AC ground
SECTIONS_NOT_READ = ("problem", "simulation", "readout")
Z_FLAT_REL = 0.01       # Z_out falling by less than this fraction over the fit band: no output-impedance pole


class CellChoice(Strict):
    """``circuit.opamp`` for characterise: a shipped cell and its process corner, or ``model: subckt`` with the
    designer's ``subckt`` section, its rails ``supply_v`` and optionally a ``.lib`` section ``corner``."""

    model: str
    corner: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    subckt: SubcktConfig | None = None
    supply_v: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _choice(self) -> "CellChoice":
        cells = ", ".join(CELL_NAMES)
        if self.model in BEHAVIOURAL_OPAMP_MODELS:
            raise ValueError(f"model: {self.model!r} is not a transistor-level op-amp (nothing to characterise); "
                             f"choose one of: {cells}, subckt")
        check_subckt_section(self.model, self.subckt)
        if self.model == "subckt":
            if self.supply_v is None:
                raise ValueError("model: subckt needs circuit.opamp.supply_v, the magnitude of its rails (vdd = "
                                 "+supply_v, vss = -supply_v)")
            return self
        if self.model not in CELL_NAMES:
            raise ValueError(f"model: {self.model!r} is not a shipped op-amp cell; choose one of: {cells}, subckt")
        if self.supply_v is not None:
            raise ValueError(f"supply_v: cell {self.model} has its own supplies; remove circuit.opamp.supply_v")
        if self.corner is not None and self.corner not in CORNERS:
            raise ValueError(f"corner: {self.corner!r} is not a corner of {self.model}; choose one of: "
                             f"{', '.join(CORNERS)}")
        return self


@dataclass(frozen=True)
class BenchCell:
    """The op-amp as the testbench needs it: the netlist lines that load it, its pins' roles in its ``.subckt`` line
    order, its rails, the ngspice variables it asks for, and what it is (for metrics and the header)."""

    name: str              # the cell name, or the subcircuit's name (model: subckt)
    summary: str
    source: str            # the PDK package (shipped cell) or "user subcircuit <file>"
    file: str
    subckt: str
    supply_v: float
    corner: str | None
    lines: tuple
    pin_roles: tuple = PIN_ROLES
    args: tuple = ()
    spiceinit: str = ""

    def instance(self, tag: str, inp: str, inn: str, out: str, vdd: str, vss: str) -> str:
        node = {"inp": inp, "inn": inn, "out": out, "vdd": vdd, "vss": vss}
        return f"X{tag} {' '.join(node[r] for r in self.pin_roles)} {self.subckt}"


def bench_cell(oc: CellChoice) -> BenchCell:
    """The BenchCell of circuit.opamp, its files checked before anything runs (BadInputError: a missing PDK, a
    subcircuit file that fails the pre-flight scan of spu_sim.parts.subckt_opamp)."""
    if oc.model == "subckt":
        sub = subckt_from_config(OpampConfig(model="subckt", subckt=oc.subckt, supply_v=oc.supply_v, corner=oc.corner))
        line = format_model_file(Path(sub.file), sub.section, "circuit.opamp.subckt.file")
        return BenchCell(sub.name, "the designer's subcircuit", f"user subcircuit {sub.file}", sub.file, sub.name,
                         sub.supply_v, sub.section, (line,), sub.pin_roles)
    spec = cell_spec(oc.model)
    corner = oc.corner or spec.default_corner
    return BenchCell(spec.name, spec.summary, f"{spec.process.distribution}=={spec.process.version}", str(spec.file),
                     spec.subckt, spec.supply_v, corner, tuple(spec.model_lines(corner)), spec.pins,
                     tuple(spec.ngspice_args()), spec.spiceinit_text())


class CharacteriseCircuit(Strict):
    opamp: CellChoice
    temperature: TemperatureConfig = TemperatureConfig()


class CharacteriseSettings(Strict):
    """The testbench (``characterise`` section; module doc): r_load_ohm the resistive load of OLR and INV (an SPU
    op-amp drives resistor arrays of a few 10 kohm .. 100 kohm); c_load_farad the capacitive load of OL and OLR;
    the .ac / .noise band f_start_hz .. f_stop_hz at points_per_decade; f_report_hz where the current noise and the
    input capacitance are read; swing_tolerance_v the output error that ends the swing; timeout_s of the ngspice
    run."""

    r_load_ohm: float = Field(default=20e3, gt=0)
    c_load_farad: float = Field(default=10e-12, ge=0)
    f_start_hz: float = Field(default=1.0, gt=0)
    f_stop_hz: float = Field(default=1e9, gt=0)
    points_per_decade: int = Field(default=20, ge=5, le=200)
    f_report_hz: float = Field(default=1e3, gt=0)
    swing_tolerance_v: float = Field(default=0.01, gt=0)
    timeout_s: float = Field(default=300.0, gt=0)

    _fin = field_validator("r_load_ohm", "c_load_farad", "f_start_hz", "f_stop_hz", "f_report_hz",
                           "swing_tolerance_v", "timeout_s")(_finite)

    @model_validator(mode="after")
    def _band(self) -> "CharacteriseSettings":
        if self.f_stop_hz < 1e4 * self.f_start_hz:
            raise ValueError(f"f_stop_hz ({self.f_stop_hz:g}) must be at least 1e4 x f_start_hz ({self.f_start_hz:g}): "
                             "the gain fit needs the flat gain and the roll-off to unity")
        if not self.f_start_hz <= self.f_report_hz <= self.f_stop_hz:
            raise ValueError(f"f_report_hz ({self.f_report_hz:g}) must lie in f_start_hz .. f_stop_hz")
        return self


class CharacteriseConfig(Strict):
    circuit: CharacteriseCircuit
    characterise: CharacteriseSettings = CharacteriseSettings()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_characterise_config(source: str | Path | dict) -> CharacteriseConfig:
    """The sections characterise reads (module doc), validated; ConfigError (one line) otherwise."""
    data, base_dir = read_yaml(source) if isinstance(source, (str, Path)) else (source, None)
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping of sections (circuit, characterise, ...)")
    unknown = [k for k in data if k not in ("circuit", "characterise", *SECTIONS_NOT_READ)]
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; valid sections here: circuit, characterise "
                          f"(and {', '.join(SECTIONS_NOT_READ)}, which characterise does not read)")
    circuit = data.get("circuit")
    if not isinstance(circuit, dict) or "opamp" not in circuit:
        raise ConfigError("circuit.opamp: required key is missing (circuit.opamp.model names the cell: "
                          f"{', '.join(CELL_NAMES)})")
    picked = {"circuit": {k: circuit[k] for k in ("opamp", "temperature") if k in circuit}}
    if "characterise" in data:
        picked["characterise"] = data["characterise"]
    return load_config(picked, CharacteriseConfig, base_dir)    # a relative subckt.file: relative to the config file


# ---------------------------------------------------------------- the testbench netlist

def format_testbench(spec: BenchCell, cfg: CharacteriseConfig) -> str:
    """The whole testbench netlist (module doc)."""
    s, ch = spec.supply_v, cfg.characterise
    x = spec.instance
    sweep_v = 1.5 * s
    step_v = sweep_v / 300
    band = f"dec {ch.points_per_decade} {ch.f_start_hz:.6g} {ch.f_stop_hz:.6g}"
    run = " ".join(["ngspice", *spec.args, "-b", NETLIST])
    L = [f"* spu-sim characterise: {spec.name} ({spec.summary}), corner {spec.corner}, "
         f"{cfg.circuit.temperature.temp_c:g} C",
         f"* Run: {run} (in this folder) writes {RAW}", "",
         *spec.lines, "",
         f"VDD vdd 0 {s:.6g}", f"VSS vss 0 {-s:.6g}", "",
         "* OL: open loop for AC (LOL closes the DC loop, COL holds inn at AC ground)",
         x("OL", "olp", "oln", "olo", "vdd", "vss"),
         "VOLP olp 0 DC 0 AC 1", f"LOL olo oln {L_FEEDBACK_H:g}", f"COL oln 0 {C_GROUND_F:g}"]
    if ch.c_load_farad > 0:
        L.append(f"CLOL olo 0 {ch.c_load_farad:.6g}")
    L += ["* OLR: the same with the resistive load",
          x("OLR", "orp", "orn", "oro", "vdd", "vss"),
          "VORP orp 0 DC 0 AC 1", f"LOR oro orn {L_FEEDBACK_H:g}", f"COR orn 0 {C_GROUND_F:g}",
          f"RLOR oro 0 {ch.r_load_ohm:.6g}"]
    if ch.c_load_farad > 0:
        L.append(f"CLOR oro 0 {ch.c_load_farad:.6g}")
    L += ["* ZO: open-loop output impedance (1 A AC into out)",
          x("ZO", "0", "zon", "zoo", "vdd", "vss"),
          f"LZO zoo zon {L_FEEDBACK_H:g}", f"CZO zon 0 {C_GROUND_F:g}", "IZO 0 zoo DC 0 AC 1",
          "* CI: input admittance of inn (VCI drives inn through COL's place), open loop",
          x("CI", "0", "cin", "cio", "vdd", "vss"),
          f"LCI cio cin {L_FEEDBACK_H:g}", "VCI cin cix DC 0 AC 1", f"CCI cix 0 {C_GROUND_F:g}",
          "* F: unity follower for the offset and the quiescent current (own supply sources, no load)",
          x("F", "0", "fo", "fo", "vddf", "vssf"),
          f"VDDF vddf 0 {s:.6g}", f"VSSF vssf 0 {-s:.6g}",
          "* INV: inverting amplifier of gain -1 for the output swing (.dc of VSW)",
          x("INV", "0", "ivn", "ivo", "vdd", "vss"),
          "VSW ivs 0 DC 0", f"RIN ivs ivn {ch.r_load_ohm:.6g}", f"RIF ivn ivo {ch.r_load_ohm:.6g}",
          f"RIL ivo 0 {ch.r_load_ohm:.6g}",
          "* IN: the input's short-circuit noise current (1 ohm transresistance into hni)",
          x("IN", "nip", "nin", "nio", "vdd", "vss"),
          "VNI nip 0 DC 0 AC 1", f"LIN nio nin {L_FEEDBACK_H:g}", f"CIN nin 0 {C_GROUND_F:g}", "HNI hni 0 VNI 1", "",
          f".temp {cfg.circuit.temperature.temp_c:.6g}",
          ".control", "set filetype=binary", "unset appendwrite", "op", f"write {RAW}", "set appendwrite",
          f"ac {band}", f"write {RAW}",
          f"dc VSW {-sweep_v:.6g} {sweep_v:.6g} {step_v:.6g}", f"write {RAW}",
          f"noise v(hni) VNI {band}", "setplot noise1", f"write {RAW}", "setplot noise2", f"write {RAW}",
          f"noise v(olo) VOLP {band}", "setplot noise3", f"write {RAW}", "setplot noise4", f"write {RAW}",
          "quit", ".endc", ".end"]
    return "\n".join(L) + "\n"


def run_testbench(spec: BenchCell, cfg: CharacteriseConfig, folder: Path) -> dict:
    """Write folder/characterise.cir, run it in folder/characterise_run (with the cell's .spiceinit) and return the
    plots (op, ac, dc, noise_0 = the voltage noise, noise_1 = the current noise: ngspice's plots in reverse order
    of the noise commands, spu_sim.engines.raw.number_noise_plots)."""
    text = format_testbench(spec, cfg)
    io.atomic_write_text(folder / NETLIST, text)
    run_dir = folder / "characterise_run"
    run_dir.mkdir(exist_ok=True)
    try:
        io.atomic_write_text(run_dir / NETLIST, text)
        if spec.spiceinit:
            io.atomic_write_text(run_dir / ".spiceinit", spec.spiceinit)
        return NgspiceSubprocess().run_netlist(run_dir / NETLIST, timeout_s=cfg.characterise.timeout_s)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


# ---------------------------------------------------------------- fits

def _v(plot, name: str) -> np.ndarray:
    return np.asarray(plot.vectors[name.lower()])


def unity_crossing_hz(f_hz: np.ndarray, mag: np.ndarray) -> float:
    """First frequency where |A| falls through 1 (log-log interpolation); ResultError when it never does."""
    below = np.nonzero(mag < 1.0)[0]
    if below.size == 0 or below[0] == 0:
        raise ResultError("characterise: the open-loop gain never crosses 1 inside f_start_hz .. f_stop_hz; widen the "
                          "band (characterise.f_stop_hz)")
    k = below[0]
    lf, lm = np.log(f_hz[k - 1:k + 1]), np.log(mag[k - 1:k + 1])
    return float(np.exp(lf[0] + (0 - lm[0]) * (lf[1] - lf[0]) / (lm[1] - lm[0])))


def fit_single_pole(f_hz: np.ndarray, a: np.ndarray, f_max_hz: float) -> tuple[float, float]:
    """(A0, GBW) of 1 / A(f) = 1 / A0 + j f / GBW by weighted least squares over f <= f_max_hz (module doc)."""
    m = f_hz <= f_max_hz
    if m.sum() < 3:
        raise ResultError("characterise: fewer than 3 frequency points below f_u / 10; lower characterise.f_start_hz "
                          "or raise points_per_decade")
    inv, f, w = 1.0 / a[m], f_hz[m], np.abs(a[m]) ** 2
    inv_a0 = float(np.sum(w * inv.real) / np.sum(w))
    inv_gbw = float(np.sum(w * f * inv.imag) / np.sum(w * f * f))
    return 1.0 / inv_a0, 1.0 / inv_gbw


def output_impedance_model(f_hz: np.ndarray, r_out_ohm: float, r_hf_ohm: float, f_pole_hz: float) -> np.ndarray:
    """Z(f) = r_hf + (r_out - r_hf) / (1 + j f / f_pole): the macromodel's output impedance (r_out_pole_hz)."""
    return r_hf_ohm + (r_out_ohm - r_hf_ohm) / (1 + 1j * f_hz / f_pole_hz)


def fit_output_impedance(f_hz: np.ndarray, z_ohm: np.ndarray, r_out_ohm: float,
                         f_max_hz: float) -> tuple[float | None, float | None, float]:
    """(r_hf_ohm, f_pole_hz, largest relative error) of Z(f) = r_hf + (r_out - r_hf) / (1 + j f / f_pole) fitted to
    z_ohm over f <= f_max_hz (module doc); (None, None, error of the flat r_out_ohm) when Z_out does not fall by
    Z_FLAT_REL over the band or the fitted pole lies outside it."""
    m = f_hz <= f_max_hz
    f, z = f_hz[m], z_ohm[m]
    flat_err = float(np.max(np.abs(z - r_out_ohm) / np.abs(z)))
    if r_out_ohm <= 0 or m.sum() < 3 or np.min(np.abs(z)) > (1 - Z_FLAT_REL) * r_out_ohm:
        return None, None, flat_err
    # linear start: Z - r_out = -j f a Z + j f b (a = 1 / f_pole, b = r_hf / f_pole), relative weights
    w = 1.0 / np.abs(z)
    X = np.column_stack([-1j * f * z, 1j * f]) * w[:, None]
    y = (z - r_out_ohm) * w
    a, b = np.linalg.lstsq(np.vstack([X.real, X.imag]), np.concatenate([y.real, y.imag]), rcond=None)[0]
    f0 = 1.0 / a if a > 0 else float(np.sqrt(f[0] * f[-1]))
    r0 = float(np.clip(b * f0, 0.0, 0.5 * r_out_ohm))

    def residual(p):
        e = (output_impedance_model(f, r_out_ohm, p[0], p[1]) - z) / np.abs(z)
        return np.concatenate([e.real, e.imag])
    fit = least_squares(residual, [r0, f0], bounds=([0.0, f[0] / 10], [r_out_ohm * (1 - Z_FLAT_REL), f[-1] * 10]),
                        x_scale=[max(r0, 1e-3 * r_out_ohm), f0])
    r_hf, f_p = float(fit.x[0]), float(fit.x[1])
    if not f[0] <= f_p <= f[-1]:
        return None, None, flat_err
    err = float(np.max(np.abs(output_impedance_model(f, r_out_ohm, r_hf, f_p) - z) / np.abs(z)))
    return r_hf, f_p, err


def fit_flicker(f_hz: np.ndarray, psd: np.ndarray) -> tuple[float, float]:
    """(en, f_c) of psd(f) = en^2 (1 + f_c / f) by least squares with relative weights (module doc)."""
    X = np.column_stack([np.ones_like(f_hz), 1.0 / f_hz]) / psd[:, None]
    coef = np.linalg.lstsq(X, np.ones_like(f_hz), rcond=None)[0]
    a, b = float(coef[0]), float(coef[1])
    if a <= 0:      # all 1/f over the band: the white floor is the smallest density seen
        return float(np.sqrt(psd.min())), float(f_hz[np.argmin(psd)])
    return float(np.sqrt(a)), max(b / a, 0.0)


def swing_limits(v_in: np.ndarray, v_out: np.ndarray, tol_v: float) -> tuple[float, float]:
    """(lowest, highest) V(out) of INV within tol_v of its linear response: the tangent at the sweep point nearest
    V_in = 0 (its slope -1 / (1 + 2 / A_loaded), the finite-gain error the macromodel already has, and its offset),
    contiguous from that point. So the swing is where the output saturates, not where the loop gain runs out."""
    k0 = int(np.clip(np.argmin(np.abs(v_in)), 1, len(v_in) - 2))
    slope = (v_out[k0 + 1] - v_out[k0 - 1]) / (v_in[k0 + 1] - v_in[k0 - 1])
    if not slope < 0:
        raise ResultError(f"characterise: the inverting bench's output rises with its input (slope {slope:.3g}) at 0 V: "
                          "the cell does not work as an op-amp at this corner/temperature (or its inputs are swapped)")
    ok = np.abs(v_out - (v_out[k0] + slope * (v_in - v_in[k0]))) <= tol_v
    lo = k0
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    hi = k0
    while hi < len(ok) - 1 and ok[hi + 1]:
        hi += 1
    vals = v_out[lo:hi + 1]
    return float(vals.min()), float(vals.max())


def analyse(plots: dict, spec: BenchCell, cfg: CharacteriseConfig) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metrics, arrays) from the testbench plots (module doc)."""
    ch = cfg.characterise
    op, ac, dc = plots["op"], plots["ac"], plots["dc"]
    f = np.real(ac.axis)
    a_ol = _v(ac, "v(olo)") / (_v(ac, "v(olp)") - _v(ac, "v(oln)"))
    a_olr = _v(ac, "v(oro)") / (_v(ac, "v(orp)") - _v(ac, "v(orn)"))
    mag = np.abs(a_ol)
    f_u = unity_crossing_hz(f, mag)
    phase_deg = np.degrees(np.unwrap(np.angle(a_ol)))
    pm_deg = float(180.0 + np.interp(np.log(f_u), np.log(f), phase_deg))
    gain, gbw = fit_single_pole(f, a_ol, f_u / 10)
    z_out = _v(ac, "v(zoo)")
    r_out = float(np.real(z_out[0]))
    r_hf, f_zp, z_err = fit_output_impedance(f, z_out, r_out, f_u / 10)
    k_rep = int(np.argmin(np.abs(np.log(f / ch.f_report_hz))))
    i_l = (_v(ac, "v(cin)") - _v(ac, "v(cio)")) / (2j * np.pi * f * L_FEEDBACK_H)   # the current into LCI
    y_in = (-_v(ac, "i(vci)") - i_l) / _v(ac, "v(cin)")
    c_in = float(np.imag(y_in[k_rep]) / (2 * np.pi * f[k_rep]))
    offset = float(np.real(_v(op, "v(fo)"))[0])
    iq = float(-np.real(_v(op, "i(vddf)"))[0])
    iq_vss = float(np.real(_v(op, "i(vssf)"))[0])
    v_in, v_out = np.real(dc.axis), np.real(_v(dc, "v(ivo)"))
    sw_lo, sw_hi = swing_limits(v_in, v_out, ch.swing_tolerance_v)
    nz_v, nz_i = plots["noise_0"], plots["noise_1"]
    fn = np.real(nz_v.axis)
    en_f = np.real(_v(nz_v, "inoise_spectrum"))
    in_f = np.real(_v(nz_i, "onoise_spectrum"))
    band = (fn >= ch.f_start_hz) & (fn <= f_u / 3)
    if band.sum() < 3:
        raise ResultError("characterise: fewer than 3 noise points below f_u / 3; lower characterise.f_start_hz")
    en, fc = fit_flicker(fn[band], en_f[band] ** 2)
    in_rep = float(in_f[int(np.argmin(np.abs(np.log(fn / ch.f_report_hz))))])
    a_loaded_dc = float(np.abs(a_olr[0]))
    section = {"model": "macro", "gain": float(gain), "gbw_hz": float(gbw),
               "v_out_max_v": float(min(-sw_lo, sw_hi)), "offset_v": offset if abs(offset) >= 1e-15 else 0.0,
               "supply_v": spec.supply_v, "i_quiescent_a": iq, "r_out_ohm": max(r_out, 0.0),
               **({} if f_zp is None else {"r_out_hf_ohm": r_hf, "r_out_pole_hz": f_zp}),
               "c_in_farad": c_in if c_in >= 1e-21 else 0.0, "en_v_per_rthz": en, "in_a_per_rthz": in_rep,
               "flicker_corner_hz": fc if fc >= 1e-3 else 0.0}
    try:
        OpampConfig(**section)
    except Exception as e:   # noqa: BLE001 - a characterised number the macromodel cannot take
        raise ResultError(f"characterise: the fitted section is not a valid circuit.opamp ({e}); the cell does not "
                          "behave as an op-amp at this corner/temperature") from None
    metrics: dict[str, Any] = {
        "cell": spec.name, "subckt_file": spec.file, "source": spec.source, "corner": spec.corner,
        "temp_c": cfg.circuit.temperature.temp_c, "engine": ENGINE,
        "gain": float(gain), "gain_db": float(20 * np.log10(gain)), "gbw_hz": float(gbw),
        "unity_gain_hz": f_u, "phase_margin_deg": pm_deg, "c_load_farad": ch.c_load_farad,
        "gain_loaded": a_loaded_dc, "r_load_ohm": ch.r_load_ohm,
        "gain_loaded_predicted": float(gain * ch.r_load_ohm / (ch.r_load_ohm + max(r_out, 0.0))),
        "offset_v": offset, "i_quiescent_a": iq, "i_quiescent_vss_a": iq_vss,
        "power_quiescent_w": float(2 * spec.supply_v * iq),
        "swing_low_v": sw_lo, "swing_high_v": sw_hi, "v_out_max_v": section["v_out_max_v"],
        "swing_tolerance_v": ch.swing_tolerance_v, "r_out_ohm": r_out, "c_in_farad": c_in,
        "r_out_hf_ohm": r_hf, "r_out_pole_hz": f_zp, "z_out_fit_max_rel_err": z_err, "z_out_fit_f_max_hz": f_u / 10,
        "en_v_per_rthz": en, "flicker_corner_hz": fc, "in_a_per_rthz": in_rep, "f_report_hz": float(f[k_rep]),
        "en_at_f_report_v_per_rthz": float(en_f[int(np.argmin(np.abs(np.log(fn / ch.f_report_hz))))]),
        "supply_v": spec.supply_v, "opamp_section": section}
    arrays = {"f_hz": f, "a_ol": a_ol, "a_loaded": a_olr, "z_out_ohm": z_out, "y_in_s": y_in, "f_noise_hz": fn,
              "en_v_per_rthz": en_f, "in_a_per_rthz": in_f, "v_in_v": v_in, "v_out_v": v_out,
              "fit": np.array([gain, gbw, en, fc, offset, sw_lo, sw_hi, f_u]),
              "z_out_fit": np.array([r_out, r_out if r_hf is None else r_hf, 0.0 if f_zp is None else f_zp])}
    return metrics, arrays


# ---------------------------------------------------------------- the command

#: the key numbers in words: (metric key, words, unit kind of spu_sim.cli.format_number)
KEY_NUMBERS: tuple[tuple[str, str, str], ...] = (
    ("gain", "open-loop DC gain (unloaded)", "x"),
    ("gain_db", "the same in dB", ""),
    ("gbw_hz", "gain-bandwidth product of the dominant pole (fitted)", "Hz"),
    ("unity_gain_hz", "unity-gain frequency", "Hz"),
    ("phase_margin_deg", "phase margin (degrees) into c_load_farad", ""),
    ("gain_loaded", "open-loop gain into r_load_ohm", "x"),
    ("offset_v", "input offset (systematic, unity follower)", "V"),
    ("swing_low_v", "lowest output within swing_tolerance_v of the linear response", "V"),
    ("swing_high_v", "highest output within swing_tolerance_v of the linear response", "V"),
    ("r_out_ohm", "open-loop output resistance (DC)", "ohm"),
    ("r_out_hf_ohm", "open-loop output resistance above its pole", "ohm"),
    ("r_out_pole_hz", "pole where the output impedance falls", "Hz"),
    ("z_out_fit_max_rel_err", "largest relative error of that output-impedance fit", ""),
    ("i_quiescent_a", "quiescent supply current", "A"),
    ("power_quiescent_w", "quiescent power", "W"),
    ("en_v_per_rthz", "input voltage noise, white level", "V/rtHz"),
    ("flicker_corner_hz", "1/f corner of the voltage noise", "Hz"),
    ("in_a_per_rthz", "input current noise at f_report_hz", "A/rtHz"),
    ("c_in_farad", "input capacitance at f_report_hz (open loop)", "F"),
)


def format_macro_yaml(metrics: dict[str, Any]) -> str:
    """opamp_macro.yaml: a ready ``circuit.opamp`` section, with a header naming the cell, corner and temperature."""
    head = (f"# circuit.opamp of the macromodel, characterised by spu-sim characterise from {metrics['cell']} "
            f"({metrics['source']}, corner {metrics['corner']}, {metrics['temp_c']:g} C) on {metrics['engine']}.\n"
            f"# Paste it into an SPU config (it replaces circuit.opamp) to run the same design at scale on the linear\n"
            f"# engine. Open-loop loaded gain into {metrics['r_load_ohm']:g} ohm: {metrics['gain_loaded']:.4g} "
            f"(A0 R_L / (R_L + r_out) predicts {metrics['gain_loaded_predicted']:.4g}).\n"
            "# v_out_max_v is the output's swing, limiting the output node as the cell's does (on ngspice; the linear\n"
            "# engine refuses the nonlinear limit: remove v_out_max_v there; docs/opamp_models.md).\n")
    return head + yaml.safe_dump({"circuit": {"opamp": metrics["opamp_section"]}}, sort_keys=False)


def run_characterise(config: str | Path | dict, out_dir: str | Path) -> dict[str, Any]:
    """The whole characterisation (module doc) into out_dir: characterise.cir, opamp_macro.yaml, metrics.json,
    characterise.npz, characterise_config.yaml, bode.png, noise.png, swing.png, zout.png. The config and the process models
    are checked before anything runs. Returns the metrics."""
    cfg = load_characterise_config(config)
    spec = bench_cell(cfg.circuit.opamp)           # the files exist and pass the scan (BadInputError otherwise)

    def work(stage: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        with elapsed_line(f"engine {ENGINE}: {spec.name} testbenches (.op, .ac, .dc, 2 x .noise)"):
            plots = run_testbench(spec, cfg, stage)
        engine_s = time.perf_counter() - t0
        metrics, arrays = analyse(plots, spec, cfg)
        metrics["engine_s"] = engine_s
        io.atomic_save_npz(stage / NPZ, **arrays)
        io.atomic_write_json(stage / METRICS, metrics)
        io.atomic_write_text(stage / MACRO_YAML, format_macro_yaml(metrics))
        io.atomic_write_text(stage / CONFIG_COPY, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        plot_characterise(stage / NPZ, stage, metrics)
        return metrics
    return staged(out_dir, work, family="characterise")[0]


def plot_characterise(npz_path: Path, out_dir: Path, metrics: dict[str, Any]) -> list[Path]:
    """bode.png (|A| and phase with the single-pole fit), noise.png (e_n and i_n with the 1/f fit), zout.png (the
    open-loop output impedance with the macromodel's zero/pole fit), swing.png (the
    inverting bench's transfer and error with the swing limits). Reads files only."""
    plt = pyplot()
    z = np.load(npz_path)
    gain, gbw, en, fc, offset, sw_lo, sw_hi, f_u = z["fit"]
    f = z["f_hz"]
    fit = gain / (1 + 1j * f * gain / gbw)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True)
    a1.loglog(f, np.abs(z["a_ol"]), lw=2, label=f"{metrics['cell']} (open loop)")
    a1.loglog(f, np.abs(z["a_loaded"]), lw=1, label=f"into {metrics['r_load_ohm']:g} ohm")
    a1.loglog(f, np.abs(fit), "k--", lw=1, label=f"macromodel: A0 {gain:.3g}, GBW {gbw:.3g} Hz")
    a1.axhline(1.0, color="0.6", lw=0.6)
    a1.axvline(f_u, color="0.6", lw=0.6, ls=":")
    a1.set_ylabel("|A|")
    a1.legend(fontsize=7)
    a2.semilogx(f, np.degrees(np.unwrap(np.angle(z["a_ol"]))), lw=2)
    a2.semilogx(f, np.degrees(np.angle(fit)), "k--", lw=1)
    a2.axvline(f_u, color="0.6", lw=0.6, ls=":")
    a2.set_ylabel("phase [deg]")
    a2.set_xlabel("f [Hz]")
    a2.set_title(f"phase margin {metrics['phase_margin_deg']:.3g} deg at {f_u:.3g} Hz", fontsize=8)
    p1 = save_png(fig, Path(out_dir) / "bode.png")
    fn = z["f_noise_hz"]
    fig, (b1, b2) = plt.subplots(1, 2, figsize=(9, 3.6))
    b1.loglog(fn, z["en_v_per_rthz"], lw=2, label="e_n (.noise, input-referred)")
    b1.loglog(fn, en * np.sqrt(1 + fc / fn), "k--", lw=1, label=f"fit: {en:.3g} V/rtHz, corner {fc:.3g} Hz")
    b1.set_xlabel("f [Hz]")
    b1.set_ylabel("V/sqrt(Hz)")
    b1.legend(fontsize=7)
    b2.loglog(fn, np.maximum(z["in_a_per_rthz"], 1e-30), lw=2, label="i_n (input, short circuit)")
    b2.axvline(metrics["f_report_hz"], color="0.6", lw=0.6, ls=":")
    b2.set_xlabel("f [Hz]")
    b2.set_ylabel("A/sqrt(Hz)")
    b2.legend(fontsize=7)
    p2 = save_png(fig, Path(out_dir) / "noise.png")
    v_in, v_out = z["v_in_v"], z["v_out_v"]
    k0 = int(np.clip(np.argmin(np.abs(v_in)), 1, len(v_in) - 2))
    line = v_out[k0] + (v_out[k0 + 1] - v_out[k0 - 1]) / (v_in[k0 + 1] - v_in[k0 - 1]) * (v_in - v_in[k0])
    fig, (c1, c2) = plt.subplots(1, 2, figsize=(9, 3.6))
    c1.plot(v_in, v_out, lw=2, label=f"V(out), gain -1, {metrics['r_load_ohm']:g} ohm")
    c1.plot(v_in, line, "k--", lw=0.8, label="linear response (tangent at 0 V)")
    for v in (sw_lo, sw_hi):
        c1.axhline(v, color="C3", lw=0.8, ls=":")
    c1.set_ylim(v_out.min() - 0.1, v_out.max() + 0.1)
    c1.set_xlabel("V_in [V]")
    c1.set_ylabel("V_out [V]")
    c1.legend(fontsize=7)
    c2.semilogy(v_out, np.maximum(np.abs(v_out - line), 1e-9), lw=2)
    c2.axhline(metrics["swing_tolerance_v"], color="C3", lw=0.8, ls=":")
    c2.set_xlabel("V_out [V]")
    c2.set_ylabel("|V_out - linear response| [V]")
    c2.set_title(f"swing {sw_lo:.3g} V .. {sw_hi:.3g} V", fontsize=8)
    p3 = save_png(fig, Path(out_dir) / "swing.png")
    r_dc, r_hf, f_zp = z["z_out_fit"]
    z_out = z["z_out_ohm"]
    fig, (d1, d2) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True)
    d1.loglog(f, np.abs(z_out), lw=2, label=f"{metrics['cell']} (open loop, no load)")
    if f_zp > 0:     # 0: no output-impedance pole (analyse)
        model = output_impedance_model(f, r_dc, r_hf, f_zp)
        label = f"macromodel: {r_dc:.3g} ohm -> {r_hf:.3g} ohm above {f_zp:.3g} Hz"
    else:
        model = np.full(f.shape, r_dc, dtype=complex)
        label = f"macromodel: {r_dc:.3g} ohm at every frequency"
    d1.loglog(f, np.abs(model), "k--", lw=1, label=label)
    d1.axvline(metrics["z_out_fit_f_max_hz"], color="0.6", lw=0.6, ls=":")
    d1.set_ylabel("|Z_out| [ohm]")
    d1.legend(fontsize=7)
    d2.semilogx(f, np.degrees(np.angle(z_out)), lw=2)
    d2.semilogx(f, np.degrees(np.angle(model)), "k--", lw=1)
    d2.axvline(metrics["z_out_fit_f_max_hz"], color="0.6", lw=0.6, ls=":")
    d2.set_ylabel("phase [deg]")
    d2.set_xlabel("f [Hz]")
    d2.set_title(f"fitted up to f_u / 10 (dotted): largest relative error {metrics['z_out_fit_max_rel_err']:.2g}",
                 fontsize=8)
    p4 = save_png(fig, Path(out_dir) / "zout.png")
    return [p1, p2, p3, p4]


def key_number_lines(metrics: dict[str, Any]) -> list[str]:
    """The key numbers in words with units (finite ones only)."""
    out = []
    for key, words, unit in KEY_NUMBERS:
        v = metrics.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out.append(f"{words}: {v:.4g}{' ' + unit if unit not in ('', 'x') else ''}")
    return out

