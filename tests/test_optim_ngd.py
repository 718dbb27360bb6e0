"""Digital optimisers: the three NGD solvers agree; SGD and Adam follow their closed forms."""

import numpy as np
import pytest

from spu_sim.optim import adam, ngd, ngd_cg, ngd_woodbury, sgd
from spu_sim.train import models


def _problem(seed=0, damping=1e-2):
    rng = np.random.default_rng(seed)
    model = models.make_model("mlp", 5, 4, hidden=6)
    theta = model.init(rng)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 4, 6)
    return models.make_problem(model, theta, x, y), theta


@pytest.mark.parametrize("damping", [1e-2, 1.0])
def test_ngd_cg_woodbury_agree_on_direction(damping):
    problem, theta = _problem(damping=damping)
    n = theta.size
    outs = []
    for build in (ngd.build(lr=1.0, damping=damping), ngd_cg.build(lr=1.0, damping=damping, cg_iters=5 * n, cg_tol=1e-15),
                  ngd_woodbury.build(lr=1.0, damping=damping)):
        upd, _ = build.update(problem, build.init(theta))
        outs.append(upd)
    ref = outs[0]
    # the direction solves A x = grad
    np.testing.assert_allclose(problem.damped_matrix(damping) @ -ref, problem.grad, atol=1e-10)
    for other in outs[1:]:
        assert np.linalg.norm(other - ref) / np.linalg.norm(ref) < 1e-6


def test_ngd_cg_respects_its_budget():
    problem, theta = _problem()
    t = ngd_cg.build(lr=1.0, damping=1e-2, cg_iters=1)
    upd, state = t.update(problem, t.init(theta))
    assert state.last_iters == 1
    # one CG step from 0 is the exact line-search along grad: x = (g.g / g.A g) g
    g = problem.grad
    alpha = (g @ g) / (g @ problem.damped_matvec(g, 1e-2))
    np.testing.assert_allclose(-upd, alpha * g, rtol=1e-12)


def test_sgd_with_schedule():
    problem, theta = _problem()
    t = sgd.build(lr=lambda k: 0.5 / (k + 1))
    s = t.init(theta)
    u0, s = t.update(problem, s)
    u1, s = t.update(problem, s)
    np.testing.assert_allclose(u0, -0.5 * problem.grad)
    np.testing.assert_allclose(u1, -0.25 * problem.grad)


def test_adam_matches_closed_form():
    problem, theta = _problem()
    g = problem.grad
    t = adam.build(lr=0.1, b1=0.9, b2=0.999, eps=1e-8)
    u0, s = t.update(problem, t.init(theta))
    np.testing.assert_allclose(u0, -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)  # bias correction: first step = sign
    u1, s = t.update(problem, s)
    mu = 0.9 * 0.1 * g + 0.1 * g
    nu = 0.999 * 0.001 * g * g + 0.001 * g * g
    expected = -0.1 * (mu / (1 - 0.9 ** 2)) / (np.sqrt(nu / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(u1, expected, rtol=1e-12)
    assert s.count == 2
