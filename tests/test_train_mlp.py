"""Training at scale (issue 11 item 3): the MLP config, the spot check of TNGD's engines, the exact low-rank OU."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.cli import main
from spu_sim.config import read_yaml
from spu_sim.errors import ConfigError
from spu_sim.optim import tngd
from spu_sim.optim import backend as spu_backend
from spu_sim.train import loop, spot_check, timing
from spu_sim.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]
MLP_CONFIG = ROOT / "configs" / "tngd_digits_mlp.yaml"


def _shipped(hidden: int, batch: int, steps: int) -> dict:
    """The shipped MLP config at a smaller size (same data, seeds, optimiser settings)."""
    raw, _ = read_yaml(MLP_CONFIG)
    raw["model"]["hidden"] = hidden
    raw["train"].update(batch_size=batch, steps=steps, progress=False)
    return raw


def test_shipped_mlp_config_has_the_claimed_size():
    """64 raw pixels, hidden 64: N = 4810; batch 32 x 10 outputs: m = 320 < N, so TNGD programs the factorised circuit."""
    cfg = load_config(MLP_CONFIG)
    ds, model, batches, _ = loop.prepare(cfg)
    assert ds.x_train.shape[1] == 64
    assert model.n_params == 64 * 64 + 64 + 64 * 10 + 10 == 4810
    assert batches.shape == (cfg.train.steps, 32)
    m = cfg.train.batch_size * model.d_z
    assert m == 320 and m < model.n_params
    entry = next(e for e in cfg.train.optimizers if e.name == "tngd")
    assert entry.backend == "linear" and spu_backend.engine(entry.backend) == "linear"
    # the App. C programming term counts the factorised circuit's m (m + 2N) resistors
    st = timing.tngd_step_time(n_params=4810, batch_size=32, d_z=10, t_stop_tau=50, delay_tau=0, tau_s=1e-6,
                               **cfg.timing.model_dump())
    assert st.program_s == pytest.approx(320 * (320 + 2 * 4810) * 16 / 50e9, rel=1e-12)


@pytest.mark.parametrize("rows", [3, 12])
def test_lowrank_ou_transient_equals_the_dense_one(rows):
    """ou_transient_lowrank (O(m^2 N), A never formed) against the eigendecomposition of the dense A, m < N and m > N."""
    rng = np.random.default_rng(rows)
    u = rng.standard_normal((rows, 7)) * 0.4
    b, x0 = rng.standard_normal(7), rng.standard_normal(7)
    a = u.T @ u + 0.05 * np.eye(7)
    for t in (0.3, 5.0, 200.0):
        ref = tngd.ou_transient(a, b, x0, t)
        x = spot_check.ou_transient_lowrank(u, 0.05, b, x0, t)
        assert np.linalg.norm(x - ref) / np.linalg.norm(ref) < 1e-10
    assert np.allclose(spot_check.ou_transient_lowrank(u, 0.05, b, x0, 1e4), np.linalg.solve(a, b), rtol=1e-9)


@pytest.mark.ngspice
def test_spot_check_linear_engine_agrees_with_ngspice():
    """Three TNGD steps of the shipped MLP config at hidden 2, batch 2 (N = 160, m = 20: the factorised circuit) on the
    linear engine and on ngspice-shared, the same SPU inputs at every step.

    Tolerance (spot_check.engine_tolerance): ngspice's local truncation error is at most trtol * reltol = 7 * 1e-4 of
    the state per time point and the global error of these stable noise-free transients stays within 3 x that:
    2.1e-3. The linear engine steps the same circuit exactly, so it must match the exact OU transient of the nominal
    A to round-off plus what pruning (entries below 1e-5 of the largest) removes: 1e-4 allows a hundred pruned
    entries at the threshold. The tolerance discriminates: half the analog time moves the direction > 10 x it."""
    rep = spot_check.spot_check(_shipped(hidden=2, batch=2, steps=3))
    assert rep["n_params"] == 160 and rep["topologies"] == ["opamp_factored"]
    assert rep["engines"] == {"linear": "linear", "ngspice-shared": "ngspice-shared"}
    assert rep["tolerance"] == pytest.approx(3 * 7 * 1e-4)
    assert rep["max_rel_diff"] < rep["tolerance"], rep["per_step"]
    assert rep["within_tolerance"]
    assert rep["max_rel_err_vs_exact"]["linear"] < 1e-4
    assert rep["max_rel_err_vs_exact"]["ngspice-shared"] < rep["tolerance"]
    assert rep["max_rel_diff"] > 1e-9   # two different engines ran (ngspice is not exact)
    # discrimination at step 0: the exact transient at t / 2 from the same start (x0 = grad)
    cfg = loop.validate_config(_shipped(hidden=2, batch=2, steps=1))
    ds, model, batches, theta = loop.prepare(cfg)
    from spu_sim.train import models
    p = models.make_problem(model, theta, ds.x_train[batches[0]], ds.y_train[batches[0]])
    full = spot_check.ou_transient_lowrank(p.factor, 0.01, p.grad, p.grad, 50.0)
    half = spot_check.ou_transient_lowrank(p.factor, 0.01, p.grad, p.grad, 25.0)
    assert np.linalg.norm(half - full) / np.linalg.norm(full) > 10 * rep["tolerance"]


def test_spot_check_rejects_noise_and_missing_tngd():
    raw = _shipped(hidden=2, batch=2, steps=1)
    raw["train"]["optimizers"][0]["kappa"] = 0.01
    with pytest.raises(ConfigError, match="kappa: the spot check compares noise-free transients; set kappa: 0"):
        spot_check.spot_check(raw)
    raw["train"]["optimizers"] = [{"name": "adam", "lr": 0.01}]
    with pytest.raises(ConfigError, match="needs an entry with name tngd"):
        spot_check.spot_check(raw)


def test_mlp_config_runs_end_to_end_through_the_cli(tmp_path, capsys):
    """`spu-sim train` on the shipped MLP config at tiny size (hidden 3, batch 2, 3 steps: N = 235, m = 20):
    exit 0, the plots written, and the results name the engine and circuit of TNGD's directions."""
    cfg_path = tmp_path / "mlp_tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(_shipped(hidden=3, batch=2, steps=3)))
    out = tmp_path / "run"
    assert main(["train", str(cfg_path), "--out", str(out)]) == 0
    assert (out / "loss_iteration_time.png").stat().st_size > 1000
    assert (out / "loss_accuracy.png").is_file()
    s = json.loads((out / "summary.json").read_text())
    assert s["n_params"] == 64 * 3 + 3 + 3 * 10 + 10
    t = s["optimizers"]["tngd"]
    assert t["spu_backend"] == "linear" and t["spu_engine"] == "linear"
    assert t["spu_topology_steps"] == {"opamp_factored": 3}
    assert set(s["optimizers"]) == {"adam", "ngd", "ngd_cg", "ngd_woodbury", "tngd"}
    assert "spu_engine" not in s["optimizers"]["adam"]
    m, n = 2 * 10, s["n_params"]
    assert t["modelled_terms_per_step_s"]["program_s"] == pytest.approx(m * (m + 2 * n) * 16 / 50e9, rel=1e-12)
    assert np.isfinite(t["mean_nat_grad_rel_error"])
    md = (out / "summary.md").read_text()
    assert "tngd: backend linear, engine linear, topology steps opamp_factored 3" in md
    assert "engine linear" in capsys.readouterr().out
