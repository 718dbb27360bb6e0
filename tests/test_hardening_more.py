"""Issue 24, the cases the first passes left: each test holds a mechanism with cases other than the issue's.

Class 6 (Dask runs end): ``check_scheduler`` first parses the address (``[tcp://]host:port``) and opens a
plain TCP connection, so a bad address, an unknown host, a closed port and a server that is not Dask are each
refused at once (exit 2) with the cause named -- not as "not a Dask scheduler (ValueError)" or after 30 s.

Class 5 (messages name the real cause): a prior mean far from the data is named, not y; ``spu-sim noise`` on an
engine that runs no ``.noise`` names simulation.backend and the engines that do.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.cli import main
from spu_sim.compare import compare
from spu_sim.pipeline import estimates, prepare
from spu_sim.plots import plot_compare
from spu_sim import simulate
from spu_sim.errors import BadInputError
from spu_sim.runs.scheduler import check_scheduler


CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address, words", [
    ("localhost", "no port"),                          # a bare host
    ("tcp://localhost:", "no port"),                   # an empty port
    ("tcp://localhost:0", "not a port number"),
    ("tcp://localhost:8786x", "not a port number"),
    ("ws://localhost:8786", "ws:// protocol is not supported"),
    ("   ", "empty address"),
])
def test_a_malformed_scheduler_address_names_what_is_wrong(address, words):
    t0 = time.monotonic()
    with pytest.raises(BadInputError, match=words):
        check_scheduler(address, connect_s=2.0, workers_s=2.0)
    assert time.monotonic() - t0 < 1.5


def test_a_closed_port_and_an_unknown_host_are_named_at_once():
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(BadInputError, match="nothing listens .*connection refused"):
        check_scheduler(f"tcp://127.0.0.1:{port}", connect_s=20.0, workers_s=2.0)
    with pytest.raises(BadInputError, match="unknown"):
        check_scheduler("tcp://spu-sim-no-such-host.invalid:8786", connect_s=20.0, workers_s=2.0)
    assert time.monotonic() - t0 < 10.0     # not the 20 s connect deadline: the cause is known at once


def test_a_server_that_accepts_and_stays_silent_is_not_called_unreachable():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(BadInputError, match="accepted the connection but did not answer as a Dask"):
            check_scheduler(f"tcp://127.0.0.1:{port}", connect_s=1.5, workers_s=1.0)
        assert time.monotonic() - t0 < 8.0


# ---------------------------------------------------------------- 5. messages name the real cause

def _cli(tmp_path, cmd: list[str], cfg: dict, capsys) -> tuple[int, str]:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main([*cmd, str(path), "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err.strip()


def test_a_prior_mean_far_from_the_data_is_named_not_y(tmp_path, capsys):
    """A prior mean of 1e12 in one entry (before: 'problem.y: max|y| = ... needs R_y ...')."""
    cfg = yaml.safe_load((CONFIGS / "posterior_gaussian_d4.yaml").read_text())
    cfg["problem"]["prior_mean"] = [0.0, 1e12, 0.0, 0.0]
    code, err = _cli(tmp_path, ["netlist"], cfg, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: problem.prior_mean") and "problem.y" not in err, err


@pytest.mark.parametrize("backend", ["linear", "linear-aggregated"])
def test_noise_on_an_engine_without_noise_analysis_names_the_engine(tmp_path, capsys, backend):
    """Before: '.noise input VNACIN has no gain to the output' (the cause: the engine runs no .noise)."""
    cfg = yaml.safe_load((CONFIGS / "noise_d4.yaml").read_text())
    cfg["simulation"]["backend"] = backend
    cfg["problem"]["matrix"]["random"]["d"] = 2
    code, err = _cli(tmp_path, ["noise"], cfg, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "simulation.backend" in err and "ngspice-shared" in err and "VNACIN" not in err, err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 1. a diverged optimiser is not a result

def test_an_optimiser_whose_loss_explodes_but_stays_finite_is_marked_diverged_and_the_command_fails(tmp_path, capsys):
    """sgd at lr 1e200 keeps finite losses of ~1e200 (before: diverged false, exit 0)."""
    cfg = {"data": {"name": "blobs", "n_samples": 80}, "model": {"name": "logreg"},
           "train": {"steps": 4, "batch_size": 8, "progress": False,
                     "optimizers": [{"name": "sgd", "lr": 1e200, "label": "wild"}, {"name": "sgd", "lr": 0.1}]}}
    code, err = _cli(tmp_path, ["train"], cfg, capsys)
    assert code == 0 and "wild (sgd): diverged" in err, err     # the other optimiser is a result: said, exit 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["optimizers"]["wild"]["diverged"] and not summary["optimizers"]["sgd"]["diverged"]
    assert "Diverged" in (tmp_path / "out" / "summary.md").read_text()
    cfg["train"]["optimizers"] = cfg["train"]["optimizers"][:1]     # nothing but a diverged optimiser: exit 1
    code, err = _cli(tmp_path, ["train"], cfg, capsys)
    assert code == 1 and len(err.splitlines()) == 1 and "1 of 1 optimisers diverged" in err, err


def test_a_compare_plot_that_cannot_be_drawn_is_named_not_dropped(tmp_path):
    """A noisy run whose covariance is not a number: covariance.png is not drawn, and a warning says so (before:
    it vanished without a word)."""
    cfg = {"problem": {"matrix": [[2.0, -1.0], [-1.0, 2.0]], "vector": [1.0, 0.0], "kappa": 0.05},
           "simulation": {"t_stop_tau": 30, "seed": 1, "backend": "linear"}}
    compare(cfg, tmp_path / "o")
    assert (tmp_path / "o" / "covariance.png").is_file()
    res = dict(np.load(tmp_path / "o" / "result.npz"))
    res["x_cov"] = np.full_like(res["x_cov"], np.nan)
    np.savez(tmp_path / "o" / "result.npz", **res)
    (tmp_path / "o" / "covariance.png").unlink()
    with pytest.warns(UserWarning, match="covariance.png not drawn"):
        paths = plot_compare(tmp_path / "o")
    assert all(p.name != "covariance.png" for p in paths)


# ---------------------------------------------------------------- 3. limits from real resource use

def test_a_factorised_runs_disk_estimate_matches_what_it_writes(tmp_path):
    """opamp_factored, N = 1500, m = 4: the estimate counts the netlist's real elements (O(m N), not the dense N^2
    of the default) and result.npz's N x N matrices (A, A_realized, x_cov). Before: 2.3 times what was written."""
    rng = np.random.default_rng(0)
    n, m = 1500, 4
    cfg = {"problem": {"factors": {"J": rng.normal(size=(m, n)).tolist(), "H": np.eye(m).tolist(), "damping": 1.0},
                       "vector": rng.normal(size=n).tolist(), "kappa": 0.0},
           "circuit": {"topology": "opamp_factored", "integrator": {"prune_below_relative": 0.01}},
           "simulation": {"t_stop_tau": 1, "backend": "linear"}, "readout": {"sample_dt_tau": 0.1}}
    est = estimates(prepare(cfg), keep_files=True)["disk_mb"]
    simulate(cfg, out_dir=tmp_path / "o")
    written = sum(p.stat().st_size for p in (tmp_path / "o").iterdir()) / 1e6
    assert written <= est <= 1.3 * written, (est, written)


# ---------------------------------------------------------------- 2. derived quantities checked before use

def test_a_run_too_short_for_two_samples_after_the_burn_in_is_bad_input_before_the_engine(tmp_path, capsys):
    """A slow diagonal problem (rates 1e-4 per tau) over 40 tau: the readout step follows the slow dynamics, so
    fewer than two samples follow the burn-in (before: the engine ran, then exit 1 'internal failure: ValueError')."""
    cfg = {"problem": {"matrix": [[3e-4, 0.0, 0.0], [0.0, 2e-4, 0.0], [0.0, 0.0, 1e-4]], "vector": [1.0, 0.0, 1.0],
                       "kappa": 0.01},
           "simulation": {"t_stop_tau": 40, "seed": 1, "backend": "linear"}}
    code, err = _cli(tmp_path, ["simulate"], cfg, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "simulation.t_stop_tau" in err and "burn-in" in err and "internal" not in err, err
    assert not (tmp_path / "out").exists()
