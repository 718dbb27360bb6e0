"""Every class of bad input: exit code 2, one readable line naming the field, no traceback, and
finished results in OUT are left untouched. ngspice failures: exit 1, ngspice's message, run folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from spu_sim.topologies import TOPOLOGIES
import yaml

from spu_sim.cli import main
from spu_sim.run_config import build_problem_from, load_run_config
from spu_sim.errors import ConfigError

GOOD = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.5], "kappa": 0.0},
        "simulation": {"analyses": ["op"]}}


def run_cli(tmp_path: Path, cfg: dict | str, capsys, cmd: str = "netlist", name: str = "c.yaml", out: str = "out"):
    path = tmp_path / name
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    code = main([cmd, str(path), "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    return code, err


def with_(path: str, value) -> dict:
    import copy
    cfg = copy.deepcopy(GOOD)
    node = cfg
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return cfg


CASES = [
    ("unknown key", with_("circuit.integrater", {"c_farad": 1e-9}), r"circuit\.integrater: unknown key"),
    ("wrong type", with_("simulation.t_stop_tau", "long"), r"simulation\.t_stop_tau: .*number"),
    ("bad choice", with_("circuit.topology", "opamp_x"), r"circuit\.topology: 'opamp_x' is not a topology; choose one of: " + re.escape(", ".join(TOPOLOGIES.names()))),
    ("negative", with_("problem.kappa", -1), r"problem\.kappa: .*greater than or equal to 0"),
    ("shape", with_("problem.vector", [1.0, 2.0, 3.0]), r"problem\.vector: has 3 entries but the matrix is 2x2"),
    ("ragged", with_("problem.matrix", [[1.0, 2.0], [3.0]]), r"problem\.matrix: rows .* same length"),
    ("nan", with_("problem.matrix", [[2.0, float("nan")], [float("nan"), 2.0]]), r"problem\.matrix\[0\]\[1\]: is nan"),
    ("inf in vector", with_("problem.vector", [1.0, float("inf")]), r"problem\.vector\[1\]: .*finite"),
    ("not symmetric", with_("problem.matrix", [[2.0, -1.0], [0.0, 2.0]]), r"problem\.matrix: not symmetric"),
    ("not positive definite", with_("problem.matrix", [[1.0, 2.0], [2.0, 1.0]]), r"problem\.matrix: not positive definite"),
    ("unrealisable resistor", with_("problem.matrix", [[2.0, -1e-9], [-1e-9, 2.0]]), r"problem\.matrix\[0\]\[1\] = -1e-09 needs R = .* r_max_ohm"),
    ("missing file", with_("problem.matrix", "nothere.npy"), r"problem\.matrix: file .*nothere\.npy.* not found"),
    ("range order", with_("circuit.integrator", {"r_min_ohm": 1e6, "r_max_ohm": 1e3}), r"circuit\.integrator: .*r_max_ohm"),
    ("too many noise samples", with_("simulation", {"t_stop_tau": 1e7, "max_noise_samples": 20_000_000})
     | {"problem": GOOD["problem"] | {"kappa": 0.01}},
     r"simulation\.t_stop_tau: .*noise samples"),
]


@pytest.mark.parametrize("name,cfg,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, name, cfg, pattern):
    code, err = run_cli(tmp_path, cfg, capsys)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "out" / "netlist.cir").exists()


def test_invalid_yaml_and_non_mapping(tmp_path, capsys):
    code, err = run_cli(tmp_path, "problem: [1, 2\n", capsys)
    assert code == 2 and "not valid YAML" in err and len(err.strip().splitlines()) == 1
    code, err = run_cli(tmp_path, "- 1\n- 2\n", capsys)
    assert code == 2 and "top level must be a mapping" in err


def test_missing_config_file(tmp_path, capsys):
    code = main(["simulate", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")])
    assert code == 2 and "config file not found" in capsys.readouterr().err


def test_npy_matrix_relative_to_config(tmp_path):
    np.save(tmp_path / "A.npy", np.array([[3.0, 1.0], [1.0, 2.0]]))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(with_("problem.matrix", "A.npy")))
    p = build_problem_from(tmp_path / "c.yaml")
    assert np.allclose(p.A, [[3.0, 1.0], [1.0, 2.0]])


def test_error_names_nested_list_index():
    with pytest.raises(ConfigError, match=r"simulation\.analyses\[1\]: 'dc' is not a valid value; choose one of: op, tran"):
        load_run_config(with_("simulation.analyses", ["op", "dc"]))


@pytest.mark.ngspice
def test_bad_input_keeps_finished_results(tmp_path, capsys):
    code, _ = run_cli(tmp_path, GOOD, capsys, cmd="simulate")
    assert code == 0
    result = tmp_path / "out" / "result.npz"
    before = result.read_bytes()
    code, err = run_cli(tmp_path, with_("problem.matrix", [[1.0, 2.0], [2.0, 1.0]]), capsys, cmd="simulate")
    assert code == 2
    assert result.read_bytes() == before
    assert not list((tmp_path / "out").glob(".stage-*"))


@pytest.mark.ngspice
def test_ngspice_failure_is_one_line_with_run_folder_and_keeps_results(tmp_path, capsys):
    """A run that ngspice cannot finish in time (a real ngspice run, halted) fails with exit 1."""
    good = with_("simulation", {"analyses": ["op"]})
    assert run_cli(tmp_path, good, capsys, cmd="simulate")[0] == 0
    before = (tmp_path / "out" / "result.npz").read_bytes()
    slow = with_("simulation", {"t_stop_tau": 20000, "timeout_s": 0.2, "max_noise_samples": 10_000_000})
    slow["problem"]["kappa"] = 0.01
    slow["readout"] = {"waveforms": "none"}   # its waveforms would take ~0.5 GB: the disk check refuses them
    code, err = run_cli(tmp_path, slow, capsys, cmd="simulate")
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "did not finish within 0.2 s" in err
    m = re.search(r"run folder: (\S+)\]", err)
    assert m and (Path(m.group(1)) / "netlist.cir").is_file()
    assert (tmp_path / "out" / "result.npz").read_bytes() == before
