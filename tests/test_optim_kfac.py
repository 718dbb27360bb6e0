"""K-FAC and thermodynamic K-FAC (ideal SPU): statistics, the Kronecker-factored direction, SPU knobs,
config errors and a short end-to-end ``spu-sim train`` run. Pure NumPy (no ngspice)."""

import csv
import json

import numpy as np
import pytest
import yaml

from spu_sim.cli import main
from spu_sim.errors import BadInputError, ConfigError
from spu_sim.optim import OPTIMIZERS, kfac, tkfac, tngd
from spu_sim.train import data, kfac_timing, layers, models
from spu_sim.train.config import validate_config

H = 1e-5
TOL = 1e-7  # central differences, as tests/test_train_models.py


def _batch(d_in=4, n_classes=3, n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d_in)), rng.integers(0, n_classes, n), rng


def _fd(f, theta):
    return np.stack([(f(theta + H * e) - f(theta - H * e)) / (2 * H) for e in np.eye(theta.size)], axis=-1)


# --- the layer view and its statistics ---------------------------------------------------------------

def test_deep_mlp_with_one_hidden_layer_is_the_mlp():
    x, _, rng = _batch()
    mlp, deep = models.make_model("mlp", 4, 3, hidden=5), models.make_model("mlp", 4, 3, hidden=[5])
    assert isinstance(deep, layers.DeepMLP) and deep.n_params == mlp.n_params
    t1, t2 = mlp.init(np.random.default_rng(3), 0.8), deep.init(np.random.default_rng(3), 0.8)
    np.testing.assert_array_equal(t1, t2)
    theta = t1 + 0.1 * rng.standard_normal(t1.size)
    dz = rng.standard_normal((7, 3))
    np.testing.assert_allclose(deep.logits(theta, x), mlp.logits(theta, x), rtol=0, atol=1e-14)
    np.testing.assert_allclose(deep.backprop(theta, x, dz), mlp.backprop(theta, x, dz), rtol=0, atol=1e-14)
    np.testing.assert_allclose(deep.jacobian(theta, x), mlp.jacobian(theta, x), rtol=0, atol=1e-14)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_deep_mlp_gradient_and_jacobian_match_finite_differences(act):
    x, y, rng = _batch()
    model = models.make_model("mlp", 4, 3, hidden=[5, 4], activation=act)
    theta = model.init(rng, 0.9) + 0.1 * rng.standard_normal(model.n_params)
    _, grad = models.loss_and_grad(model, theta, x, y)
    np.testing.assert_allclose(grad, _fd(lambda t: models.cross_entropy(model.logits(t, x), y), theta),
                               atol=TOL, rtol=0)
    np.testing.assert_allclose(model.jacobian(theta, x), _fd(lambda t: model.logits(t, x), theta), atol=TOL, rtol=0)


@pytest.mark.parametrize("name,hidden,act", [("logreg", 5, "tanh"), ("mlp", 5, "tanh"), ("mlp", [5, 4], "relu")])
def test_kronecker_factors_are_the_exact_curvature_block_of_one_example(name, hidden, act):
    """For one example the layer block of the GGN (and of the empirical Fisher) is exactly A (x) G in
    theta[index] order; the dense GGN comes from the per-example Jacobians, independent of the layer code."""
    x, y, rng = _batch(n=1, seed=2)
    model = models.make_model(name, 4, 3, hidden=hidden, activation=act)
    theta = model.init(rng, 0.9) + 0.1 * rng.standard_normal(model.n_params)
    for curvature, dense in (("ggn", models.ggn(model, theta, x)),
                             ("empirical_fisher", models.empirical_fisher(model, theta, x, y))):
        stats = models.kronecker_layers(model, theta, x, y, curvature)
        assert sum(s.index.size for s in stats) == model.n_params
        assert np.array_equal(np.sort(np.concatenate([s.index.ravel() for s in stats])), np.arange(model.n_params))
        for s in stats:
            ix = s.index.ravel()
            np.testing.assert_allclose(np.kron(s.a_cov, s.g_cov), dense[np.ix_(ix, ix)], rtol=0, atol=1e-14)


def _logreg_problem(n=9, seed=4):
    x, y, rng = _batch(n=n, seed=seed)
    model = models.make_model("logreg", 4, 3)
    theta = model.init(rng, 0.5) + 0.1 * rng.standard_normal(model.n_params)
    return model, theta, x, y


def _exact_kronecker_direction(grad_w, a, g, damping):
    """(M_A (x) M_G)^-1 vec(dWbar) by a dense solve of the Kronecker system, pi-heuristic written out."""
    pi = np.sqrt((np.trace(a) / a.shape[0]) / (np.trace(g) / g.shape[0]))
    ma = a + pi * np.sqrt(damping) * np.eye(a.shape[0])
    mg = g + np.sqrt(damping) / pi * np.eye(g.shape[0])
    return np.linalg.solve(np.kron(ma, mg), grad_w.ravel()).reshape(grad_w.shape)


def test_kfac_direction_equals_the_dense_kronecker_solve():
    """Logistic regression (one layer, Wbar 5 x 3): A = mean [x,1][x,1]^T and G = mean H_L (for a last
    layer the output cotangents are L_i's columns, so G is the mean loss Hessian) built here by hand."""
    model, theta, x, y = _logreg_problem()
    p = models.softmax(model.logits(theta, x))
    xb = np.hstack([x, np.ones((len(y), 1))])
    a = xb.T @ xb / len(y)
    g = np.mean([np.diag(pi) - np.outer(pi, pi) for pi in p], axis=0)
    problem = models.make_problem(model, theta, x, y)
    grad_w = np.vstack([problem.grad[:12].reshape(4, 3), problem.grad[12:]])
    damping = 0.05
    upd, state = kfac.build(lr=1.0, damping=damping).update(problem, kfac.init(theta))
    expected = _exact_kronecker_direction(grad_w, a, g, damping)
    got = -np.vstack([upd[:12].reshape(4, 3), upd[12:]])
    assert np.max(np.abs(got - expected)) <= 1e-10 * np.max(np.abs(expected))
    assert state.refreshed and state.count == 1
    # the tolerance discriminates: without the pi split (gamma_A = gamma_G = sqrt(lambda)) the answer moves
    plain = np.linalg.solve(np.kron(a + np.sqrt(damping) * np.eye(5), g + np.sqrt(damping) * np.eye(3)),
                            grad_w.ravel()).reshape(5, 3)
    assert np.max(np.abs(plain - expected)) > 1e-3 * np.max(np.abs(expected))


def test_kfac_running_averages_and_stale_inverses():
    """Step 2 with decay 0.8 and inverse_every 2: factors 0.8 A_1 + 0.2 A_2, inverses still those of step 1."""
    model, theta, x, y = _logreg_problem(n=12)
    p1, p2 = (models.make_problem(model, theta + 0.2 * k, x[6 * k:6 * k + 6], y[6 * k:6 * k + 6]) for k in (0, 1))
    t = kfac.build(lr=1.0, damping=0.1, decay=0.8, inverse_every=2)
    _, s1 = t.update(p1, t.init(theta))
    u2, s2 = t.update(p2, s1)
    l1, l2 = p1.layers[0], p2.layers[0]
    np.testing.assert_allclose(s2.a_avg[0], 0.8 * l1.a_cov + 0.2 * l2.a_cov, rtol=1e-14)
    np.testing.assert_allclose(s2.g_avg[0], 0.8 * l1.g_cov + 0.2 * l2.g_cov, rtol=1e-14)
    assert not s2.refreshed and s2.a_inv[0] is s1.a_inv[0]
    gw = p2.grad[l2.index]
    expected = _exact_kronecker_direction(gw, l1.a_cov, l1.g_cov, 0.1)
    np.testing.assert_allclose(-u2[l2.index], expected, rtol=1e-10, atol=1e-12)


# --- thermodynamic K-FAC on the ideal SPU ----------------------------------------------------------

def _run(transforms, steps=4, hidden=(6, 5), seed=0):
    ds = data.make_blobs(n_samples=120, n_features=4, n_classes=3, seed=seed)
    model = models.make_model("mlp", 4, 3, hidden=list(hidden))
    theta = model.init(np.random.default_rng(seed))
    states = [t.init(theta) for t in transforms]
    out = []
    for idx in data.batch_indices(len(ds.y_train), 16, steps, seed=seed):
        problem = models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx])
        ups = []
        for i, t in enumerate(transforms):
            u, states[i] = t.update(problem, states[i])
            ups.append(u)
        out.append((problem, ups, list(states)))
        theta = theta + ups[0]
    return out


def test_tkfac_noise_free_ideal_spu_at_long_time_equals_kfac():
    """Exact OU at t = 2000 tau: the slowest normalised mode (lambda_min / max|M| >= 0.05 here) has decayed
    by exp(-100); what is left is rounding."""
    kw = dict(lr=0.5, damping=0.01, decay=0.9, inverse_every=2)
    for problem, (u_k, u_t), (_, st) in _run([kfac.build(**kw), tkfac.build(**kw, t_stop_tau=2000.0)]):
        assert np.linalg.norm(u_t - u_k) <= 1e-6 * np.linalg.norm(u_k)
        for ma, mg in st.damped:
            for m in (ma, mg):
                assert np.linalg.eigvalsh(m).min() / np.abs(m).max() > 0.05
    assert st.solves == 0 and st.kfac.count == 4  # step 4 reused the inverses of step 3


def test_tkfac_short_time_is_not_kfac_and_warm_start_helps():
    kw = dict(lr=0.5, damping=0.01, decay=0.9, inverse_every=1)
    runs = _run([kfac.build(**kw), tkfac.build(**kw, t_stop_tau=3.0)], steps=5)
    errs = [np.linalg.norm(u_t - u_k) / np.linalg.norm(u_k) for _, (u_k, u_t), _ in runs]
    assert errs[0] > 1e-2  # cold start, 3 tau: far from converged
    assert errs[-1] < 0.5 * errs[0]  # the warm start from the previous inverse carries convergence over


def test_spu_invert_matches_ou_transient_column_by_column():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((6, 6))
    m = q @ q.T + 3 * np.eye(6)
    s = np.abs(m).max()
    solver = tkfac.IdealSPU()
    inv = tkfac.spu_invert(m, None, solver, t_stop_tau=4.0, factor_bits=None)
    cols = np.stack([tngd.ou_transient(m / s, e, e, 4.0) for e in np.eye(6)], axis=1)
    np.testing.assert_allclose(inv, 0.5 * (cols + cols.T) / s, rtol=1e-13, atol=1e-15)
    assert solver.calls == 6


def test_factor_quantisation_error_is_at_most_half_a_step():
    m = np.random.default_rng(2).uniform(-1, 1, (8, 8))
    m /= np.abs(m).max()
    for bits in (4, 8, 12):
        q = tkfac.quantize_factor(m, bits)
        lsb = 1.0 / (2 ** bits - 1)
        assert np.max(np.abs(q - m)) <= 0.5 * lsb + 1e-15
        assert np.allclose(np.round(np.abs(q) / lsb), np.abs(q) / lsb, atol=1e-9)
    assert tkfac.quantize_factor(m, None) is m


def test_tkfac_noise_knobs_degrade_the_direction_and_are_reproducible():
    kw = dict(lr=0.5, damping=0.01, decay=0.9, inverse_every=1, t_stop_tau=2000.0)
    ts = [kfac.build(**{k: kw[k] for k in ("lr", "damping", "decay", "inverse_every")}),
          tkfac.build(**kw, factor_bits=4), tkfac.build(**kw, factor_bits=12),
          tkfac.build(**kw, readout={"adc": {"bits": 6}}), tkfac.build(**kw, kappa=1e-3, seed=1), tkfac.build(**kw, kappa=1e-3, seed=1),
          tkfac.build(**kw, kappa=1e-3, seed=2)]
    problem, ups, _ = _run(ts, steps=1)[0]
    err = [np.linalg.norm(u - ups[0]) / np.linalg.norm(ups[0]) for u in ups]
    assert err[1] > 10 * err[2] > 0  # 4 bits much worse than 12
    assert err[3] > 1e-4  # a 6-bit ADC: steps of 1/48 of the range
    np.testing.assert_array_equal(ups[4], ups[5])  # same seed, same noise
    assert not np.array_equal(ups[4], ups[6]) and err[4] > 0


def test_linear_backend_is_the_exact_ou_on_the_circuit():
    kw = dict(lr=0.5, damping=0.01, decay=0.9, inverse_every=1, t_stop_tau=5.0)  # the exact engine is the exact OU
    _, (u_i, u_l), _ = _run([tkfac.build(**kw), tkfac.build(**kw, backend="linear")], steps=1, hidden=(3,))[0]
    assert np.linalg.norm(u_l - u_i) <= 1e-6 * np.linalg.norm(u_i)


def test_bad_hyper_parameters_are_bad_input():
    for kw in ({"damping": 0}, {"decay": 1.0}, {"inverse_every": 0}):
        with pytest.raises(BadInputError):
            kfac.build(**kw)
    for kw in ({"backend": "fpga"}, {"t_stop_tau": -1}, {"factor_bits": 0}, {"readout": {"adc": {"bits": 40}}}, {"readout": {"sample_dt_tau": 1.0}}):
        with pytest.raises(BadInputError):
            tkfac.build(**kw)
    with pytest.raises(BadInputError, match="per-layer statistics"):
        from spu_sim.optim.base import LocalProblem
        kfac.build().update(LocalProblem(0.0, np.zeros(3), lambda: np.zeros((1, 3)), batch_size=1, d_z=1),
                            kfac.init(np.zeros(3)))


# --- config, timing and the loop --------------------------------------------------------------------

def _cfg(opts, **model):
    return {"data": {"name": "blobs", "n_samples": 150}, "model": {"name": "mlp", "hidden": [4, 3], **model},
            "train": {"steps": 5, "batch_size": 8, "seed": 1, "progress": False, "optimizers": opts}}


@pytest.mark.parametrize("opt,model,expected", [
    ({"name": "kfac", "lr": 1, "t_stop_tau": 5}, {}, "train.optimizers[0]: 't_stop_tau' is not an option of kfac"),
    ({"name": "tkfac", "lr": 1, "backend": "fpga"}, {},
     "train.optimizers[0].backend: 'fpga' is not a backend; choose one of: ideal, ngspice-shared, ngspice-subprocess, "
     "linear"),
    ({"name": "tngd", "lr": 1, "backend": "fpga"}, {},
     "train.optimizers[0].backend: 'fpga' is not a backend; choose one of: ideal, ngspice-shared, ngspice-subprocess, "
     "linear"),
    ({"name": "tkfac", "lr": 1, "delay_tau": 1}, {}, "train.optimizers[0]: 'delay_tau' is not an option of tkfac"),
    ({"name": "kfac", "lr": 1, "decay": 1.0}, {}, "train.optimizers[0].decay: Input should be less than 1"),
    ({"name": "kfac", "lr": 1, "inverse_every": 0}, {}, "train.optimizers[0].inverse_every: Input should be greater"),
    ({"name": "tkfac", "lr": 1, "factor_bits": 0}, {}, "train.optimizers[0].factor_bits: Input should be greater"),
    ({"name": "kfac", "lr": 1}, {"hidden": []}, "model.hidden: [] is not a width"),
    ({"name": "kfac", "lr": 1}, {"hidden": [4, 0]}, "model.hidden: [4, 0] is not a width"),
])
def test_kfac_config_errors_are_one_line(opt, model, expected):
    with pytest.raises(ConfigError) as info:
        validate_config(_cfg([opt], **model))
    assert str(info.value).startswith(expected), str(info.value)
    assert "\n" not in str(info.value)


def test_refresh_time_terms():
    st = kfac_timing.tkfac_refresh_time([13, 10], t_stop_tau=50, tau_s=1e-6, r_ohm=1e3, link_bits_per_s=50e9,
                                        dac_bits=16, resistor_bits=12, adc_bits=8)
    assert st.program_s == pytest.approx((169 + 100) * 12 / 50e9)
    assert st.analog_s == pytest.approx(23 * 50e-6)
    assert st.dac_s == pytest.approx((169 + 100) * 16 / 50e9) and st.adc_s == pytest.approx(269 * 8 / 50e9)
    rows = kfac_timing.asymptotics([64, 4096], batch=32, inverse_every=10, t_stop_tau=50, tau_s=1e-6,
                                   matmul_flops_per_s=1e10, inverse_flops_per_s=1e10)
    assert rows[1]["digital_inverse_s"] == pytest.approx(2 * 4096 ** 3 / 1e10 / 10)
    assert rows[1]["thermo_s"] - rows[1]["digital_apply_s"] - rows[1]["digital_build_s"] == pytest.approx(
        rows[1]["spu_refresh_s"])


def test_spu_sim_train_runs_a_tiny_kfac_config(tmp_path, capsys):
    """The CLI end to end: kfac and tkfac (ideal, inverse_every 2) on a two-hidden-layer MLP."""
    opts = [{"name": "kfac", "lr": 0.3, "damping": 0.05, "inverse_every": 2},
            {"name": "tkfac", "lr": 0.3, "damping": 0.05, "inverse_every": 2, "t_stop_tau": 500, "seed": 3}]
    path = tmp_path / "kfac.yaml"
    path.write_text(yaml.safe_dump(_cfg(opts)))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 0
    assert "tkfac" in capsys.readouterr().out
    with open(tmp_path / "run" / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["optimizer"] for r in rows} == {"kfac", "tkfac"} and len(rows) == 2 * 6
    kf = [float(r["train_loss"]) for r in rows if r["label"] == "kfac"]
    tk = [float(r["train_loss"]) for r in rows if r["label"] == "tkfac"]
    np.testing.assert_allclose(tk, kf, rtol=1e-6)  # noise-free SPU, converged: the same training
    assert kf[-1] < kf[0]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())["optimizers"]["tkfac"]
    n_cols = (5 + 4) + (5 + 3) + (4 + 3)  # factors (n_in + 1, n_out) of the layers 4 -> 4 -> 3 -> 3
    # refreshes at steps 1, 3, 5 of 5; every refresh runs n_cols columns of 500 tau (tau = 1 us)
    assert s["modelled_terms_per_step_s"]["analog_s"] == pytest.approx(3 / 5 * n_cols * 500 * 1e-6)
    assert s["mean_nat_grad_rel_error"] < 1e-6
    assert main(["train", str(path), "--out", str(tmp_path / "run2")]) == 0  # reproducible
    with open(tmp_path / "run2" / "history.csv") as fh:
        again = [r["train_loss"] for r in csv.DictReader(fh)]
    assert again == [r["train_loss"] for r in rows]


def test_kfac_is_registered():
    assert OPTIMIZERS["kfac"] is kfac and OPTIMIZERS["tkfac"] is tkfac


@pytest.mark.parametrize("name", ["kfac_digits.yaml", "kfac_noise_sweep.yaml"])
def test_shipped_kfac_configs_validate(name):
    from pathlib import Path

    from spu_sim.train.config import load_config, resolved_dict

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / name)
    names = {o.name for o in cfg.train.optimizers}
    assert {"kfac", "tkfac", "adam"} <= names
    assert yaml.safe_load(yaml.safe_dump(resolved_dict(cfg))) == resolved_dict(cfg)
    assert validate_config(resolved_dict(cfg)).train.optimizers[-1].name == "tkfac"


def test_noise_sweep_script_runs_and_summarises(tmp_path):
    """scripts/kfac_noise_sweep.py on a 6-step copy of the sweep: one row per tkfac knob setting."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("kfac_noise_sweep", root / "scripts" / "kfac_noise_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    common = {"lr": 0.1, "damping": 0.01, "inverse_every": 2, "t_stop_tau": 50}
    cfg = _cfg([{"name": "adam", "lr": 0.03}, {"name": "kfac", **{k: common[k] for k in ("lr", "damping")}},
                {"name": "tkfac", "label": "fb3", **common, "factor_bits": 3},
                {"name": "tkfac", "label": "k1", **common, "kappa": 0.1}])
    cfg["train"]["steps"] = 6
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert mod.main(["run", str(path), str(tmp_path / "out"), "--seeds", "0", "1"]) == 0
    with open(tmp_path / "out" / "noise_sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["knob"], r["value"], r["seeds"]) for r in rows] == [("factor_bits", "3", "2"), ("kappa", "0.1", "2")]
    assert (tmp_path / "out" / "noise_sweep.png").is_file()
