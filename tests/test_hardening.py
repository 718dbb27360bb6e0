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
    from spu_sim.config import load_config
    path = tmp_path / "c.yaml"
    path.write_text("problem: {matrix: [[2, 0], [0, 1]], vector: [1, 1], kappa: 1e-2}\n"
                    "circuit: {integrator: {c_farad: 1e-9, r_min_ohm: 1.0e3}}\n")
    cfg = load_config(path)
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
