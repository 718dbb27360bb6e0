"""Waveform files (readout.waveforms), simulation.save_nodes, and the standalone netlist.cir / noise.cir.

- The raw writer is ngspice's format byte for byte (ngspice 39's own file re-written from its parsed plots).
- The raw file of every engine loads in ngspice (``load`` in a batch control block, written back by ngspice's
  ``write``) and gives exactly the engine's vectors, whose readout is exactly result.npz (ideal ADC).
- CSV round-trips exactly (17 significant digits); ``none`` writes nothing.
- save_nodes: a summing node's voltage on ngspice and on the linear engine: 0 V for the ideal op-amp (the
  nullor), -V(x)/A0 - V(x)'/(2 pi GBW) for the macromodel (module doc of spu_sim.parts.opamp); an unknown
  node is exit 2 naming it.
- netlist.cir and noise.cir run on their own with ``ngspice -b FILE``, once, and write netlist.raw / noise.raw.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.cli import main
from spu_sim.engines.raw import Waveforms, format_raw, number_noise_plots, parse_raw_list, raw_name
from spu_sim.engines.waveform_files import format_csv, parse_csv, read_waveforms
from spu_sim.engines import progress as progress_mod
from spu_sim.pipeline import build_circuit, prepare, run_engine, simulate
from spu_sim.readout import make_adc, read_op, read_transient
from spu_sim.spice import without_control

pytestmark = pytest.mark.ngspice
NGSPICE = shutil.which("ngspice")
ENGINES = ["ngspice-shared", "ngspice-subprocess", "linear"]
GAIN, GBW_HZ = 1e4, 1e7


def small(engine: str, *, macro: bool = False, kappa: float = 0.05, **sim) -> dict:
    cfg = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.5], "kappa": kappa},
           "simulation": {"t_stop_tau": 3.0, "backend": engine, **sim}}
    if macro:
        cfg["circuit"] = {"opamp": {"model": "macro", "gain": GAIN, "gbw_hz": GBW_HZ}}
    return cfg


def ngspice_b(folder: Path, name: str) -> str:
    proc = subprocess.run([NGSPICE, "-b", name], cwd=folder, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def keyed(plots: list[Waveforms]) -> dict[str, Waveforms]:
    out = {p.kind: p for p in plots if p.kind not in ("noise", "noise_total")}
    out.update(number_noise_plots(plots))
    return out


def same_vectors(a: dict[str, Waveforms], b: dict[str, Waveforms]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        va = {raw_name(k): v for k, v in a[key].vectors.items()}    # the shared library's names as in raw files
        vb = {raw_name(k): v for k, v in b[key].vectors.items()}
        assert sorted(va) == sorted(vb), (key, sorted(va), sorted(vb))
        for k, v in va.items():
            assert np.array_equal(np.asarray(v), vb[k]), (key, k)


@pytest.mark.skipif(NGSPICE is None, reason="ngspice not installed")
def test_raw_writer_is_ngspices_format_byte_for_byte(tmp_path):
    """ngspice's own raw file (op, tran, two .noise, and a complex .ac in a second netlist) parsed and written
    back gives the same bytes (its Date line passed through)."""
    (tmp_path / "a.cir").write_text("* writer check\nV1 in 0 DC 1 AC 1\nR1 in s 1k\nR2 s 0 1k\nC1 s 0 1n\n.op\n"
                                    ".tran 1e-7 1e-5\n.noise v(s) V1 dec 5 1e3 1e7\n.noise v(in,s) V1 dec 5 1e3 1e7\n.end\n")
    (tmp_path / "b.cir").write_text("* writer check ac\nV1 in 0 DC 0 AC 1\nR1 in s 1k\nC1 s 0 1n\n.ac dec 3 1e3 1e6\n.end\n")
    for name, n_plots in (("a", 6), ("b", 1)):
        subprocess.run([NGSPICE, "-b", "-r", f"{name}.raw", f"{name}.cir"], cwd=tmp_path, capture_output=True,
                       check=True, timeout=60)
        data = (tmp_path / f"{name}.raw").read_bytes()
        plots = parse_raw_list(data)
        assert len(plots) == n_plots
        date = data.split(b"\n")[1].decode()[len("Date: "):]
        assert format_raw(keyed(plots), f"* writer check{' ac' if name == 'b' else ''}", date) == data


@pytest.mark.skipif(NGSPICE is None, reason="ngspice not installed")
@pytest.mark.parametrize("engine", ENGINES)
def test_raw_file_of_each_engine_loads_in_ngspice_and_gives_result_npz(engine, tmp_path):
    res = simulate(small(engine, save_nodes=["sum1"]), tmp_path / "run")
    run = tmp_path / "run"
    assert (run / "waveforms.raw").is_file() and not (run / "netlist.raw").exists()
    (run / "load.cir").write_text("* load check\n.control\nload waveforms.raw\nset filetype=binary\n"
                                  "foreach plot op1 tran1\n  setplot $plot\n  write reloaded.raw\n  set appendwrite\nend\n"
                                  "quit\n.endc\n.end\n")
    log = ngspice_b(run, "load.cir")
    assert "Loading raw data file" in log
    reloaded = keyed(parse_raw_list((run / "reloaded.raw").read_bytes()))
    same_vectors(res.waveforms, reloaded)          # ngspice read exactly the engine's vectors
    same_vectors(read_waveforms(run), reloaded)    # and our reader reads the same file
    assert "v(sum1)" in reloaded["tran"].vectors
    prep = prepare(yaml.safe_load((run / "config.yaml").read_text()))
    z = np.load(run / "result.npz")
    assert str(z["engine"]) == engine
    tr = read_transient(reloaded["tran"], prep.design, make_adc(prep.cfg, prep.design), prep.sample_dt_tau * prep.design.tau_s,
                        prep.t_stop_s, prep.burn_in_tau * prep.design.tau_s)
    assert np.array_equal(tr.t_s, z["t"]) and np.array_equal(tr.x, z["x"]) and np.array_equal(tr.x_cov, z["x_cov"])
    assert np.array_equal(read_op(reloaded["op"], prep.design), z["x_op"])
    assert int(z["n_ngspice_points"]) == len(reloaded["tran"].axis)


def test_csv_round_trips_and_none_writes_nothing(tmp_path):
    res = simulate(small("linear") | {"readout": {"waveforms": "csv"}}, tmp_path / "csv")
    names = sorted(p.name for p in (tmp_path / "csv").iterdir())
    assert "waveforms_op.csv" in names and "waveforms_tran.csv" in names and "waveforms.raw" not in names
    same_vectors(res.waveforms, read_waveforms(tmp_path / "csv"))
    header = (tmp_path / "csv" / "waveforms_tran.csv").read_text().splitlines()[0]
    assert header.split(",")[:2] == ["time", "v(x1)"]
    w = Waveforms("ac", np.array([1.0, 10.0]), {"frequency": np.array([1.0, 10.0]),
                                                 "v(s)": np.array([1 / 3 + 2j, -0.1 - 1e-300j])})
    back = parse_csv(format_csv(w), "ac")
    assert np.array_equal(back.vectors["v(s)"], w.vectors["v(s)"]) and np.array_equal(back.axis, w.axis)
    simulate(small("linear") | {"readout": {"waveforms": "none"}}, tmp_path / "none")
    assert not [p for p in (tmp_path / "none").iterdir() if p.name.startswith("waveforms")]


@pytest.mark.skipif(NGSPICE is None, reason="ngspice not installed")
@pytest.mark.parametrize("engine", ["ngspice-shared", "linear"])
def test_save_nodes_summing_node_is_the_virtual_ground(engine):
    """Ideal op-amp: V(sum) = V(inp) = 0 (the nullator of SPU_OPAMP_IDEAL holds it; ngspice's LU solves that row
    together with the others, so to the rounding of node voltages near 1 V: a few eps, here 4 eps). Macromodel: A0 (0 - V(sum)) = V(x) + C_p V(x)' with
    C_p = A0 / (2 pi GBW), so V(sum) = -V(x)/A0 - V(x)'/(2 pi GBW): exact at the .op, and along a noise-free
    transient up to the derivative's finite differences (5 % of the largest value)."""
    ideal = simulate(small(engine, kappa=0.0, save_nodes=["sum1", "v(sum2)"])).waveforms
    for key in ("op", "tran"):
        x_max = np.max(np.abs(ideal[key].node("x1")))
        assert x_max > 0.1 and np.max(np.abs(ideal[key].node("sum1"))) <= 4 * np.finfo(float).eps * x_max
    w = simulate(small(engine, macro=True, kappa=0.0, save_nodes=["sum1", "v(sum2)", "xn1", "i(VOI1)"])).waveforms
    for i in (1, 2):
        x, s = w["op"].node(f"x{i}")[0], w["op"].node(f"sum{i}")[0]
        assert abs(x) > 0.1 and s == pytest.approx(-x / GAIN, rel=1e-9)
        t, x, s = w["tran"].axis, np.real(w["tran"].node(f"x{i}")), np.real(w["tran"].node(f"sum{i}"))
        theory = -x / GAIN - np.gradient(x, t) / (2 * np.pi * GBW_HZ)
        assert np.max(np.abs(s[5:] - theory[5:])) < 0.05 * np.max(np.abs(s)), engine
        # near 0 V: at most |x'|/(2 pi GBW) + |x|/A0 ~ (1/(2 pi GBW tau) + 1/A0) |x| = 0.9 % of the swing here
        tau_s = prepare(small(engine, macro=True)).design.tau_s
        assert 0 < np.max(np.abs(s)) < 1.5 * (1 / (2 * np.pi * GBW_HZ * tau_s) + 1 / GAIN) * np.max(np.abs(x))
    x1, xn1 = np.real(w["op"].node("x1"))[0], np.real(w["op"].node("xn1"))[0]
    assert abs(xn1 + x1) <= 3 * abs(x1) / GAIN          # the inverter output: -V(x1) up to its finite gain
    assert "i(voi1)" in {raw_name(k) for k in w["tran"].vectors}


def test_unknown_save_node_is_exit_2_naming_it(tmp_path, capsys):
    for bad, pattern in (("sum9", "no node 'sum9'"), ("i(vnope)", "no voltage source 'vnope'"),
                         ("x1) .include /etc/passwd", "is not a vector")):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(small("linear", save_nodes=["sum1", bad])))
        code = main(["netlist", str(path), "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert "save_nodes" in lines[0] and pattern in lines[0], lines[0]
        if pattern.startswith("no node"):
            assert "x1" in lines[0] and "sum1" in lines[0]   # some valid names
        assert not (tmp_path / "out" / "netlist.cir").exists()


@pytest.mark.skipif(NGSPICE is None, reason="ngspice not installed")
def test_netlist_and_noise_cir_run_standalone_once(tmp_path):
    """ngspice -b netlist.cir in the published folder runs each analysis once and writes netlist.raw, whose
    vectors are the ngspice-subprocess run's waveforms.raw; the shared engine loads the text without the control
    block. noise.cir likewise writes noise.raw with every .noise plot."""
    from spu_sim.analyses.noise import run_noise
    run = tmp_path / "run"
    simulate(small("ngspice-subprocess", save_nodes=["sum2"]), run)
    text = (run / "netlist.cir").read_text()
    assert "* Run: ngspice -b netlist.cir" in text and "writes netlist.raw" in text and "-r out.raw" not in text
    assert ".control" not in without_control(text) and ".tran" in without_control(text)
    log = ngspice_b(run, "netlist.cir")
    assert log.count("No. of Data Rows") == 2          # .op and .tran, once each
    same_vectors(read_waveforms(run), keyed(parse_raw_list((run / "netlist.raw").read_bytes())))
    cfg = small("ngspice-shared", kappa=0.01)
    cfg["circuit"] = {"topology": "opamp", "temperature": {"temp_c": 27.0}}
    noise = tmp_path / "noise"
    run_noise(cfg, noise, points_per_decade=4, span_decades=2.0, transient=False)
    text = (noise / "noise.cir").read_text()
    assert "* Run: ngspice -b noise.cir" in text and "writes noise.raw" in text and "netlist.cir" not in text
    assert (noise / "noise_waveforms.raw").is_file()
    ngspice_b(noise, "noise.cir")
    plots = keyed(parse_raw_list((noise / "noise.raw").read_bytes()))
    assert sorted(plots) == sorted(f"noise{t}_{k}" for k in range(3) for t in ("", "_total"))
    same_vectors(read_waveforms(noise, "noise_waveforms"), plots)


@pytest.mark.parametrize("engine,t_stop_tau", [("linear", 20000.0), ("ngspice-subprocess", 60.0)])
def test_engine_without_progress_reports_shows_elapsed_time_on_a_terminal(engine, t_stop_tau, monkeypatch, tmp_path):
    """run_engine(progress=True) on an engine that reports no progress writes 'engine <name>: running, N s' to a
    terminal (a pty) once the run outlasts the delay (here 0.02 s instead of 3 s), and clears it at the end."""
    prep = prepare(small(engine, t_stop_tau=t_stop_tau))
    circuit = build_circuit(prep)
    monkeypatch.setattr(progress_mod, "DELAY_S", 0.02)
    master, slave = os.openpty()
    with open(slave, "w") as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        _, took_s = run_engine(prep, circuit, tmp_path, progress=True)
        shown = ""
        while select.select([master], [], [], 0.5)[0]:   # a pty hands data over asynchronously: read until quiet
            shown += os.read(master, 1 << 16).decode()
    os.close(master)
    assert took_s > 0.05, "the run must outlast the delay for this test to mean anything"
    assert f"engine {engine}: running, 0 s" in shown and shown.endswith("\r"), (took_s, shown)


def test_linear_aggregated_runs_a_macro_op_amp_without_its_output_currents(tmp_path, capsys):
    """The op-amp output currents (saved for the supply-energy metric, not asked for) follow the white noise directly,
    which the aggregated noise mode cannot give at a time point: the run leaves them out (and the supply energy
    with them) instead of refusing the circuit; asked for in save_nodes, they are refused naming the fix."""
    res = simulate(small("linear-aggregated", macro=True, save_nodes=["sum1"]), tmp_path / "agg")
    tran = res.waveforms["tran"].vectors
    assert "v(x1)" in tran and "v(sum1)" in tran and not [k for k in tran if k.startswith("i(voi")]
    assert "energy_supply_j" not in res.arrays
    assert "i(voi1)" in simulate(small("linear", macro=True), tmp_path / "lin").waveforms["tran"].vectors
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(small("linear-aggregated", macro=True, save_nodes=["i(voi1)"])))
    assert main(["simulate", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "i(voi1)" in err and "simulation.backend: linear" in err
