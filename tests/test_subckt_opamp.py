"""circuit.opamp.model: subckt -- the designer's own op-amp subcircuit, included and instantiated for every op-amp.

The op-amp of these tests is written here: a VCVS of finite gain A0 (with a local 0 V source named VOS1 and a local
node x1, names the netlist itself uses, to show that everything inside the subcircuit stays local). Its closed form
is the macromodel's finite-gain model with the same gain and no pole (spu_sim.topologies.opamp.nonideal:
A_effective, b_effective), exact at DC.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.circuit import Capacitor, Comment, Instance, Resistor, Subckt, VCVS, VoltageSource, flatten
from spu_sim.cli import main
from spu_sim.engines.linear.model import by_type
from spu_sim.pipeline import netlist_text, prepare, simulate
from spu_sim.run_config import load_run_config
from spu_sim.spice import format_element

A2 = [[2.0, -0.5], [-0.5, 1.0]]
B2 = [1.0, 0.5]
GAIN = 100.0
PINS = {"inp": "inp", "inn": "inn", "out": "out", "vdd": "vdd", "vss": "vss"}


def amp_text(gain: float = GAIN, name: str = "myamp", pins: str = "inn inp vdd vss out", extra: str = "") -> str:
    """A finite-gain op-amp subcircuit (pins deliberately not in the netlist's order)."""
    return (f"* test op-amp: a VCVS of gain {gain:g}\n.subckt {name} {pins}\n"
            "VOS1 inp x1 DC 0\n"
            f"EOUT out 0 x1 inn {gain:g}\n"
            "RBIAS vdd vss 1e6\n"
            f"{extra}.ends {name}\n")


def write_amp(folder: Path, text: str | None = None, name: str = "amp.sub") -> Path:
    path = folder / name
    path.write_text(amp_text() if text is None else text)
    return path


def cfg(opamp: dict, t_stop: float = 1.0, analyses=("op", "tran"), **extra) -> dict:
    out = {"problem": {"matrix": A2, "vector": B2, "kappa": 0.0},
           "circuit": {"opamp": opamp, **extra},
           "simulation": {"t_stop_tau": t_stop, "analyses": list(analyses)}}
    if "tran" in analyses:    # a readout knob of the transient only (an .op-only run refuses it)
        out["readout"] = {"sample_dt_tau": 0.01}
    return out


def subckt_opamp(path: Path, **kw) -> dict:
    return {"model": "subckt", "supply_v": 2.5, "subckt": {"file": str(path), "name": "myamp", "pins": dict(PINS)}, **kw}


# ---------------------------------------------------------------- the circuit description and the writer

def test_subckt_instance_and_flatten():
    """A Subckt of the circuit is written as .subckt ... .ends, an Instance as an X line in pin order, and flatten
    expands it into the same elements with local names (the linear engine then runs it); an instance of a subcircuit
    of an external file cannot be flattened and the linear engine refuses it naming the ngspice engine."""
    sub = Subckt("AMP", ("a", "b", "o"), (VoltageSource("VOS1", "a", "m", 0.0), VCVS("E1", "o", "0", "m", "b", 50.0)))
    inst = Instance("XA1", "AMP", ("0", "s1", "y1"))
    text = "\n".join(line for e in (sub, inst) for line in format_element(e))
    assert ".subckt AMP a b o\nVOS1 a m DC 0\nE1 o 0 m b 50\n.ends AMP\nXA1 0 s1 y1 AMP" == text
    flat = flatten([Comment("x"), sub, inst, Resistor("R1", "y1", "s1", 1e3)])
    assert [e.name for e in flat if hasattr(e, "name")] == ["VOS1_XA1", "E1_XA1", "R1"]
    assert flat[1].n_pos == "0" and flat[1].n_neg == "XA1_m" and flat[2].c_pos == "XA1_m" and flat[2].c_neg == "s1"
    with pytest.raises(ValueError, match="external file"):
        flatten([Instance("XB", "OTHER", ("0", "s1", "y1"))])

    class C:
        elements = [Instance("XB", "OTHER", ("0", "s1", "y1")), Capacitor("C1", "s1", "0", 1e-9)]
    with pytest.raises(Exception, match="ngspice-shared"):
        by_type(C)


def test_netlist_includes_and_instantiates_the_subcircuit(tmp_path):
    """Every integrator and inverter is one X line with the pins in the .subckt line's order; the file is included
    by its absolute path, the supplies are +/- supply_v, .temp is the circuit temperature, no macromodel element and
    no output-current save is written."""
    amp = write_amp(tmp_path)
    text = netlist_text(prepare(cfg(subckt_opamp(amp), temperature={"temp_c": 50.0})))
    assert f'.include "{amp}"' in text
    assert "VDDA vdda 0 DC 2.5" in text and "VSSA vssa 0 DC -2.5" in text and ".temp 50" in text
    x_lines = re.findall(r"^X\S+ .*$", text, re.M)
    assert x_lines == ["XI1 sum1 0 vdda vssa x1 myamp", "XI2 sum2 0 vdda vssa x2 myamp",
                       "XN1 ni1 0 vdda vssa xn1 myamp", "XN2 ni2 0 vdda vssa xn2 myamp"]
    assert not re.search(r"^(GA|VOS|VO)\S* ", text, re.M) and "i(VO" not in text


@pytest.mark.ngspice
def test_every_opamp_topology_instantiates_it(tmp_path):
    """opamp_factored (integrators, summers, inverters), opamp_sc (integrators) and posterior_gaussian (integrators,
    summers, inverters): as many X lines as the macromodel has op-amps (its XA<t> instances of SPU_OPAMP_MACRO, the
    one .subckt of the macromodel's netlist), no macromodel element; and in ngspice the gain-100 subcircuit gives the
    macromodel of gain 100 without a pole (.op, or the clocked transient of opamp_sc) to 1e-9 of the finite gain's
    own effect (its distance from the ideal op-amp's run)."""
    amp = write_amp(tmp_path)
    rng = np.random.default_rng(0)
    J, b = rng.standard_normal((3, 5)), rng.standard_normal(5)
    B = rng.standard_normal((3, 3))
    configs = {
        "opamp_factored": {"problem": {"factors": {"J": J.tolist(), "H": (B @ B.T / 3).tolist(), "damping": 0.5},
                                       "vector": b.tolist(), "kappa": 0.0},
                           "circuit": {"topology": "opamp_factored"}, "simulation": {"analyses": ["op"]}},
        "opamp_sc": {"problem": {"matrix": A2, "vector": B2, "kappa": 0.0},
                     "circuit": {"topology": "opamp_sc", "sc": {"f_clk_tau": 5, "bits": 6, "ktc_noise": False}},
                     "simulation": {"t_stop_tau": 3.0, "analyses": ["tran"]}},
        "posterior_gaussian": {"problem": {"kind": "gaussian_posterior",
                                           "X": {"random": {"n": 4, "d": 2, "scale": 0.3, "seed": 1}},
                                           "y": {"random": {"theta_scale": 1.0, "seed": 2}}, "prior_cov": 1.0,
                                           "noise_var": 1.0},
                               "circuit": {"topology": "posterior_gaussian"},
                               "simulation": {"t_stop_tau": 5.0, "analyses": ["op"]}},
    }
    models = {"ideal": {"model": "ideal"}, "macro": {"model": "macro", "gain": GAIN, "gbw_hz": None},
              "subckt": subckt_opamp(amp)}
    for name, base in configs.items():
        runs, texts = {}, {}
        for label, opamp in models.items():
            c = yaml.safe_load(yaml.safe_dump(base))
            c["circuit"]["opamp"] = opamp
            texts[label] = netlist_text(prepare(c))
            r = simulate(c)
            runs[label] = r["x_op"] if name != "opamp_sc" else r["x"]
        n_macro = len(re.findall(r"^XA\S+ .* SPU_OPAMP_MACRO( ic_v=\S+)?$", texts["macro"], re.M))
        assert texts["macro"].count(".subckt SPU_OPAMP_MACRO inp inn oo") == 1, name
        n_x = len(re.findall(r"^X\S+ .* myamp$", texts["subckt"], re.M))
        assert n_macro > 0 and n_x == n_macro, (name, n_x, n_macro)
        assert "SPU_OPAMP_MACRO" not in texts["subckt"] and not re.search(r"^(GA|VOS|VO)\S* ", texts["subckt"], re.M)
        effect = np.abs(runs["macro"] - runs["ideal"]).max()
        assert effect > 1e-3 and np.abs(runs["subckt"] - runs["macro"]).max() < 1e-9 * max(effect, 1.0), name


# ---------------------------------------------------------------- ngspice: the finite-gain error of the realised matrix

@pytest.mark.ngspice
def test_finite_gain_subckt_gives_the_closed_form_error(tmp_path):
    """.op through model: subckt (VCVS of gain 100) = .op of the macromodel of the same gain without a pole = the
    closed form A_effective^-1 b_effective, to ngspice's solver precision; the error against the ideal solution is
    about Gsum / (A0 G) ~ 1 %, far above that agreement. The transients agree too (the macromodel without a pole is
    the same circuit), to ngspice's step-control error. The subckt run publishes no A_effective: not measured."""
    amp = write_amp(tmp_path)
    r_s = simulate(cfg(subckt_opamp(amp)))
    r_m = simulate(cfg({"model": "macro", "gain": GAIN, "gbw_hz": None, "supply_v": 2.5}))
    r_i = simulate(cfg({"model": "ideal"}))
    x_closed = np.linalg.solve(r_m["A_effective"], r_m["b_effective"])
    assert np.allclose(r_s["x_op"], x_closed, rtol=1e-7, atol=1e-10)
    assert np.allclose(r_s["x_op"], r_m["x_op"], rtol=1e-7, atol=1e-10)
    err = np.abs(x_closed - r_s["x_star"]).max()
    assert err > 1e-3 and err > 1e4 * np.abs(r_s["x_op"] - x_closed).max()
    assert "A_effective" not in r_s.arrays and "A_effective" in r_m.arrays
    dev = np.abs(r_m["x"] - r_i["x"]).max()            # the finite gain's effect on the transient
    assert dev > 1e-3 and np.abs(r_s["x"] - r_m["x"]).max() < 0.01 * dev


@pytest.mark.ngspice
def test_netlist_runs_standalone(tmp_path):
    """spu-sim netlist with a relative subckt.file (relative to the config file) writes a netlist that ngspice -b
    runs on its own in its folder."""
    write_amp(tmp_path)
    c = cfg(subckt_opamp(Path("amp.sub")))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c))
    assert main(["netlist", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")]) == 0
    run = subprocess.run(["ngspice", "-b", "netlist.cir"], cwd=tmp_path / "out", capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-500:]
    assert (tmp_path / "out" / "netlist.raw").stat().st_size > 0
    assert "error" not in (run.stdout + run.stderr).lower()


def test_relative_file_is_resolved_at_load_and_prepare_changes_nothing(tmp_path, monkeypatch):
    """A relative subckt.file is relative to the config file: the loaded config holds the absolute path (a dict:
    relative to the base_dir it is loaded with, else to the current folder), and preparing a run leaves the validated
    config as it was (no path written into it afterwards)."""
    write_amp(tmp_path)
    c = cfg(subckt_opamp(Path("amp.sub")), analyses=("op",))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    want = str((tmp_path / "amp.sub").resolve())
    loaded = load_run_config(tmp_path / "c.yaml")
    assert loaded.circuit.opamp.subckt.file == want
    dump = loaded.to_dict()
    prepare(loaded)
    assert loaded.to_dict() == dump
    assert load_run_config(c, tmp_path).circuit.opamp.subckt.file == want
    assert load_run_config(c).circuit.opamp.subckt.file == str((elsewhere / "amp.sub").resolve())


# ---------------------------------------------------------------- bad subcircuits: exit 2, one line, before ngspice

BAD = [
    ("missing file", None, {"file": "nothere.sub"}, r"circuit\.opamp\.subckt\.file: .*nothere\.sub.* not found"),
    ("control block", amp_text(extra=".control\nrun\n.endc\n"), {}, r"circuit\.opamp\.subckt\.file: amp\.sub line \d+ holds a \.control block"),
    ("missing name", amp_text(), {"name": "other"}, r"circuit\.opamp\.subckt\.name: amp\.sub defines no subcircuit 'other' \(it defines: myamp\)"),
    ("wrong pin", amp_text(), {"pins": {**PINS, "inn": "minus"}}, r"circuit\.opamp\.subckt\.pins\.inn: 'minus' is not a pin of subcircuit myamp"),
    ("extra pin", amp_text(pins="inn inp vdd vss out bias"), {}, r"circuit\.opamp\.subckt\.pins: subcircuit myamp has 6 pins .* pin bias has no role"),
    ("missing pin", amp_text(pins="inn inp vdd out"), {}, r"circuit\.opamp\.subckt\.pins\.vss: 'vss' is not a pin"),
    ("include with .control", amp_text(extra="") + '.include "inner.sub"\n', {}, r"inner\.sub line 1 holds a \.control block"),
]


@pytest.mark.parametrize("case,text,sub,pattern", BAD, ids=[c[0] for c in BAD])
def test_bad_subcircuit_exits_2_with_one_line(tmp_path, capsys, case, text, sub, pattern):
    if text is not None:
        write_amp(tmp_path, text)
    (tmp_path / "inner.sub").write_text(".control\nquit\n.endc\n")
    opamp = subckt_opamp(Path("amp.sub"))
    opamp["subckt"].update(sub)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg(opamp)))
    code = main(["simulate", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    assert not (tmp_path / "out" / "netlist.cir").exists()      # refused before anything was written or run


BAD_KEYS = [
    ("no subckt section", {"model": "subckt"}, r"circuit\.opamp: .*model: subckt needs circuit\.opamp\.subckt"),
    ("subckt with macro", {"model": "macro", "subckt": {"file": "a", "name": "b", "pins": PINS}}, r"model: subckt"),
    ("macro knob", "gain", r"opamp\.gain = 1000\.0 is a knob of model: macro"),
    ("op-amp noise", "en", r"en_v_per_rthz: a transistor-level op-amp .* has its own noise"),
    ("corner not a section", "corner", r"circuit\.opamp\.corner: 'ss' is not a \.lib section of amp\.sub \(sections: tt\)"),
    ("unknown cell", {"model": "sky130_foo"}, r"circuit\.opamp\.model: 'sky130_foo' is not available .*shipped cells "
                                             r"sky130_miller, sky130_ota5t, gf180_miller"),
    ("corner of macro", {"model": "macro", "corner": "tt"}, r"corner selects a process section"),
    ("linear engine", "linear", r"simulation\.backend: linear cannot run circuit\.opamp\.model: subckt .* ngspice-shared"),
]


@pytest.mark.parametrize("case,opamp,pattern", BAD_KEYS, ids=[c[0] for c in BAD_KEYS])
def test_bad_subckt_keys_exit_2_with_one_line(tmp_path, capsys, case, opamp, pattern):
    write_amp(tmp_path, ".lib tt\n" + amp_text() + ".endl tt\n")
    good = subckt_opamp(Path("amp.sub"))
    c = cfg(good)
    if opamp == "gain":
        good["gain"] = 1e3
    elif opamp == "en":
        good["en_v_per_rthz"] = 1e-8
    elif opamp == "corner":
        good["corner"] = "ss"
    elif opamp == "linear":
        c["simulation"]["backend"] = "linear"
    else:
        c["circuit"]["opamp"] = opamp
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c))
    code = main(["simulate", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err


@pytest.mark.ngspice
def test_corner_includes_the_lib_section(tmp_path):
    """corner: the netlist says .lib FILE SECTION, and ngspice takes that section's subcircuit (two sections with
    different gains give the two closed-form answers)."""
    write_amp(tmp_path, ".lib tt\n" + amp_text(100.0) + ".endl tt\n.lib ss\n" + amp_text(20.0) + ".endl ss\n")
    out = {}
    for corner in ("tt", "ss"):
        c = cfg(subckt_opamp(tmp_path / "amp.sub", corner=corner), analyses=("op",))
        assert f'.lib "{tmp_path / "amp.sub"}" {corner}' in netlist_text(prepare(c))
        out[corner] = simulate(c)["x_op"]
    for corner, gain in (("tt", 100.0), ("ss", 20.0)):
        r_m = simulate(cfg({"model": "macro", "gain": gain, "gbw_hz": None}, analyses=("op",)))
        assert np.allclose(out[corner], r_m["x_op"], rtol=1e-7, atol=1e-10), corner
