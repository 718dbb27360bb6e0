"""Each command prints its key numbers in words with units (issue 23, part 4): simulate (solution errors), posterior
(mean and covariance errors, mixing time, energy), train (final loss and accuracy, time per step, failures) and
experiment (the experiment's own numbers, read from its files). Small runs on the linear engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.cli import main
from spu_sim.config.base import parse_yaml

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _small(tmp_path: Path, name: str, edit) -> Path:
    cfg = parse_yaml((CONFIGS / f"{name}.yaml").read_text())
    edit(cfg)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _linear(t_stop_tau: float):
    def edit(cfg):
        cfg["simulation"].update(t_stop_tau=t_stop_tau, backend="linear")
        cfg["simulation"].pop("max_noise_samples", None)
    return edit


def test_simulate_prints_the_solution_errors_in_percent(tmp_path, capsys):
    assert main(["simulate", str(_small(tmp_path, "opamp_d8", _linear(20.0))), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "solution at the operating point (.op) against A^-1 b: " in out
    line = next(x for x in out.splitlines() if x.startswith("time average of the transient against A^-1 b: "))
    assert line.endswith(" %") and 0.0 < float(line.split(": ")[1].split()[0]) < 100.0


def test_simulate_of_a_macro_op_amp_prints_energy_and_mean_power(tmp_path, capsys):
    """The supply energy and its mean power over the run (energy / duration, as compare's metrics have it)."""
    def edit(cfg):
        _linear(5.0)(cfg)
        cfg["circuit"]["opamp"]["v_out_max_v"] = None          # the linear engine runs no clipped stage
    assert main(["simulate", str(_small(tmp_path, "opamp_macro_d8", edit)), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    energy = float(re.search(r"energy drawn from the op-amp supplies over the run: (\S+) J", out).group(1))
    power = float(re.search(r"mean supply power of the op-amps: (\S+) W", out).group(1))
    z = np.load(tmp_path / "o" / "result.npz")
    duration_s = float(z["t_supply_s"][-1] - z["t_supply_s"][0])
    assert power == pytest.approx(energy / duration_s, rel=1e-3)      # 4 printed digits


def test_posterior_prints_errors_mixing_time_and_energy(tmp_path, capsys):
    assert main(["posterior", str(_small(tmp_path, "posterior_gaussian_d4", _linear(20.0))), "--out",
                 str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "posterior covariance against the exact reference: " in out
    assert any(x.startswith("mixing time: ") and " tau = " in x and x.split("(")[0].rstrip().endswith(" s")
               for x in out.splitlines())
    assert any(x.startswith("energy per mixing time: ") and x.endswith(" J") for x in out.splitlines())


def test_train_prints_each_optimisers_final_numbers_in_words(tmp_path, capsys):
    def edit(cfg):
        cfg["train"]["steps"] = 3
        cfg["train"]["optimizers"] = [o for o in cfg["train"]["optimizers"] if o.get("backend") != "circuit"][:2]
        cfg.pop("plots", None)
    cfg_path = _small(tmp_path, "tngd_digits", edit)
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    words = [x for x in out.splitlines() if "final test loss" in x]
    assert len(words) == 2
    for x in words:
        assert "3 steps" in x and "test accuracy " in x and " %" in x and "modelled time per step " in x and " ms" in x
    assert "optimisers: 2 finished, 0 failed; run time " in out


def test_experiment_prints_its_key_numbers(tmp_path, capsys):
    def edit(cfg):
        _linear(40.0)(cfg)
        cfg["experiment"] = {"ngspice_f_clk_tau": [5], "ngspice_bits": [], "f_clk_tau": [5, 20], "bits": [4, 8]}
    assert main(["experiment", "sc_clock", str(_small(tmp_path, "sc_clock", edit)), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "f_clk_tau from 5 to 20 clock periods per tau: covariance error of the clocked process (theory) " in out
    assert "energy per clock " in out and " J" in out
    assert "simulated f_clk_tau = 5: covariance error " in out and "against the clocked theory" in out


def test_settling_words_say_what_was_measured():
    """The measured settling time counts a coordinate settled inside 1 % of the initial error plus the 4-sigma noise
    band (spu_sim.parts.settling), the predicted one without the band: the words say so, else a measured time far
    below the predicted one reads as a contradiction (0.58 tau against 4.6 tau on a 5 x 5 problem with kappa 0.01)."""
    from spu_sim.cli import KEY_NUMBERS
    from spu_sim.parts.settling import N_SIGMA, SETTLE_TOL
    words = {k: w for k, w, _ in KEY_NUMBERS}
    assert f"{100 * SETTLE_TOL:g} %" in words["settle_measured_tau"]
    assert f"{N_SIGMA:g}-sigma noise band" in words["settle_measured_tau"]
    assert "noise-free" in words["settle_predicted_exact_tau"]


def test_netlist_and_simulate_say_how_many_entries_were_dropped(tmp_path, capsys):
    """r_bits: 3 on a 5 x 5 SPD matrix of condition 30 drops 6 entries: the terminal says so (with design.json's
    count) and simulate gives the realised matrix's error, which explains the solution error beside it."""
    cfg = {"problem": {"matrix": {"random": {"kind": "spd", "d": 5, "condition": 30, "seed": 3}},
                       "vector": {"random": {"kind": "normal", "seed": 4}}, "kappa": 0.0},
           "circuit": {"quantization": {"r_bits": 3}},
           "simulation": {"t_stop_tau": 2.0, "backend": "linear"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["netlist", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "n")]) == 0
    out = capsys.readouterr().out
    dropped = json.loads((tmp_path / "n" / "design.json").read_text())["dropped_entries"]
    assert dropped > 0 and f"{dropped} dropped (quantised to code 0)" in out
    assert main(["simulate", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    z = np.load(tmp_path / "s" / "result.npz")
    err = np.linalg.norm(z["A_realized"] - z["A"]) / np.linalg.norm(z["A"])
    line = next(x for x in out.splitlines() if x.startswith("realised matrix against A"))
    assert float(line.split(": ")[1].split()[0]) == pytest.approx(100 * err, rel=1e-2)
    assert f"{dropped} dropped" in out
