"""Issue 24, class 6: Dask runs end. Mechanism (spu_sim.runs.scheduler): ``check_scheduler`` asks the address for
its identity over Dask's protocol under a hard deadline and waits a bounded time for a worker, before a sweep writes
anything; each run has a deadline from its submission; on any early exit (Ctrl-C) the pending runs are cancelled and
the task processes on the workers see their task released and are killed (spu_sim.runs.isolate).

Loopback only (127.0.0.1); every test bounds its own time (the sweep runs in a subprocess with a timeout). Each
failed on the code before the fix (the subprocess hung past its timeout, or the task process survived).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import spd_problem

distributed = pytest.importorskip("dask.distributed")
ROOT = Path(__file__).resolve().parents[1]


def _sweep_cli(tmp_path: Path, address: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """``spu-sim sweep`` against address with short deadlines (2 s), in a subprocess killed after timeout_s."""
    cfg = spd_problem(2, 5.0, t_stop_tau=5.0)
    cfg["sweep"] = {"grid": {"simulation.seed": [0, 1, 2]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = ("import sys; import spu_sim.runs.scheduler as s; s.CONNECT_S = 2.0; s.WORKERS_S = 2.0; "
            "from spu_sim.cli import main; "
            f"sys.exit(main(['sweep', {str(path)!r}, '--out', {str(tmp_path / 'o')!r}, '--scheduler', {address!r}]))")
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sweep against {address} did not end within {timeout_s:g} s")


def test_a_server_that_accepts_and_never_answers_is_refused_in_bounded_time(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        r = _sweep_cli(tmp_path, f"tcp://127.0.0.1:{srv.getsockname()[1]}")
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        srv.close()
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "--scheduler" in err[0] and "did not answer as a Dask scheduler" in err[0], err
    assert elapsed < 40
    assert not (tmp_path / "o").exists()            # nothing published: no plan.json, runs/, summary


def test_a_scheduler_without_workers_is_refused_and_nothing_is_written(tmp_path):
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        r = _sweep_cli(tmp_path, cluster.scheduler_address)
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "no workers" in err[0] and "dask worker" in err[0], err
    assert not (tmp_path / "o").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_of_a_dask_run_kills_its_task_processes(tmp_path):
    pid_file = tmp_path / "pid"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        code = ("import sys; sys.path.insert(0, 'tests'); from test_runs import _hang; "
                "from spu_sim.runs.scheduler import run_tasks; "
                f"run_tasks(_hang, [('a', {{'pid_file': {str(pid_file)!r}, 'how': 'c'}})], "
                f"scheduler={cluster.scheduler_address!r}, timeout_s=120)")
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            deadline = time.monotonic() + 60
            while not pid_file.is_file() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert pid_file.is_file(), "the task did not start"
            time.sleep(0.3)
            task_pid = int(pid_file.read_text())
            assert _alive(task_pid)
            proc.send_signal(signal.SIGINT)                     # Ctrl-C of the sweep
            proc.wait(timeout=30)
            deadline = time.monotonic() + 15
            while _alive(task_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _alive(task_pid), "the task process kept computing after Ctrl-C"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
