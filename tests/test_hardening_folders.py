"""Issue 24, class 4: a result folder holds one run, published whole, and nothing of a run outlives it.

Mechanisms (spu_sim.io): ``publish`` removes everything any earlier run of any family recorded in the folder's
manifest (a sweep records its own files with ``io.claim``), and moves a run published inside the stage (an
experiment's OUT/run/) with it; every experiment publishes through ``pipeline.staged`` (stage discarded and lock
released on any error, plots inside the stage); throw-away runs work in ``io.temp_folder`` (a killed run's folder
is removed by the next run); a failed run keeps a failed-* folder only on an engine that reads its files.
Each test failed on the code before the fix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import spd_problem
from spu_sim import io
from spu_sim.errors import SimulationError
from spu_sim.pipeline import simulate, write_netlist

ROOT = Path(__file__).resolve().parents[1]


def _assert_clean(out: Path) -> None:
    """No stage left, and the folder's lock is free (a new stage can be taken in this process)."""
    assert not list(out.glob(".stage-*"))
    io.discard(io.new_stage(out))


def test_a_publish_of_another_family_removes_the_earlier_runs_files(tmp_path):
    """Two families (netlist d = 8, then an ``spu-sim noise``-like family of another run) never mix."""
    out = tmp_path / "o"
    write_netlist(spd_problem(8, 5.0, t_stop_tau=2.0), out)           # family run: netlist + noise_1..8
    assert (out / "noise_8.txt").is_file()
    stage = io.new_stage(out)
    (stage / "crosscheck.json").write_text("{}")
    io.publish(stage, out, family="crosscheck")
    assert not (out / "noise_8.txt").exists() and not (out / "netlist.cir").exists()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["crosscheck.json"]


def test_a_run_published_after_a_sweep_removes_the_sweeps_files(tmp_path):
    from spu_sim.sweep import run_sweep
    cfg = spd_problem(2, 5.0, t_stop_tau=5.0)
    cfg["sweep"] = {"grid": {"simulation.seed": [0, 1]}, "workers": 1}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "o"
    run_sweep(path, out, progress=False, plots=False)
    assert (out / "runs").is_dir() and (out / "summary.csv").is_file()
    simulate(spd_problem(2, 5.0, t_stop_tau=5.0), out)
    assert not (out / "runs").exists() and not (out / "plan.json").exists() and not (out / "summary.csv").exists()
    assert (out / "result.npz").is_file()


def _sc_clock_config(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "sc_clock.yaml").read_text())
    data["simulation"].update(t_stop_tau=20.0, backend="linear")
    data["experiment"] = {"f_clk_tau": [4, 10], "bits": [3, 6], "ngspice_f_clk_tau": [10], "ngspice_bits": []}
    path = tmp_path / "sc.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_experiment_that_fails_mid_way_leaves_no_stage_and_no_lock(tmp_path, monkeypatch):
    from spu_sim.experiments import run_experiment, sc_clock

    def boom(*a, **k):
        raise RuntimeError("the simulated point failed")
    monkeypatch.setattr(sc_clock, "simulated_point", boom)
    out = tmp_path / "o"
    with pytest.raises(RuntimeError):
        run_experiment("sc_clock", _sc_clock_config(tmp_path), out)
    _assert_clean(out)
    simulate(spd_problem(2, 5.0, t_stop_tau=2.0), out)     # the same process can use the folder at once


def test_an_experiments_plots_are_published_with_its_numbers(tmp_path, monkeypatch):
    """A plot that fails: nothing of the experiment is published (the plot is drawn inside the stage)."""
    from spu_sim.experiments import posterior_scaling, run_experiment

    def fake_measure(cfg_dict, exp, base_dir):
        d = cfg_dict["problem"]["X"]["random"]["d"]
        row = {q: float(d) for q in posterior_scaling.QUANTITIES + (
            "lambda_min", "initial_distance", "power_resistive_w", "power_quiescent_w", "ess")}
        return {**row, "d": d, "n": 2 * d, "engine": "linear"}

    def broken_plot(out_dir):
        raise RuntimeError("plot failed")
    monkeypatch.setattr(posterior_scaling, "measure", fake_measure)
    monkeypatch.setattr(posterior_scaling, "plot", broken_plot)
    data = yaml.safe_load((ROOT / "configs" / "posterior_scaling.yaml").read_text())
    data["experiment"].update(d_values=[2, 3], replicates=1)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "o"
    with pytest.raises(RuntimeError, match="plot failed"):
        run_experiment("posterior_scaling", path, out)
    assert not (out / "scaling.json").exists()
    _assert_clean(out)


def test_a_killed_runs_temporary_folder_is_removed_by_the_next_run(tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cfg = spd_problem(2, 5.0, t_stop_tau=2000.0, noise_dt_tau=0.01)
    code = (f"from spu_sim.pipeline import simulate; simulate({cfg!r})")
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp.glob("spu-sim-*/noise_*.txt")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert list(tmp.glob("spu-sim-*")), "the run did not start its temporary folder"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list(tmp.glob("spu-sim-*"))                       # killed: it could not clean up
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    simulate(spd_problem(2, 5.0, t_stop_tau=2.0))
    assert not list(tmp.glob("spu-sim-*"))


def test_a_failed_run_on_an_engine_that_reads_no_files_keeps_no_failed_folder(tmp_path):
    out = tmp_path / "o"
    cfg = spd_problem(8, 5.0, t_stop_tau=2000.0, backend="linear", timeout_s=0.05)
    with pytest.raises(SimulationError):
        simulate(cfg, out)
    assert not list(out.glob("failed-*"))
    _assert_clean(out)
    assert not np.any([p.name.startswith("noise_") for p in out.iterdir()])
