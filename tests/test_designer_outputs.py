"""What a designer takes away (issue 23): the per-element table beside every netlist, the realised condition number
in the netlist header, and nothing silently ignored (a knob the chosen model does not use is exit 2 with one line)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.cli import format_sweep_summary, main
from spu_sim.pipeline import prepare, write_netlist

#: 5 x 5, r_bits = 3: four entries round to code 0 (an 8 % matrix error), and a hot resistor network
QUANTISED = {"problem": {"matrix": {"random": {"kind": "spd", "d": 5, "condition": 30, "seed": 2}},
                         "vector": {"random": {"kind": "normal", "seed": 2}}, "kappa": 0.01},
             "circuit": {"topology": "opamp", "quantization": {"r_bits": 3},
                         "temperature": {"temp_c": 85.0, "r_tc1_per_k": 1.0e-4}},
             "simulation": {"t_stop_tau": 5, "backend": "linear"}}


def netlist_elements(path: Path) -> list[str]:
    """The element names of a netlist: every line that is no comment, control card, continuation or blank, outside
    the .control block (its lines are ngspice commands, not elements) and outside .subckt definitions (a model's
    insides: the netlist's elements are its X instances)."""
    names, control, subckt = [], False, False
    for line in path.read_text().splitlines()[1:]:
        s = line.strip()
        low = s.lower()
        if low.startswith(".control") or low.startswith(".endc"):
            control = low.startswith(".control")
            continue
        if low.startswith(".subckt") or low.startswith(".ends"):
            subckt = low.startswith(".subckt")
            continue
        if s and not control and not subckt and s[0] not in "*.+":
            names.append(s.split()[0])
    return names


def read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_elements_csv_rows_match_netlist_and_dropped_entries(tmp_path):
    out = tmp_path / "q"
    write_netlist(QUANTISED, out)
    rows = read_table(out / "elements.csv")
    present = [r["name"] for r in rows if r["status"] == "present"]
    assert present == netlist_elements(out / "netlist.cir")          # one row per element, in netlist order
    prep = prepare(QUANTISED)
    A, A_real = prep.problem.A, prep.design.A_realized
    missing = {(i + 1, j + 1) for i, j in zip(*np.nonzero((A != 0) & (A_real == 0)))}
    dropped = {tuple(int(k) for k in re.fullmatch(r"R(\d+)_(\d+)", r["name"]).groups())
               for r in rows if r["status"] == "dropped"}
    assert len(missing) == 4 and dropped == missing
    desc = json.loads((out / "design.json").read_text())
    assert desc["dropped_entries"] == len(dropped) and desc["pruned_entries"] == 0
    assert desc["n_resistors"] == sum(1 for r in rows if re.fullmatch(r"R\d+_\d+", r["name"]) and r["status"] == "present")
    # a present coupling resistor: its code, nominal and realised values (code * G_lsb at 85 C)
    r = next(r for r in rows if r["name"] == "R1_1")
    g_lsb = (1 / 1e3) / (2 ** 3 - 1)
    assert r["realises"].startswith("A[1,1]") and r["bits"] == "3"
    assert float(r["realised"]) == pytest.approx(1 / (int(r["code"]) * g_lsb) * (1 + 1e-4 * 58), rel=1e-12)
    assert float(r["nominal"]) == pytest.approx(prep.design.alpha / abs(A[0, 0]), rel=1e-12)
    assert "r_bits=3" in r["applied"]
    # the header's condition number is that of the realised matrix, not the nominal one (30)
    lam = np.abs(np.linalg.eigvals(A_real))
    head = re.search(r"cond\(A realised\) = ([0-9.e+-]+)", (out / "netlist.cir").read_text()).group(1)
    assert float(head) == pytest.approx(lam.max() / lam.min(), rel=1e-3)
    assert abs(float(head) - 30.0) > 1.0


@pytest.mark.parametrize("config", ["opamp_sc_d4", "opamp_factored_d40", "rlc_sampling_d8", "posterior_logistic_d3",
                                    "opamp_macro_d8"])
def test_elements_csv_beside_every_netlist(tmp_path, config):
    """Every topology writes the table: one present row per netlist element."""
    root = Path(__file__).resolve().parent.parent / "configs"
    out = tmp_path / "n"
    write_netlist(root / f"{config}.yaml", out)
    rows = read_table(out / "elements.csv")
    assert [r["name"] for r in rows if r["status"] == "present"] == netlist_elements(out / "netlist.cir")
    assert all(r["realised"] or r["kind"] in ("switch", "noise DAC", "behavioural source")
               or r["kind"].startswith("subcircuit ") for r in rows)   # an op-amp instance: its model has no one value


SMALL = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.5], "kappa": 0.0},
         "simulation": {"analyses": ["op"]}}


def run_netlist(tmp_path: Path, cfg: dict, capsys) -> tuple[int, str]:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main(["netlist", str(path), "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("circuit, words", [
    ({"opamp": {"gain": 1000.0}}, "opamp.gain"),
    ({"opamp": {"gain": 1.0e5, "gbw_hz": 1.0e7}}, "opamp.gain"),    # written out, though equal to the defaults
    ({"opamp": {"gbw_hz": 1.0e6}}, "opamp.gbw_hz"),
    ({"opamp": {"offset_v": 1.0e-3}}, "opamp.offset_v"),
    ({"opamp": {"model": "ideal", "v_out_max_v": 2.0}}, "opamp.v_out_max_v"),
    ({"topology": "opamp_factored", "opamp": {"gain": 1000.0}}, "opamp.gain"),
    ({"topology": "opamp_sc", "opamp": {"model": "macro", "r_inverter_ohm": 5.0e3}}, "opamp.r_inverter_ohm"),
])
def test_silent_ignore_is_exit_2_with_one_line(tmp_path, capsys, circuit, words):
    """A knob the chosen model does not use: exit 2, one line naming the knob and the model that would use it."""
    cfg = {**SMALL, "circuit": circuit}
    if circuit.get("topology") == "opamp_factored":
        cfg["problem"] = {"factors": {"J": [[1.0, 0.5]], "H": [[1.0]], "damping": 1.0}, "vector": [1.0, 0.5],
                          "kappa": 0.0}
    if circuit.get("topology") == "opamp_sc":
        cfg["simulation"] = {"analyses": ["tran"], "t_stop_tau": 1}
    code, err = run_netlist(tmp_path, cfg, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err
    assert ("model: macro" in lines[0]) or ("does not apply to topology opamp_sc" in lines[0])
    assert not (tmp_path / "out").exists()


def test_switched_bank_knob_with_ideal_coupling_is_exit_2(tmp_path, capsys):
    cfg = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "kappa": 1.0},
           "circuit": {"topology": "rlc", "rlc": {"coupling": "ideal", "bits": 4}},
           "simulation": {"analyses": ["tran"], "t_stop_tau": 1}}
    code, err = run_netlist(tmp_path, cfg, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "circuit.rlc: bits = 4" in err and "coupling: switched" in err


def test_adc_range_without_bits_is_exit_2(tmp_path, capsys):
    code, err = run_netlist(tmp_path, {**SMALL, "readout": {"adc": {"range_v": 2.0}}}, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "readout.adc: range_v = 2" in err and "readout.adc.bits" in err


def test_resolved_config_of_an_ideal_op_amp_loads_again(tmp_path, capsys):
    """The resolved config.yaml leaves out the macromodel knobs of an ideal op-amp (written, they would be refused on
    reload as knobs the ideal model ignores); the macromodel's resolved config keeps every knob."""
    from spu_sim.config.base import save_config
    for opamp in ({}, {"model": "macro"}):
        cfg = prepare({**SMALL, "circuit": {"opamp": opamp}}).cfg
        data = yaml.safe_load(save_config(cfg))
        assert ("gain" in data["circuit"]["opamp"]) == bool(opamp)
        assert prepare(data).cfg == cfg


@pytest.mark.parametrize("extra, key", [
    ({"readout": {"sample_dt_tau": 0.1}}, "readout.sample_dt_tau"),
    ({"readout": {"adc": {"bits": 8}}}, "readout.adc.bits"),
    ({"simulation": {"analyses": ["op"], "burn_in_tau": 1.0}}, "simulation.burn_in_tau"),
])
def test_transient_knobs_without_a_transient_are_exit_2(tmp_path, capsys, extra, key):
    """Readout and burn-in act on the transient only: with simulation.analyses [op] they would be ignored."""
    code, err = run_netlist(tmp_path, {**SMALL, **extra}, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert key in err and "simulation.analyses" in err


def test_knobs_the_model_uses_are_accepted(tmp_path, capsys):
    """The same knobs with model: macro, and the quiescent supply of the posterior's ideal op-amps, are used."""
    code, err = run_netlist(tmp_path, {**SMALL, "circuit": {"opamp": {"model": "macro", "gain": 1000.0,
                                                                      "offset_v": 1.0e-3}}}, capsys)
    assert code == 0, err


def test_the_one_topology_of_a_problem_kind_is_selected(tmp_path):
    """problem.kind gaussian_posterior without circuit.topology: the only topology that takes it."""
    root = Path(__file__).resolve().parent.parent / "configs"
    text = (root / "posterior_gaussian_d4.yaml").read_text()
    assert "  topology: posterior_gaussian\n" in text
    (tmp_path / "p.yaml").write_text(text.replace("  topology: posterior_gaussian\n", ""))
    assert prepare(tmp_path / "p.yaml").cfg.circuit.topology == "posterior_gaussian"
    # a linear problem (several topologies take it) keeps the default
    assert prepare(SMALL).cfg.circuit.topology == "opamp"


def test_noise_takes_its_options_on_the_command_line_and_prints_words(tmp_path, capsys):
    """spu-sim noise --points-per-decade/--no-transient: real ngspice; the metrics in words with units."""
    root = Path(__file__).resolve().parent.parent / "configs"
    code = main(["noise", str(root / "noise_d4.yaml"), "--out", str(tmp_path / "n"), "--points-per-decade", "3",
                 "--no-transient"])
    out = capsys.readouterr().out
    assert code == 0
    assert "3 points per decade" in out and " Hz to " in out
    assert re.search(r"largest variance error of \.noise against the Lyapunov theory: [0-9.e+-]+ %", out)
    m = json.loads((tmp_path / "n" / "noise_metrics.json").read_text())
    assert m["points_per_decade"] == 3 and "cov_rel_error_transient_vs_noise" not in m
    assert "spectrum_max_rel_error " not in out          # no bare metric names


def test_sweep_summary_in_words():
    info = {"ok": 15, "failed": 1, "runs_planned": 16, "metric": "op_rel_err", "threshold": 0.01, "yield": 0.4375,
            "metric_stats": {"op_rel_err": {"n": 15, "mean": 0.015, "median": 0.0145, "p95": 0.0298, "max": 0.0368}},
            "mitigation": {"group_size": 4, "yield": 0.5,
                           "op_rel_err_averaged": {"n": 4, "mean": 0.0078, "median": 0.0072, "p95": 0.014, "max": 0.0146}}}
    text = "\n".join(format_sweep_summary(info))
    assert "runs: 15 ok, 1 failed of 16 planned" in text
    assert "mean 1.5 %, median 1.45 %, 95th percentile 2.98 %, largest 3.68 % over 15 runs" in text
    assert "yield: 43.8 % of the planned runs have op_rel_err <= 1 %" in text
    assert "yield with mitigation: 50 % of the groups" in text


def test_grid_sweep_prints_the_metric_at_each_grid_value():
    """A GBW sweep with two seeds per GBW: the spread over all runs mixes the GBW values; the terminal gives the
    metric at each GBW (the seeds are its spread), in words with units."""
    from spu_sim.cli import format_grid_lines
    plan = {"sweep": {"metric": "cov_rel_err", "grid": {"circuit.opamp.gbw_hz": [1.0e5, 1.0e7],
                                                         "simulation.seed": [0, 1]}}}
    rows = [{"circuit.opamp.gbw_hz": g, "simulation.seed": s, "status": "ok", "cov_rel_err": v}
            for g, s, v in (("100000.0", "0", "0.9"), ("100000.0", "1", "0.7"), ("10000000.0", "0", "0.3"),
                            ("10000000.0", "1", "")) ]
    rows[-1]["status"] = "failed"
    lines = format_grid_lines(plan, rows)
    assert lines == ["cov_rel_err at circuit.opamp.gbw_hz = 1e+05: median 80 % (70 % to 90 %) over 2 runs",
                     "cov_rel_err at circuit.opamp.gbw_hz = 1e+07: median 30 % (30 % to 30 %) over 1 run, 1 failed"]
    assert format_grid_lines({"sweep": {"metric": "cov_rel_err", "grid": {"simulation.seed": [0, 1]}}}, rows) == []


def test_noise_of_a_macro_op_amp_gives_the_spectrum_error_below_its_gbw(tmp_path, capsys):
    """The OU theory has no op-amp pole: over a band reaching past GBW the spectrum error is ~100 % whatever the
    circuit; below GBW / 10 the pole changes |H|^2 by about (f N / GBW)^2 (N: the noise gain, a few): a few %."""
    cfg = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.5], "kappa": 0.05},
           "circuit": {"opamp": {"model": "macro", "gain": 1.0e4, "gbw_hz": 1.0e7}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["noise", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "n"), "--points-per-decade", "5",
                 "--no-transient"]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "n" / "noise_metrics.json").read_text())
    assert m["spectrum_max_rel_error"] > 0.5 and m["spectrum_max_rel_error_below_gbw"] < 0.1
    assert "below GBW / 10" in out


def test_noise_cir_has_its_element_table(tmp_path):
    """noise.cir is a netlist too: noise_elements.csv beside it, one row per element in netlist order."""
    import csv
    from spu_sim.analyses.noise import run_noise
    cfg = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.5], "kappa": 0.05},
           "circuit": {"opamp": {"model": "macro", "gain": 1.0e4, "gbw_hz": 1.0e7}}}
    run_noise(cfg, tmp_path / "n", points_per_decade=3, transient=False)
    with (tmp_path / "n" / "noise_elements.csv").open(newline="") as f:
        rows = [r["name"] for r in csv.DictReader(f) if r["status"] == "present"]
    names = netlist_elements(tmp_path / "n" / "noise.cir")
    assert rows == names and len(names) > 10 and "XAI1" in names
