"""Sweeps: config validation, the worker-process runner (crashes, timeouts), and real-ngspice sweeps that
are killed and resumed, contain an ngspice failure, or run on a Dask LocalCluster. Nothing is mocked."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from spu_sim.errors import ConfigError
from spu_sim.runs.scheduler import run_in_processes
from spu_sim.runs.spec import load_sweep
from spu_sim.sweep import run_sweep

REPO = Path(__file__).resolve().parents[1]

BASE = {"problem": {"matrix": {"random": {"kind": "spd", "d": 3, "condition": 4, "seed": 1}},
                    "vector": {"random": {"kind": "normal", "seed": 2}}, "kappa": 0.01},
        "simulation": {"t_stop_tau": 20.0, "seed": 0}}


def write_cfg(tmp_path: Path, sweep: dict, name: str = "sweep.yaml", **extra) -> Path:
    data = {**BASE, **extra, "sweep": sweep}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def read_summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- validation (no ngspice)


def test_plan_is_grid_product_times_draws_with_stable_ids(tmp_path):
    cfg = write_cfg(tmp_path, {"grid": {"simulation.t_stop_tau": [10, 20], "circuit.integrator.c_farad": [1e-9, 1e-8]},
                               "monte_carlo": {"runs": 3, "seed": 5, "seed_key": "simulation.seed"}})
    sweep = load_sweep(cfg)
    assert len(sweep.runs) == 2 * 2 * 3
    assert len({r.run_id for r in sweep.runs}) == 12
    assert [r.params["simulation.seed"] for r in sweep.runs[:3]] == [5, 6, 7]
    assert [r.run_id for r in load_sweep(cfg).runs] == [r.run_id for r in sweep.runs]


@pytest.mark.parametrize("grid, expected", [
    ({"circuit.integrator.no_such_knob": [1]}, "sweep.grid.circuit.integrator.no_such_knob"),
    ({"circuit.integrator.c_farad": [1e-9, -1.0]}, "sweep.grid.circuit.integrator.c_farad"),
    ({"simulation.t_stop_tau.deeper": [1]}, "sweep.grid.simulation.t_stop_tau.deeper"),
])
def test_bad_grid_key_or_value_is_config_error_naming_it(tmp_path, grid, expected):
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        load_sweep(write_cfg(tmp_path, {"grid": grid}))


def test_bad_sweep_section_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"sweep\.gird"):
        load_sweep(write_cfg(tmp_path, {"gird": {"simulation.seed": [1]}}))
    with pytest.raises(ConfigError, match="mitigation"):
        load_sweep(write_cfg(tmp_path, {"grid": {"simulation.seed": [1]}, "mitigation": {"enabled": True}}))


def test_relative_matrix_path_resolves_against_the_yaml_folder(tmp_path, monkeypatch):
    import numpy as np
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "A.npy", np.diag([1.0, 2.0]))
    cfg = write_cfg(tmp_path, {"grid": {"simulation.seed": [1, 2]}},
                    problem={"matrix": "data/A.npy", "vector": [1.0, 1.0]})
    monkeypatch.chdir("/")
    sweep = load_sweep(cfg)
    assert sweep.runs[0].config["problem"]["matrix"] == str(tmp_path / "data" / "A.npy")


# ---------------------------------------------------------------- the worker-process runner (no ngspice)


def _misbehave(task):
    if task == "segv":
        import faulthandler
        faulthandler.disable()  # the crash is the point; keep pytest's traceback dump out of the log
        os.kill(os.getpid(), signal.SIGSEGV)
    if task == "exit":
        os._exit(3)
    if task == "hang":
        time.sleep(60)
    if task == "raise":
        raise RuntimeError("boom")
    return task * 2


def test_runner_survives_crashes_and_timeouts():
    done = {}
    tasks = [(k, t) for k, t in enumerate([1, "segv", 2, "exit", 3, "hang", 4, "raise", 5])]
    t0 = time.monotonic()
    run_in_processes(_misbehave, tasks, workers=2, timeout_s=2.0,
                     on_done=lambda k, ok, v: done.setdefault(k, (ok, v)))
    assert time.monotonic() - t0 < 30
    assert sorted(done) == list(range(9))
    assert done[0] == (True, 2) and done[8] == (True, 10)
    assert not done[1][0] and "SIGSEGV" in done[1][1]
    assert not done[3][0] and "exit code 3" in done[3][1]
    assert not done[5][0] and "timed out" in done[5][1]
    assert not done[7][0] and "boom" in done[7][1]


# ---------------------------------------------------------------- real ngspice


@pytest.mark.ngspice
def test_injected_ngspice_failure_is_recorded_and_the_others_succeed(tmp_path):
    # simulation.timeout_s = 1 ms: ngspice really starts and is halted by the backend (SimulationError)
    cfg = write_cfg(tmp_path, {"grid": {"simulation.timeout_s": [None, 0.001], "simulation.seed": [0, 1]},
                               "workers": 2})
    out = tmp_path / "out"
    run_sweep(str(cfg), str(out), progress=False)
    rows = read_summary(out)
    assert len(rows) == 4
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["simulation.timeout_s"] for r in failed] == ["0.001", "0.001"]
    assert all("did not finish within" in r["error"] for r in failed)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 2 and all(r["error"] == "" and float(r["mean_rel_err"]) < 0.5 for r in ok)
    assert (out / "error_vs_simulation_timeout_s.png").is_file()


@pytest.mark.ngspice
def test_killed_sweep_resumes_with_every_row_exactly_once(tmp_path):
    n = 10
    cfg = write_cfg(tmp_path, {"monte_carlo": {"runs": n, "seed_key": "simulation.seed"}, "workers": 2})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "spu_sim.cli", "sweep", str(cfg), "--out", str(out), "--no-plots"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = out / "runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(runs.glob("*.json"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert 3 <= len(first) < n, "the sweep must be killed mid-way"
    time.sleep(0.5)  # workers die with their parent (PR_SET_PDEATHSIG): nothing more is written
    assert {p.name for p in runs.glob("*.json")} == set(first)

    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = read_summary(out)
    assert len(rows) == n
    assert sorted(int(r["index"]) for r in rows) == list(range(n))
    assert len({r["run_id"] for r in rows}) == n
    assert all(r["status"] == "ok" for r in rows)
    # finished runs were skipped, not redone
    assert all((runs / name).stat().st_mtime_ns == t for name, t in first.items())


@pytest.mark.ngspice
def test_sweep_on_a_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    cfg = write_cfg(tmp_path, {"grid": {"simulation.seed": [0, 1, 2]}})
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run_sweep(str(cfg), str(out), scheduler=cluster.scheduler_address, progress=False)
    rows = read_summary(out)
    assert [r["status"] for r in rows] == ["ok"] * 3
    import json
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert os.getpid() not in {r["pid"] for r in records}  # ran in the cluster's worker processes


def test_summary_and_mitigation_from_stored_run_files(tmp_path):
    """summary.csv / mitigation.csv / yield are rebuilt from the run files alone (no simulation here)."""
    import json

    import numpy as np

    from spu_sim import io
    from spu_sim.runs.summary import write_summary

    cfg = write_cfg(tmp_path, {"monte_carlo": {"runs": 4, "seed_key": "simulation.seed"},
                               "mitigation": {"enabled": True, "group_size": 2}, "threshold": 0.15})
    sweep = load_sweep(cfg)
    out = tmp_path / "out"
    x_star = np.array([1.0, 0.0])
    xs = [np.array([1.1, 0.0]), np.array([0.9, 0.0]), np.array([1.2, 0.0]), None]  # draw 3 failed
    for run, x in zip(sweep.runs, xs):
        rec = {"run_id": run.run_id, "index": run.index, "params": run.params, "draw": run.draw, "seed": 0,
               "run_time_s": 1.0}
        if x is None:
            rec.update(status="failed", error="SimulationError: boom", metrics={})
        else:
            err = float(np.linalg.norm(x - x_star))
            rec.update(status="ok", error="", metrics={"mean_rel_err": err},
                       estimates={"x_mean": x.tolist(), "x_star": x_star.tolist()})
        io.atomic_write_json(out / "runs" / f"{run.run_id}.json", rec)
    write_summary(sweep, out)
    rows = read_summary(out)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed"]
    assert rows[3]["error"] == "SimulationError: boom"
    with open(out / "mitigation.csv", newline="") as fh:
        mit = list(csv.DictReader(fh))
    assert len(mit) == 2
    assert float(mit[0]["mean_rel_err_single_mean"]) == pytest.approx(0.1)
    assert float(mit[0]["mean_rel_err_averaged"]) == pytest.approx(0.0, abs=1e-12)
    assert mit[1]["mean_rel_err_averaged"] == ""  # a group with a failed member is not averaged
    info = json.loads((out / "summary.json").read_text())
    assert info["yield"] == pytest.approx(2 / 4)  # 0.1, 0.1 pass; 0.2 and the failed run miss
