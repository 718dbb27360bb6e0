"""One test per class of failure found by the adversarial pass (issue "Hardening"): each failed on the code
before the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import spd_problem
from spu_sim import io
from spu_sim.cli import main
from spu_sim.compare import compare
from spu_sim.errors import BadInputError
from spu_sim.pipeline import simulate, write_netlist


def _yaml(tmp_path, cfg, name="cfg.yaml") -> str:
    import yaml
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


# ---------------------------------------------------------------- 1. a result folder never mixes two runs


def test_stale_outputs_of_an_earlier_run_do_not_survive(tmp_path):
    out = tmp_path / "o"
    write_netlist(spd_problem(8, 5.0, t_stop_tau=2.0), out)
    assert (out / "noise_8.txt").is_file()
    write_netlist(spd_problem(4, 5.0, t_stop_tau=2.0), out)
    assert (out / "noise_4.txt").is_file() and not (out / "noise_5.txt").exists()
    compare(spd_problem(3, 5.0, t_stop_tau=5.0), out)
    assert (out / "metrics.json").is_file() and list(out.glob("*.png"))
    simulate(spd_problem(2, 5.0, t_stop_tau=5.0), out)          # a new run: the old metrics and plots go
    assert not (out / "metrics.json").exists() and not list(out.glob("*.png"))
    assert np.load(out / "result.npz")["x"].shape[1] == 2
    manifest = json.loads((out / io.MANIFEST_NAME).read_text())
    assert "result.npz" in manifest["run"]["files"] and "metrics.json" not in manifest["run"]["files"]


def test_a_second_run_into_a_locked_folder_is_refused_and_orphan_stages_are_removed(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    orphan = out / ".stage-killed"
    orphan.mkdir()
    (orphan / "result.npz").write_bytes(b"half")
    stage = io.new_stage(out)                                   # a run in progress holds the lock
    assert not orphan.exists()
    with pytest.raises(BadInputError, match="another spu-sim run is writing into this folder"):
        simulate(spd_problem(2, 5.0, t_stop_tau=2.0), out)
    io.discard(stage)
    simulate(spd_problem(2, 5.0, t_stop_tau=2.0), out)          # released: the next run proceeds
    assert (out / "result.npz").is_file() and not list(out.glob(".stage-*"))


def test_compare_publishes_all_its_files_together(tmp_path, monkeypatch):
    """A compare that fails after the simulation (here: in the plots) leaves the folder as it was."""
    out = tmp_path / "o"
    import spu_sim.plots as plots

    def boom(*a, **k):
        raise RuntimeError("plotting failed")
    monkeypatch.setattr(plots, "plot_compare", boom)
    with pytest.raises(RuntimeError):
        compare(spd_problem(2, 5.0, t_stop_tau=5.0), out)
    assert not (out / "result.npz").exists() and not (out / "metrics.json").exists()
    assert not list(out.glob(".stage-*"))


def test_out_dir_that_is_a_file_is_bad_input(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["netlist", _yaml(tmp_path, spd_problem(2, 5.0)), "--out", str(f)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------- 6. bad input is exit 2, types are strict


@pytest.mark.parametrize("patch, expect", [
    ({"simulation": {"seed": True}}, "simulation.seed"),
    ({"simulation": {"seed": "5"}}, "simulation.seed"),
    ({"simulation": {"seed": -1}}, "simulation.seed"),
    ({"problem": {"matrix": {"random": {"kind": "spd", "d": "4"}}}}, "problem.matrix"),
    ({"circuit": {"tolerance": {"seed": -3}}}, "circuit.tolerance.seed"),
])
def test_strict_types_and_negative_seeds_are_config_errors(tmp_path, capsys, patch, expect):
    cfg = spd_problem(2, 5.0)
    for section, values in patch.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    assert main(["netlist", _yaml(tmp_path, cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "o").exists()


def test_yaml_floats_without_a_dot_or_sign_are_numbers(tmp_path):
    from spu_sim.run_config import load_run_config
    path = tmp_path / "c.yaml"
    path.write_text("problem: {matrix: [[2, 0], [0, 1]], vector: [1, 1], kappa: 1e-2}\n"
                    "circuit: {integrator: {c_farad: 1e-9, r_min_ohm: 1.0e3}}\n")
    cfg = load_run_config(path)
    assert cfg.problem.kappa == 0.01 and cfg.circuit.integrator.r_min_ohm == 1000.0


@pytest.mark.parametrize("content, expect", [
    (b"problem: {matrix: [[1]], vector: [1]}\nproblem: {matrix: [[2]], vector: [1]}\n", "duplicate key 'problem'"),
    (b"problem:\n  kappa: 0.1\n  kappa: 0.2\n  matrix: [[1]]\n  vector: [1]\n", "duplicate key 'kappa'"),
    (bytes(range(256)) * 4, "not a text file"),
])
def test_duplicate_keys_and_binary_files_are_config_errors(tmp_path, capsys, content, expect):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    assert main(["netlist", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err


# ---------------------------------------------------------------- 2. non-physical elements never reach a netlist


def test_a_tolerance_draw_that_makes_an_element_negative_is_an_error_naming_the_knob(tmp_path, capsys):
    cfg = spd_problem(4, 5.0, circuit={"tolerance": {"global_rel": 0.45, "local_rel": 0.49, "seed": 7}})
    assert main(["netlist", _yaml(tmp_path, cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "circuit.tolerance" in err and "<= 0, not physical" in err
    assert not (tmp_path / "o" / "netlist.cir").exists()


def test_an_extreme_temperature_is_an_error_naming_the_knob():
    from spu_sim.errors import DesignError
    from spu_sim.pipeline import prepare
    cfg = spd_problem(3, 5.0, circuit={"temperature": {"temp_c": 1000.0, "r_tc1_per_k": -2e-3}})
    with pytest.raises(DesignError, match=r"circuit\.temperature: .* <= 0 \(not physical\)"):
        prepare(cfg)


def test_every_circuit_is_checked_for_physical_values():
    from spu_sim.circuit import Capacitor, Circuit, Resistor, check_physical
    from spu_sim.errors import DesignError
    ok = Circuit("t", [Resistor("R1", "a", "0", 1e3), Capacitor("C1", "a", "0", 1e-9)], ["a"])
    check_physical(ok)
    for bad in (Resistor("R1", "a", "0", -1e3), Resistor("R1", "a", "0", float("inf")), Capacitor("C1", "a", "0", 0.0)):
        with pytest.raises(DesignError, match="element [RC]1"):
            check_physical(Circuit("t", [bad], ["a"]))


# ---------------------------------------------------------------- 10. the noise DAC delivers what is configured


@pytest.mark.parametrize("kappa", [0.05, 1.0, 100.0])
def test_the_noise_dac_amplitude_never_exceeds_the_configured_rms(kappa):
    from spu_sim.pipeline import prepare
    cfg = {"problem": {"matrix": [[2.0, -0.5], [-0.5, 1.0]], "vector": [1.0, 0.5], "kappa": kappa},
           "simulation": {"t_stop_tau": 10.0}}
    d = prepare(cfg).design
    assert d.noise_v_rms <= 0.5 * (1 + 1e-12)
    # the intensity it delivers is still the one kappa asks for (R_noise follows the amplitude)
    assert d.kappa_realized == pytest.approx(kappa, rel=1e-9)


def test_a_noise_level_the_dac_cannot_deliver_is_an_error_naming_the_fix(tmp_path, capsys):
    cfg = {"problem": {"matrix": [[2.0, -0.5], [-0.5, 1.0]], "vector": [1.0, 0.5], "kappa": 0.05},
           "circuit": {"integrator": {"noise_v_rms": 0.01, "r_noise_min_ohm": 1000.0}}}
    assert main(["netlist", _yaml(tmp_path, cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "set noise_v_rms to at least" in err and "r_noise_min_ohm" in err


# ---------------------------------------------------------------- 7. messages are bounded and name the real cause


def test_an_error_message_is_one_bounded_line(tmp_path, capsys):
    cfg = spd_problem(2, 5.0)
    cfg["circuit"] = {"topology": "x" * 1_000_000}
    assert main(["netlist", _yaml(tmp_path, cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 1000 and "is not a topology" in err


@pytest.mark.parametrize("problem, cause", [
    ({"matrix": [[1.0, 1 - 1e-13], [1 - 1e-13, 1.0]], "vector": [1.0, 0.5]}, "nearly singular"),
    ({"matrix": [[2.0, -0.5], [-0.5, 1.0]], "vector": [1.0, 0.5], "kappa": 1e300}, "set by 4 sigma of the noise (problem.kappa)"),
    ({"matrix": [[2.0, -0.5], [-0.5, 1.0]], "vector": [1.0, 0.5], "x0": [1e12, 0.0]}, "set by problem.x0"),
])
def test_scale_errors_name_their_real_cause(problem, cause):
    from spu_sim.pipeline import prepare
    with pytest.raises(BadInputError) as info:
        prepare({"problem": problem})
    assert cause in str(info.value)


# ---------------------------------------------------------------- 8. output paths stay inside the out folder


@pytest.mark.parametrize("group", ["../escape", "a/b", ".hidden", "x" * 200])
def test_a_plot_group_name_cannot_leave_the_out_folder(tmp_path, capsys, group):
    cfg = {"data": {"name": "blobs", "n_samples": 60}, "model": {"name": "logreg"},
           "train": {"steps": 2, "batch_size": 8, "progress": False, "optimizers": [{"name": "sgd", "lr": 0.1}]},
           "plots": {"groups": {group: ["sgd"]}}}
    assert main(["train", _yaml(tmp_path, cfg), "--out", str(tmp_path / "run")]) == 2
    assert "plots.groups" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not list(tmp_path.parent.glob("*.png"))


def test_safe_file_names():
    assert io.safe_file_name("group_ab-1.png", "f") == "group_ab-1.png"
    for bad in ("../x", "a/b", "..", ".x", ""):
        with pytest.raises(BadInputError):
            io.safe_file_name(bad, "f")


# ---------------------------------------------------------------- 4. a timeout stops the run on every engine


@pytest.mark.parametrize("engine", ["ngspice-shared", "ngspice-subprocess"])
def test_a_timeout_stops_an_operating_point_within_a_small_multiple_of_the_limit(tmp_path, engine):
    """A 100k-resistor ladder: its load and .op take seconds; ngspice's own halt cannot stop either."""
    import time
    from spu_sim.engines import get_engine
    from spu_sim.errors import SimulationError
    n = 100_000
    lines = ["* ladder", "V1 n0 0 DC 1"] + [f"R{k} n{k} n{k + 1} 1000" for k in range(n)] + [f"RL n{n} 0 1000", ".op", ".end"]
    (tmp_path / "netlist.cir").write_text("\n".join(lines) + "\n")
    t0 = time.monotonic()
    with pytest.raises(SimulationError, match="did not finish within 0.3 s"):
        get_engine(engine).run_netlist(tmp_path / "netlist.cir", timeout_s=0.3)
    assert time.monotonic() - t0 < 5 * 0.3


# ---------------------------------------------------------------- 9. Ctrl-C exits 130 cleanly


def test_ctrl_c_during_an_in_process_run_exits_130_every_time(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    data = spd_problem(8, 5.0, t_stop_tau=2000.0, kappa=0.01)
    data.setdefault("readout", {})["waveforms"] = "none"   # a long run whose waveform file would exceed max_disk_mb
    cfg = _yaml(tmp_path, data)
    for k in range(3):
        out = tmp_path / f"o{k}"
        proc = subprocess.Popen([sys.executable, "-m", "spu_sim.cli", "simulate", cfg, "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not list(out.glob(".stage-*/netlist.cir")) and time.monotonic() < deadline:
            time.sleep(0.05)                                   # the stage exists: the noise files are being written
        time.sleep(1.0 + 0.5 * k)                              # and then ngspice runs
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (k, proc.returncode, err[-500:])
        assert "interrupted" in err and "Traceback" not in err
        assert not (out / "result.npz").exists() and not list(out.glob(".stage-*"))


# ---------------------------------------------------------------- 3. limits are checked from the config, before work


def test_noise_free_runs_of_badly_scaled_problems_get_a_readout_step_from_the_dynamics():
    from spu_sim.pipeline import estimates, prepare
    cfg = {"problem": {"matrix": [[1e6, 0.0], [0.0, 1e4]], "vector": [1.0, 1.0], "kappa": 0.0},
           "simulation": {"t_stop_tau": 20.0, "analyses": ["tran"]},
           "circuit": {"integrator": {"r_max_ohm": 1e9}}}
    prep = prepare(cfg)
    assert estimates(prep)["readout_values"] <= 2 * 2001


@pytest.mark.parametrize("patch, knob", [
    ({"readout": {"sample_dt_tau": 1e-9}}, "readout.sample_dt_tau"),
    ({"simulation": {"t_stop_tau": 50.0, "max_noise_samples": 50_000}}, "simulation.max_noise_samples"),
    ({"simulation": {"t_stop_tau": 50.0, "max_disk_mb": 1.0}}, "simulation.max_disk_mb"),
])
def test_limits_are_refused_before_anything_runs(tmp_path, capsys, patch, knob):
    """Each refused in well under a second (no design of noise, no netlist, no ngspice); the noise limit counts
    every source (d = 8 sources x 12.5k steps, each source alone below the limit)."""
    cfg = spd_problem(8, 5.0, kappa=0.01)
    for section, values in patch.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    assert main(["simulate", _yaml(tmp_path, cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert knob in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_timeout_stops_the_linear_engine_within_a_small_multiple_of_the_limit():
    """A 3000-node RC ladder: the modal form of its state matrix alone takes seconds of BLAS."""
    import time
    from spu_sim.circuit import Capacitor, Circuit, Resistor, Tran, VoltageSource
    from spu_sim.engines import get_engine
    from spu_sim.errors import SimulationError
    n = 3000
    els = [VoltageSource("V1", "n0", "0", 1.0)]
    for k in range(n):
        els += [Resistor(f"R{k}", f"n{k}", f"n{k + 1}", 1e3), Capacitor(f"C{k}", f"n{k + 1}", "0", 1e-9, ic_v=0.0)]
    circuit = Circuit("ladder", els, [f"n{n}"], [Tran(1e-6, 1e-3, 1e-6)], saves=[f"v(n{n})"])
    t0 = time.monotonic()
    with pytest.raises(SimulationError, match="did not finish within 0.3 s"):
        get_engine("linear").run(circuit, None, timeout_s=0.3)
    assert time.monotonic() - t0 < 5 * 0.3
