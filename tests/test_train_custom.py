"""Your own model and data in the training loop, the checks before training, failed optimisers and the all-fail
run, the batched GGN factor and the prune default of the factorised circuit (issue 22 items 2-4)."""

import json

import numpy as np
import pytest
import yaml

from spu_sim.analog import AnalogSolver
from spu_sim.cli import main
from spu_sim.errors import BadInputError, SimulationError
from spu_sim.optim import tngd
from spu_sim.train import loop, models
from spu_sim.train.custom import UserModel

RNG = np.random.default_rng(3)
X = RNG.standard_normal((120, 5))
W_TRUE = RNG.standard_normal(5)
Y = X @ W_TRUE + 0.05 * RNG.standard_normal(120)
DATA = (X[:80], Y[:80], X[80:], Y[80:])


def least_squares(**extra) -> UserModel:
    """0.5 mean (x w - y)^2: gradient X^T r / n, GGN X^T X / n = U^T U with U = X / sqrt(n)."""
    kw = {"ggn_factor": lambda w, x, y: x / np.sqrt(len(y))}
    kw.update(extra)
    return UserModel(loss=lambda w, x, y: 0.5 * np.mean((x @ w - y) ** 2),
                     grad=lambda w, x, y: x.T @ (x @ w - y) / len(y), theta0=np.zeros(5), d_z=1, **kw)


def _cfg(optimizers, steps=3, batch=80):
    return {"train": {"steps": steps, "batch_size": batch, "progress": False, "optimizers": optimizers}}


def test_custom_model_and_data_train_with_history_plots_and_modelled_time(tmp_path):
    """NGD with lr 1 on the full batch is one Newton step of a quadratic: the least-squares optimum after step 1
    (to the damping's relative bias 1e-8 / lambda_min); every optimiser gets history, summary, plots, modelled time."""
    opts = [{"name": "sgd", "lr": 0.1}, {"name": "ngd", "lr": 1.0, "damping": 1e-8},
            {"name": "ngd_woodbury", "lr": 1.0, "damping": 1e-8}, {"name": "ngd_cg", "lr": 1.0, "damping": 1e-8},
            {"name": "tngd", "lr": 1.0, "damping": 1e-8, "t_stop_tau": 2000, "warm_start": False}]
    s = loop.run_training(_cfg(opts), tmp_path / "run", model=least_squares(), data=DATA)
    w_opt = np.linalg.lstsq(X[:80], Y[:80], rcond=None)[0]
    best = 0.5 * np.mean((X[:80] @ w_opt - Y[:80]) ** 2)
    hist = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(hist) == 1 + len(opts) * 4
    for label in ("ngd", "ngd_woodbury", "ngd_cg"):
        first = next(line for line in hist if line.startswith(f"{label},{label},1,"))
        assert float(first.split(",")[4]) == pytest.approx(best, rel=1e-6)
    out = s["optimizers"]
    assert out["tngd"]["final_train_loss"] == pytest.approx(best, rel=1e-4)   # exp(-lambda_min t) tiny at t = 2000
    assert out["sgd"]["final_train_loss"] > 2 * best
    assert out["tngd"]["modelled_time_kind"].startswith("hardware model") and out["tngd"]["modelled_time_per_step_s"] > 0
    assert np.isnan(out["sgd"]["final_test_accuracy"])   # no predict: accuracy is not a number, not made up
    assert {p.split("/")[-1] for p in s["plots"]} == {"loss_accuracy.png", "loss_iteration_time.png"}
    assert s["model"] == "UserModel" and s["n_params"] == 5


def test_curvature_vector_product_model_runs_ngd_cg_and_refuses_tngd_before_training(tmp_path):
    model = least_squares(ggn_factor=None, ggn_vp=lambda w, x, y, v: x.T @ (x @ v) / len(y))
    s = loop.run_training(_cfg([{"name": "ngd_cg", "lr": 1.0, "damping": 1e-8, "cg_iters": 5}]), tmp_path / "a",
                          model=model, data=DATA)
    assert s["optimizers"]["ngd_cg"]["final_train_loss"] < 0.01
    with pytest.raises(BadInputError, match=r"^train\.optimizers\[1\]\.name: tngd needs the curvature as a factor"):
        loop.run_training(_cfg([{"name": "sgd", "lr": 0.1}, {"name": "tngd", "lr": 1.0}]), tmp_path / "b",
                          model=model, data=DATA)
    assert not (tmp_path / "b").exists()


def test_arrays_and_function_from_a_config_file_through_the_cli(tmp_path, monkeypatch, capsys):
    for name, arr in zip(("x_train", "y_train", "x_test", "y_test"), DATA):
        np.save(tmp_path / f"{name}.npy", arr)
    (tmp_path / "my_lsq_model.py").write_text(
        "import numpy as np\nfrom spu_sim.train.custom import UserModel\n\n"
        "def build(ds):\n"
        "    return UserModel(loss=lambda w, x, y: 0.5 * np.mean((x @ w - y) ** 2),\n"
        "                     grad=lambda w, x, y: x.T @ (x @ w - y) / len(y),\n"
        "                     ggn_factor=lambda w, x, y: x / np.sqrt(len(y)), theta0=np.zeros(ds.x_train.shape[1]))\n")
    monkeypatch.chdir(tmp_path)   # the module is found in the current folder
    cfg = {"data": {"name": "arrays", "x_train": "x_train.npy", "y_train": "y_train.npy", "x_test": "x_test.npy",
                    "y_test": "y_test.npy"},
           "model": {"name": "function", "function": "my_lsq_model:build"},
           **_cfg([{"name": "ngd_woodbury", "lr": 1.0, "damping": 1e-8}, {"name": "adam", "lr": 0.1}])}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "c.yaml", "--out", "out"]) == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["optimizers"]["ngd_woodbury"]["final_train_loss"] < 0.01 and s["n_train"] == 80
    cfg["data"]["x_train"] = "missing.npy"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "c.yaml", "--out", "out2"]) == 2
    assert "data.x_train" in capsys.readouterr().err


def _blobs(optimizers):
    return {"data": {"name": "blobs", "n_samples": 150}, "model": {"name": "mlp", "hidden": 4},
            "train": {"steps": 4, "batch_size": 8, "seed": 1, "progress": False, "optimizers": optimizers}}


BAD_CIRCUIT = {"name": "tngd", "label": "tngd_lin", "lr": 0.5, "damping": 0.1, "t_stop_tau": 5, "backend": "linear",
               "circuit": {"integrator": {"r_max_ohm": 2e3, "prune_below_relative": 0.0}}}


def test_a_bad_circuit_optimiser_among_good_ones_stops_the_run_before_any_training(tmp_path, monkeypatch):
    trained = []
    real = loop.train_one
    monkeypatch.setattr(loop, "train_one", lambda entry, *a, **k: trained.append(entry.label) or real(entry, *a, **k))
    opts = [{"name": "sgd", "lr": 0.3}, {"name": "adam", "lr": 0.03}, BAD_CIRCUIT]
    with pytest.raises(BadInputError) as info:
        loop.run_training(_blobs(opts), tmp_path / "run")
    msg = str(info.value)
    assert msg.startswith("train.optimizers[2] (tngd_lin), checked on the first mini-batch before training: ")
    assert "train.optimizers[2].circuit.integrator.r_max_ohm" in msg and "\n" not in msg
    assert trained == [] and not (tmp_path / "run").exists()


def test_every_optimiser_failing_exits_2_with_the_cause(tmp_path, capsys):
    cfg = _blobs([BAD_CIRCUIT, {**BAD_CIRCUIT, "name": "tngd_adam", "label": "tadam_lin"}])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: train.optimizers[0] (tngd_lin)") and "r_max_ohm" in err and "plot" not in err


def test_failures_while_training_are_marked_and_an_all_fail_run_still_plots(tmp_path, monkeypatch):
    calls = []
    real = tngd.ou_transient

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) >= 3:
            raise SimulationError("ngspice stopped", ngspice_message="timestep too small")
        return real(*args, **kwargs)

    monkeypatch.setattr(tngd, "ou_transient", flaky)
    opts = [{"name": "tngd", "lr": 0.5, "damping": 0.1, "t_stop_tau": 5},
            {"name": "tngd_adam", "lr": 0.03, "damping": 0.1, "t_stop_tau": 5}]
    with pytest.raises(SimulationError, match="timestep too small"):
        loop.run_training(_blobs(opts), tmp_path / "run")
    s = json.loads((tmp_path / "run" / "summary.json").read_text())["optimizers"]
    assert s["tngd"]["failed"] and s["tngd"]["steps"] == 2 and s["tngd_adam"]["failed"] and s["tngd_adam"]["steps"] == 0
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "| 2 (failed) |" in md and "tngd_adam: failed after 0 steps" in md
    assert (tmp_path / "run" / "loss_iteration_time.png").stat().st_size > 0


def test_batched_ggn_factor_equals_the_per_example_jacobian_formula():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 5)), rng.integers(0, 3, 7)
    for model in (models.LogReg(5, 3), models.MLP(5, 4, 3, "tanh"),
                  models.make_model("mlp", 5, 3, hidden=[4, 3], activation="relu")):
        theta = model.init(rng, 0.7)
        j = model.jacobian(theta, x)
        p = models.softmax(model.logits(theta, x))
        u = np.einsum("nck,ncp->nkp", models.loss_hessian_factor(p), j).reshape(-1, model.n_params) / np.sqrt(7)
        np.testing.assert_allclose(models.ggn_factor(model, theta, x), u, atol=1e-14)
        r = p.copy()
        r[np.arange(7), y] -= 1.0
        np.testing.assert_allclose(models.empirical_fisher_factor(model, theta, x, y),
                                   np.einsum("ncp,nc->np", j, r) / np.sqrt(7), atol=1e-14)


def test_factorised_circuit_prunes_below_one_resistor_step_by_default():
    """An entry 1e-5 of the largest (below one step of a 16-bit conductance, 1.5e-5) whose resistor would exceed
    r_max is pruned by default; with the threshold set to 0 the same factor is refused, naming the key."""
    rng = np.random.default_rng(1)
    j = rng.uniform(0.2, 1.0, (3, 12)) * rng.choice([-1, 1], (3, 12))
    j[0, 3] = 1e-5
    b = rng.standard_normal(12)
    solver = AnalogSolver({"integrator": {"r_max_ohm": 1e7}}, backend="linear")
    design = solver.design_factored(j, np.eye(3), 0.5, b, b, 5.0).design
    assert ("J", 0, 3) in design.pruned and len(design.pruned) == 1
    strict = AnalogSolver({"integrator": {"r_max_ohm": 1e7, "prune_below_relative": 0.0}}, backend="linear")
    with pytest.raises(BadInputError, match=r"J\[0\]\[3\].*prune_below_relative above"):
        strict.design_factored(j, np.eye(3), 0.5, b, b, 5.0)


def test_reused_factor_buffers_give_the_same_run(tmp_path, monkeypatch):
    """The loop writes each step's factor into one of two buffers in turn; TNGD's delay phase keeps the previous
    step's factor: the history equals that of a run with fresh factors, to the last digit."""
    opts = [{"name": "tngd", "lr": 0.5, "damping": 0.1, "t_stop_tau": 5, "delay_tau": 0.5},
            {"name": "ngd_woodbury", "lr": 0.3, "damping": 0.1}]
    loop.run_training(_blobs(opts), tmp_path / "reused")
    real = models.make_problem
    monkeypatch.setattr(models, "make_problem", lambda *a, factor_out=None, **k: real(*a, **k))
    loop.run_training(_blobs(opts), tmp_path / "fresh")
    cols = lambda p: [line.split(",")[:8] for line in (p / "history.csv").read_text().splitlines()]  # noqa: E731
    assert cols(tmp_path / "reused") == cols(tmp_path / "fresh")
