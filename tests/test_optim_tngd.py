"""TNGD (ideal backend): the NGD and SGD limits, the OU transient, warm start, delay, TNGD-Adam."""

import numpy as np
import pytest
import scipy.linalg

from spu_sim.errors import BadInputError
from spu_sim.optim import ngd, sgd, tngd, tngd_adam
from spu_sim.train import data, models


def _trajectory(transform, steps=15, seed=0):
    ds = data.make_blobs(n_samples=200, n_features=3, n_classes=3, seed=seed)
    model = models.make_model("mlp", 3, 3, hidden=4)
    theta = model.init(np.random.default_rng(seed))
    state = transform.init(theta)
    out = [theta]
    for idx in data.batch_indices(len(ds.y_train), 16, steps, seed):
        upd, state = transform.update(models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx]), state)
        theta = theta + upd
        out.append(theta)
    return np.array(out)


def test_large_t_reproduces_ngd_trajectory():
    """lambda_min(A) >= damping = 0.5, so after t = 200 the transient is below exp(-100)."""
    ref = _trajectory(ngd.build(lr=0.5, damping=0.5))
    got = _trajectory(tngd.build(lr=0.5, damping=0.5, t_stop_tau=200.0))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_zero_t_without_warm_start_is_sgd():
    """x0 = grad and t = 0 give x = grad exactly: the SGD trajectory."""
    ref = _trajectory(sgd.build(lr=0.3))
    got = _trajectory(tngd.build(lr=0.3, damping=0.1, t_stop_tau=0.0, warm_start=False))
    np.testing.assert_array_equal(got, ref)


def test_small_t_is_first_order_in_t():
    """x(t) = g - t (A g - g) + R with |R| <= t^2 |A|^2 |g - x*| / 2 (Taylor remainder of expm(-A t))."""
    rng = np.random.default_rng(2)
    m = rng.standard_normal((6, 4))
    a = m.T @ m / 6 + 0.1 * np.eye(4)
    g = rng.standard_normal(4)
    x_star = np.linalg.solve(a, g)
    norm_a = np.linalg.norm(a, 2)
    for t in (1e-1, 1e-2, 1e-3):
        x = tngd.ou_transient(a, g, g, t)
        bound = 0.5 * t * t * norm_a ** 2 * np.linalg.norm(g - x_star)
        assert np.linalg.norm(x - (g - t * (a @ g - g))) <= bound * (1 + 1e-6) + 1e-15


def test_ou_transient_mean_is_expm_formula():
    rng = np.random.default_rng(3)
    m = rng.standard_normal((5, 5))
    a = m @ m.T + 0.2 * np.eye(5)
    b, x0 = rng.standard_normal(5), rng.standard_normal(5)
    x_star = np.linalg.solve(a, b)
    expected = x_star + scipy.linalg.expm(-a * 0.7) @ (x0 - x_star)
    np.testing.assert_allclose(tngd.ou_transient(a, b, x0, 0.7), expected, atol=1e-12)


def test_ou_transient_noise_covariance():
    """Samples have covariance S(t) = kappa A^-1 (I - expm(-2 A t)); whitened covariance ~ I.

    With n samples each entry of the whitened covariance has std ~ sqrt(2/n) (diagonal) or
    sqrt(1/n) (off-diagonal); 5 sigma at n = 8000 is 0.08.
    """
    a = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]])
    b, x0, t, kappa, n = np.ones(3), np.zeros(3), 0.8, 0.01, 8000
    rng = np.random.default_rng(4)
    xs = np.array([tngd.ou_transient(a, b, x0, t, kappa=kappa, rng=rng) for _ in range(n)])
    mean = tngd.ou_transient(a, b, x0, t)
    s = kappa * np.linalg.solve(a, np.eye(3) - scipy.linalg.expm(-2 * a * t))
    w = np.linalg.inv(np.linalg.cholesky(s))
    z = (xs - mean) @ w.T
    assert np.abs(z.mean(axis=0)).max() < 5 / np.sqrt(n)
    assert np.abs(np.cov(z.T) - np.eye(3)).max() < 5 * np.sqrt(2 / n)


def _problems(k=3, seed=5):
    rng = np.random.default_rng(seed)
    model = models.make_model("logreg", 3, 3)
    theta = model.init(rng, 0.5)
    return [models.make_problem(model, theta + 0.1 * i, rng.standard_normal((4, 3)), rng.integers(0, 3, 4))
            for i in range(k)], theta


def test_warm_start_and_delay_convention():
    """Step 0 starts from grad_0; step k>0 evolves the previous state for t_d under (A_{k-1}, b_{k-1}),
    then for t under (A_k, b_k)."""
    (p0, p1, p2), theta = _problems()
    lam, t, td = 0.1, 2.0, 0.7
    tr = tngd.build(lr=1.0, damping=lam, t_stop_tau=t, delay_tau=td)
    s = tr.init(theta)
    u0, s = tr.update(p0, s)
    u1, s = tr.update(p1, s)
    a0, a1 = p0.damped_matrix(lam), p1.damped_matrix(lam)
    x0 = tngd.ou_transient(a0, p0.grad, p0.grad, t)
    np.testing.assert_allclose(-u0, x0, atol=1e-13)
    x_mid = tngd.ou_transient(a0, p0.grad, x0, td)
    np.testing.assert_allclose(-u1, tngd.ou_transient(a1, p1.grad, x_mid, t), atol=1e-13)
    # without delay, the warm start continues from x0 directly; and it differs from the delayed readout
    tr0 = tngd.build(lr=1.0, damping=lam, t_stop_tau=t)
    s0 = tr0.init(theta)
    _, s0 = tr0.update(p0, s0)
    v1, _ = tr0.update(p1, s0)
    np.testing.assert_allclose(-v1, tngd.ou_transient(a1, p1.grad, x0, t), atol=1e-13)
    assert np.linalg.norm(v1 - u1) > 1e-6


def test_tngd_adam_feeds_the_same_estimate_to_adam():
    problems, theta = _problems()
    kw = dict(damping=0.1, t_stop_tau=3.0, delay_tau=0.5)
    a, b = tngd.build(lr=1.0, **kw), tngd_adam.build(lr=0.01, **kw)  # b1 = b2 = 0 by default
    sa, sb = a.init(theta), b.init(theta)
    for p in problems:
        ua, sa = a.update(p, sa)
        ub, sb = b.update(p, sb)
        np.testing.assert_allclose(ub, -0.01 * (-ua) / (np.abs(ua) + 1e-8), rtol=1e-12)


def test_kappa_noise_is_reproducible_by_seed():
    problems, theta = _problems()
    runs = []
    for seed in (1, 1, 2):
        tr = tngd.build(lr=1.0, damping=0.1, t_stop_tau=1.0, kappa=1e-3, seed=seed)
        runs.append(tr.update(problems[0], tr.init(theta))[0])
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.linalg.norm(runs[0] - runs[2]) > 0


def test_bad_hyper_parameters():
    with pytest.raises(BadInputError, match="damping"):
        tngd.build(damping=0.0)
    with pytest.raises(BadInputError, match="backend: 'fpga' is not a backend; choose one of: ideal, ngspice-shared"):
        tngd.build(backend="fpga")
