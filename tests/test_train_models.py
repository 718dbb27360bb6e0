"""Gradients, Jacobians, GGN and empirical Fisher against central finite differences.

Central differences with step h have truncation error O(h^2 f''') ~ 1e-10 and rounding error
O(eps_machine / h) ~ 1e-11 for h = 1e-5 and O(1) derivatives, so 1e-7 is a safe absolute tolerance.
"""

import numpy as np
import pytest

from spu_sim.train import data, models

H = 1e-5
TOL = 1e-7


def _setup(name, activation="tanh", seed=0):
    rng = np.random.default_rng(seed)
    model = models.make_model(name, 4, 3, hidden=5, activation=activation)
    theta = model.init(rng, 0.8) if name == "mlp" else model.init(rng, 0.5)
    theta = theta + 0.1 * rng.standard_normal(theta.size)  # non-zero biases
    x = rng.standard_normal((7, 4))
    y = rng.integers(0, 3, 7)
    return model, theta, x, y


def _fd(f, theta):
    cols = [(f(theta + H * e) - f(theta - H * e)) / (2 * H) for e in np.eye(theta.size)]
    return np.stack(cols, axis=-1)


MODELS = [("logreg", "tanh"), ("mlp", "tanh"), ("mlp", "relu")]


@pytest.mark.parametrize("name,act", MODELS)
def test_gradient_matches_finite_differences(name, act):
    model, theta, x, y = _setup(name, act)
    loss, grad = models.loss_and_grad(model, theta, x, y)
    fd = _fd(lambda t: models.cross_entropy(model.logits(t, x), y), theta)
    assert loss == pytest.approx(models.cross_entropy(model.logits(theta, x), y))
    np.testing.assert_allclose(grad, fd, atol=TOL, rtol=0)


@pytest.mark.parametrize("name,act", MODELS)
def test_jacobian_matches_finite_differences(name, act):
    model, theta, x, _ = _setup(name, act)
    j = model.jacobian(theta, x)
    assert j.shape == (7, 3, model.n_params)
    np.testing.assert_allclose(j, _fd(lambda t: model.logits(t, x), theta), atol=TOL, rtol=0)


def test_loss_hessian_factor_is_exact():
    p = models.softmax(np.random.default_rng(1).standard_normal((5, 4)))
    lf = models.loss_hessian_factor(p)
    h = np.einsum("ni,ij->nij", p, np.eye(4)) - np.einsum("ni,nj->nij", p, p)
    np.testing.assert_allclose(lf @ lf.transpose(0, 2, 1), h, atol=1e-15)


@pytest.mark.parametrize("name,act", MODELS)
def test_ggn_matches_finite_difference_jacobian_and_output_hessian(name, act):
    """GGN = (1/n) sum J_i^T H_L,i J_i with J and H_L both taken by finite differences."""
    model, theta, x, y = _setup(name, act)
    j = _fd(lambda t: model.logits(t, x), theta)  # (n, d_z, N)
    z = model.logits(theta, x)
    hl = []
    for i in range(len(y)):
        def grad_z(zi, i=i):
            return models.softmax(zi[None])[0] - np.eye(3)[y[i]]
        hl.append(np.stack([(grad_z(z[i] + H * e) - grad_z(z[i] - H * e)) / (2 * H) for e in np.eye(3)], 1))
    ggn_fd = sum(j[i].T @ hl[i] @ j[i] for i in range(len(y))) / len(y)
    np.testing.assert_allclose(models.ggn(model, theta, x), ggn_fd, atol=TOL, rtol=0)


def test_ggn_of_logreg_is_the_loss_hessian():
    """Logits linear in theta: the GGN is the exact Hessian (finite differences of the gradient)."""
    model, theta, x, y = _setup("logreg")
    hess = _fd(lambda t: models.loss_and_grad(model, t, x, y)[1], theta)
    np.testing.assert_allclose(models.ggn(model, theta, x), hess, atol=TOL, rtol=0)


@pytest.mark.parametrize("name,act", MODELS[:2])
def test_empirical_fisher_matches_per_example_finite_differences(name, act):
    model, theta, x, y = _setup(name, act)
    g = np.stack([_fd(lambda t, i=i: models.cross_entropy(model.logits(t, x[i:i + 1]), y[i:i + 1]), theta)
                  for i in range(len(y))])
    np.testing.assert_allclose(models.empirical_fisher(model, theta, x, y), g.T @ g / len(y), atol=TOL, rtol=0)


def test_problem_factor_is_lazy_and_consistent():
    model, theta, x, y = _setup("mlp")
    calls = []
    p = models.make_problem(model, theta, x, y)
    real = p._factor_fn
    p._factor_fn = lambda: calls.append(1) or real()
    assert calls == []
    np.testing.assert_allclose(p.damped_matrix(0.3), models.ggn(model, theta, x) + 0.3 * np.eye(model.n_params))
    v = np.arange(model.n_params, dtype=float)
    np.testing.assert_allclose(p.damped_matvec(v, 0.3), p.damped_matrix(0.3) @ v, rtol=1e-12)
    assert calls == [1]


def test_digits_data_and_reduction():
    ds = data.load_digits(features="pca", n_components=12, seed=3)
    assert ds.x_train.shape == (1348, 12) and ds.x_test.shape == (449, 12) and ds.n_classes == 10
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0, atol=1e-12)
    pooled = data.load_digits(features="pool", pool=2)
    assert pooled.x_train.shape[1] == 16
    b = data.batch_indices(100, 32, 7, seed=1)
    assert b.shape == (7, 32)
    assert len(set(b[:3].ravel())) == 96  # within one epoch no example repeats
