"""Issue 24, the fourth pass: the two failures the verification pass found, and what its adversarial cases found.

Class 5 (the real cause): an opamp_factored problem whose J^T H J is negligible next to the damping is named as
that (rescale J or H, or raise r_max_ohm), not as one J entry "needing" a resistor of 1e+304 ohm.
Class 2 (finite physical ranges): every optimiser time (t_stop_tau, delay_tau) has a physical range checked by the config
model, and an ngspice transient of the AnalogSolver is estimated (its span in time constants of the fastest mode)
before the engine stalls on it with "Timestep too small".
"""

from __future__ import annotations

import os
import re
import signal
import socket
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml

import spu_sim
from spu_sim import compare, io
from spu_sim.analog import AnalogSolver
from spu_sim.analyses.crosscheck import run_crosscheck
from spu_sim.cli import main
from spu_sim.engines import get_engine
from spu_sim.errors import BadInputError, ConfigError, SimulationError
from spu_sim.experiments import array_limits
from spu_sim.experiments.sc_clock import run_sc_clock
from spu_sim.optim import tkfac, tngd, tngd_adam
from spu_sim.pipeline import prepare
from spu_sim.runs import isolate, scheduler

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _cli(tmp_path, cmd: list[str], cfg: dict, capsys) -> tuple[int, str]:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main([*cmd, str(path), "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err.strip()


# ---------------------------------------------------------------- 5. the factorised circuit's real cause

@pytest.mark.parametrize("factor, scale", [("J", 1e-120), ("H", 1e-40), ("J", 1e-5)])
def test_a_coupling_negligible_next_to_the_damping_is_named_as_such(tmp_path, capsys, factor, scale):
    """J x 1e-120, H x 1e-40 or J x 1e-5 (J^T H J about 1e-10 of the damping, beyond r_max / r_min = 1e5); before:
    'problem.factors.J[0][0] = ... needs R = 3e+244 ohm ... (entries below 1e+237 are not realisable)'."""
    cfg = yaml.safe_load((CONFIGS / "opamp_factored_d40.yaml").read_text())
    cfg["problem"]["factors"][factor]["random"]["scale"] *= scale
    code, err = _cli(tmp_path, ["netlist"], cfg, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "negligible next to problem.factors.damping" in err and "r_max_ohm" in err, err
    assert "not realisable" not in err and "J[0][0]" not in err, err
    assert not (tmp_path / "out").exists()


def test_an_entry_too_small_for_r_max_is_still_named_by_its_entry(tmp_path, capsys):
    """The new cause does not take over the per-entry one: J x 1e-2 (its largest entries still fit the resistor
    range next to the damping, its small ones not) names the entry and prune_below_relative; J x 1e-4 names the
    coupling's size."""
    cfg = yaml.safe_load((CONFIGS / "opamp_factored_d40.yaml").read_text())
    cfg["problem"]["factors"]["J"]["random"]["scale"] *= 1e-4
    code, err = _cli(tmp_path, ["netlist"], cfg, capsys)
    assert code == 2 and "negligible next to problem.factors.damping" in err, err
    cfg["problem"]["factors"]["J"]["random"]["scale"] *= 1e2
    code, err = _cli(tmp_path, ["netlist"], cfg, capsys)
    assert code == 2 and "problem.factors.J[" in err and "prune_below_relative" in err, err
    assert "negligible" not in err, err


# ---------------------------------------------------------------- 2. optimiser times: a physical range, an estimate

_TRAIN = {"data": {"name": "blobs", "n_samples": 40, "n_features": 2, "n_classes": 2, "features": "none"},
          "model": {"name": "logreg"},
          "train": {"steps": 1, "batch_size": 4, "progress": False, "optimizers": []}}


@pytest.mark.parametrize("entry, key", [
    ({"name": "tngd", "lr": 0.1, "t_stop_tau": 3e6, "backend": "ngspice-shared"}, "t_stop_tau"),
    ({"name": "tngd_adam", "lr": 0.1, "t_stop_tau": 5.0, "delay_tau": 1e200, "backend": "ngspice-shared"}, "delay_tau"),
    ({"name": "tkfac", "lr": 0.1, "t_stop_tau": 1e9, "backend": "linear"}, "t_stop_tau"),
])
def test_an_optimiser_time_beyond_its_physical_range_is_refused_before_training(tmp_path, capsys, entry, key):
    """Before: accepted; on the circuit backend ngspice then failed after training started ('Timestep too small',
    exit 1)."""
    cfg = {**_TRAIN, "train": {**_TRAIN["train"], "optimizers": [entry]}}
    code, err = _cli(tmp_path, ["train"], cfg, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: train.optimizers[0].{key}:") and "physical range" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("build", [tngd.build, tngd_adam.build, tkfac.build])
def test_the_python_optimisers_check_the_same_range(build):
    with pytest.raises(BadInputError, match="t_stop_tau"):
        build(t_stop_tau=2e6)


def test_an_ngspice_transient_too_long_to_resolve_is_refused_before_the_engine():
    """t_stop_tau = 1e12 on a d = 2 problem spans 1.5e12 time constants of its fastest mode: ngspice took 7 s and at
    1e15 stalled; the AnalogSolver refuses it from its estimate, naming t_stop_tau (the linear engine takes any span)."""
    A, b = np.array([[2.0, -1.0], [-1.0, 2.0]]), np.array([1.0, 0.5])
    with pytest.raises(ConfigError, match=r"^t_stop_tau: 1e\+12 tau spans .* lower t_stop_tau"):
        AnalogSolver(backend="ngspice-shared").design(A, b, b, 1e12)
    with pytest.raises(ConfigError, match=r"^delay_tau: "):
        AnalogSolver(backend="ngspice-subprocess").design(A, b, b, 1e11, key="delay_tau")
    AnalogSolver(backend="ngspice-shared").design(A, b, b, 1e6)      # within the span: designed as before
    x = AnalogSolver(backend="linear").solve(A, b, b, 1e12)
    assert np.allclose(x, np.linalg.solve(A, b), rtol=1e-6)


# ---------------------------------------------------------------- 4. a killed run's temporary folders

def _killed_inside(tmp_root: Path, work) -> None:
    """work() in a forked child that SIGKILLs itself from inside the engine call (as a kill -9 of the command)."""
    pid = os.fork()
    if pid == 0:   # the child: never returns into pytest
        try:
            tempfile.tempdir = str(tmp_root)
            work()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


def _kill_in_engine(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("where", ["error_budget", "array_limits", "isolated_task"])
def test_a_run_killed_in_a_throwaway_folder_leaves_nothing_after_the_next_run(tmp_path, monkeypatch, where):
    """kill -9 while the error budget's runs (compare), an array_limits point or a sweep's isolated task hold their
    throw-away folder (spu-sim-budget-*, spu-sim-limits-*, spu-sim-task-*): the next run removes it. Before: plain
    TemporaryDirectory folders without the lock that io.temp_folder's cleanup looks for, kept for ever."""
    cfg = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.5], "kappa": 0.01},
           "circuit": {"topology": "opamp"}, "simulation": {"t_stop_tau": 5.0, "burn_in_tau": 1.0,
                                                           "backend": "linear"}}

    def work():
        if where == "isolated_task":
            isolate.subprocess.Popen = _kill_in_engine
            isolate.run_isolated(abs, -1.0, timeout_s=5.0)
            return
        module = compare if where == "error_budget" else array_limits
        module.simulate_in = _kill_in_engine
        prep = prepare(cfg)
        compare._run(prep, ["tran"]) if where == "error_budget" else array_limits.solution_error(prep, 1.0)

    _killed_inside(tmp_path, work)
    assert list(tmp_path.glob("spu-sim-*")), "the kill left its folder (the case this test is about)"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with io.temp_folder():
        pass
    assert list(tmp_path.glob("spu-sim-*")) == []


def test_a_failed_throwaway_run_names_no_folder_that_is_gone(tmp_path, monkeypatch):
    """A run without an out folder (spu_sim.simulate, an AnalogSolver solve, an experiment's point) that fails:
    before, '[run folder: /tmp/spu-sim-...]' named its temporary folder, already removed when the user reads it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cfg = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.5], "kappa": 0.01},
           "circuit": {"topology": "opamp"},
           "simulation": {"t_stop_tau": 2000.0, "backend": "linear", "timeout_s": 0.001}}
    with pytest.raises(SimulationError) as info:
        spu_sim.simulate(cfg)
    assert "run folder" not in str(info.value) and "throw-away run" in str(info.value), info.value
    assert list(tmp_path.glob("spu-sim-*")) == []


def _sc_clock_config(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((CONFIGS / "sc_clock.yaml").read_text())
    cfg["simulation"].update({"t_stop_tau": 30, "burn_in_tau": 5, "timeout_s": 0.01})
    cfg["experiment"].update({"f_clk_tau": [6, 10], "bits": [4, 6], "ngspice_f_clk_tau": [10], "ngspice_bits": [6]})
    path = tmp_path / "sc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.ngspice
def test_an_experiment_whose_point_fails_leaves_its_out_folder_as_it_was_and_unlocked(tmp_path):
    """sc_clock's ngspice point runs in a throw-away folder and times out: before, the experiment's (empty) stage
    was kept as OUT/failed-<time> and named as the run folder; now OUT is as it was, and in the same process a
    simulate into it is not refused (the lock is released)."""
    out = tmp_path / "out"
    small = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.5], "kappa": 0.01},
             "circuit": {"topology": "opamp"}, "simulation": {"t_stop_tau": 5.0, "burn_in_tau": 1.0,
                                                             "backend": "linear"}}
    spu_sim.simulate(small, out_dir=out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(SimulationError) as info:
        run_sc_clock(_sc_clock_config(tmp_path), out)
    assert "run folder" not in str(info.value) and "did not finish" in str(info.value), info.value
    assert sorted(p.name for p in out.iterdir()) == before
    spu_sim.simulate(small, out_dir=out)


def test_a_failed_linear_run_inside_an_experiment_keeps_no_failed_folder(tmp_path, capsys):
    """rlc_sampling on the linear engine, timed out: before, OUT/failed-<time> was kept (the engine reads no files,
    so only its noise files would fill the disk); now nothing is kept and no removed folder is named."""
    cfg = {"problem": {"matrix": {"random": {"kind": "m_matrix", "d": 3, "condition": 5, "seed": 1}}, "kappa": 1.0},
           "circuit": {"topology": "rlc", "rlc": {"c_cell_farad": 1e-9, "l_henry": 1e-5, "r_ohm": 100.0,
                                                  "coupling": "ideal"}},
           "simulation": {"t_stop_tau": 3000, "noise_dt_tau": 0.02, "backend": "linear", "timeout_s": 0.001,
                          "analyses": ["tran"]},
           "readout": {"sample_dt_tau": 0.1}}
    code, err = _cli(tmp_path, ["experiment", "rlc_sampling"], cfg, capsys)
    assert code == 1 and len(err.splitlines()) == 1 and "did not finish" in err, err
    assert "run folder" not in err, err
    assert not list((tmp_path / "out").glob("failed-*")) and not list((tmp_path / "out").glob(".stage-*"))


# ---------------------------------------------------------------- 6. a server that is not Dask fails quickly

def _server(greeting: bytes | None):
    """A TCP server on a free port that sends ``greeting`` (None: nothing) to each connection and keeps it open."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)
            if greeting is not None:
                conn.sendall(greeting)
    threading.Thread(target=serve, daemon=True).start()
    return srv, held


@pytest.mark.parametrize("greeting, words, limit_s", [
    (b"SSH-2.0-OpenSSH_9.6\r\n", "is not a Dask scheduler (it sent b'SSH-2.0", 5.0),   # a banner: at once
    (None, "did not answer as a Dask scheduler within 1 s", 6.0),                  # silent (HTTP): the greeting wait
])
def test_a_server_that_is_not_dask_is_refused_without_waiting_for_the_connect_deadline(monkeypatch, greeting,
                                                                                       words, limit_s):
    """Before: Dask's own handshake waited out the whole connect deadline (30 s, plus its retries: an HTTP server
    took 64 s) for a server that sent an SSH banner or nothing; a scheduler greets every connection at once."""
    monkeypatch.setattr(scheduler, "GREETING_S", 1.0)
    srv, held = _server(greeting)
    try:
        t0 = time.monotonic()
        with pytest.raises(BadInputError, match=re.escape(words)):
            scheduler.check_scheduler(f"tcp://127.0.0.1:{srv.getsockname()[1]}", connect_s=30.0, workers_s=2.0)
        assert time.monotonic() - t0 < limit_s
    finally:
        srv.close()
        for conn in held:
            conn.close()


# ---------------------------------------------------------------- 3. a candidate's refusal before the reference runs

def test_a_clocked_circuit_the_aggregated_engine_refuses_is_refused_before_ngspice_runs(tmp_path, monkeypatch):
    """crosscheck of opamp_sc with --candidate linear-aggregated: before, ngspice ran the reference (27 s for the
    shipped config) and then the candidate said 'noise_mode aggregated: ... (engine linear)'; now the candidate's
    check refuses it first, naming the engine and the fix."""
    cfg = yaml.safe_load((CONFIGS / "opamp_sc_d4.yaml").read_text())
    cfg["problem"]["matrix"]["random"]["d"] = 2
    cfg["simulation"].update({"t_stop_tau": 20, "burn_in_tau": 5})
    ran = []
    monkeypatch.setattr(get_engine("ngspice-shared"), "run", lambda *a, **k: ran.append(1))
    with pytest.raises(BadInputError, match=r"engine linear-aggregated .*--candidate linear"):
        run_crosscheck(cfg, tmp_path / "out", candidate="linear-aggregated")
    assert not ran


# ---------------------------------------------------------------- 3. opamp_factored's dense matrices at large N

def test_the_factorised_runs_dense_matrices_are_built_without_n_by_n_temporaries():
    """The result's dense A_realized (and the reference A) of a factorised run of large N: before, L P + diag(dg)
    held three N x N arrays at peak (and A four), beyond the RESULT_MATRICES_IN_MEMORY the memory estimate checks
    before the engine (N = 20,000: 3.2 GB each; the run ended in a crash after 3 min). Now one (two for A, whose
    symmetrisation buffers A^T), with the same numbers."""
    n = 1200
    cfg = {"problem": {"factors": {"J": {"random": {"kind": "normal", "rows": 8, "cols": n, "scale": 0.15, "seed": 1}},
                                   "H": {"random": {"kind": "spd", "d": 8, "condition": 4, "scale": 0.5, "seed": 2}},
                                   "damping": 1.0},
                       "vector": {"random": {"kind": "normal", "seed": 3}}, "kappa": 0.0},
           "circuit": {"topology": "opamp_factored", "integrator": {"r_max_ohm": 1e12, "prune_below_relative": 1e-3}},
           "simulation": {"t_stop_tau": 2, "burn_in_tau": 0.5, "backend": "linear", "analyses": ["tran"]}}
    prep = prepare(cfg)
    matrix_bytes = 8.0 * n * n
    tracemalloc.start()
    try:
        a_realized = prep.design.A_realized
        peak_realized = tracemalloc.get_traced_memory()[1] / matrix_bytes
        tracemalloc.reset_peak()
        a = prep.problem.A
        peak_a = tracemalloc.get_traced_memory()[1] / matrix_bytes - 1.0    # A_realized is still held
    finally:
        tracemalloc.stop()
    assert peak_realized < 1.2 and peak_a < 2.2, (peak_realized, peak_a)
    L, P, dg, _ = prep.design.factors_realized()
    assert np.array_equal(a_realized, L @ P + np.diag(dg))
    J, H = prep.problem.J, prep.problem.H
    ref = J.T @ (H @ J)
    ref = 0.5 * (ref + ref.T)
    ref[np.diag_indices_from(ref)] += 1.0
    assert np.array_equal(a, ref)


# ---------------------------------------------------------------- 1./2. rlc experiment settings

@pytest.mark.parametrize("exp", [{"reference_dt_tau": 1e300}, {"reference_t_tau": 1e-300},
                                 {"reference_t_tau": 5.0, "reference_dt_tau": 1.0}])
def test_an_inversion_reference_too_short_for_an_error_curve_is_refused(tmp_path, capsys, exp):
    """Before: exit 0 after the ngspice runs, the exact sampler's curve from the zero initial state alone published as
    'an ideal sampler: 100 %' error."""
    cfg = yaml.safe_load((CONFIGS / "rlc_inversion_4x4.yaml").read_text())
    cfg["simulation"]["t_stop_tau"] = 200.0
    cfg["experiment"].update(exp)
    code, err = _cli(tmp_path, ["experiment", "rlc_inversion"], cfg, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "reference_dt_tau" in err and "below the 20" in err, err
    assert not (tmp_path / "out").exists()
