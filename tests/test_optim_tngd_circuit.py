"""The circuit backend (ngspice through spu_sim.analog.AnalogSolver) against the ideal backend."""

import numpy as np
import pytest

from spu_sim.optim import tngd
from spu_sim.train import data, models

pytestmark = pytest.mark.ngspice


def _logreg_case():
    """The N = 8 logistic regression both tests step: data, model, start, TNGD settings."""
    ds = data.make_blobs(n_samples=80, n_features=3, n_classes=2, seed=3)
    model = models.make_model("logreg", 3, 2)
    theta = model.init(np.random.default_rng(0), 0.3)
    return ds, model, theta, dict(lr=1.0, damping=0.5, t_stop_tau=2.0, delay_tau=0.0)


def test_circuit_estimate_matches_ideal_transient():
    """Three warm-started TNGD steps on an N = 8 logistic regression: same problems, same t_stop_tau.

    Both backends integrate the same OU drift from the same x0 (kappa = 0, ideal ADC, ideal op-amps),
    so the readouts differ only by ngspice's transient truncation error, bounded per step by its
    RELTOL = 1e-3; 1e-2 (10 x RELTOL, for accumulation over the transient) is the tolerance. It is far
    below the change from halving t_stop_tau (checked at step 0). Measured here: 1.6e-3 to 2.7e-3.
    """
    ds, model, theta, kw = _logreg_case()
    ideal, circ = tngd.build(**kw), tngd.build(**kw, backend="ngspice-shared")
    s_i, s_c = ideal.init(theta), circ.init(theta)
    for k, idx in enumerate(data.batch_indices(len(ds.y_train), 8, 3, seed=1)):
        p = models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx])
        u_i, s_i = ideal.update(p, s_i)
        u_c, s_c = circ.update(p, s_c)
        err = np.linalg.norm(u_c - u_i) / np.linalg.norm(u_i)
        assert err < 1e-2, (k, err)
        if k == 0:  # the tolerance discriminates: half the analog time is far outside it
            half = tngd.ou_transient(p.damped_matrix(0.5), p.grad, p.grad, 1.0)
            assert np.linalg.norm(half + u_i) / np.linalg.norm(u_i) > 0.05  # 0.105 here, 10 x the tolerance
        theta = theta + u_i
    assert s_c.tau_s > 0


def test_linear_engine_backend_equals_the_ideal_transient():
    """backend linear: the same op-amp circuit on the exact linear engine. Its only error against the ideal OU
    transient is the circuit's realisation of A (pruned entries: none here) and the float round-off of exact
    stepping, so it must agree to 1e-8 -- far tighter than the ngspice backend's 1e-2."""
    ds, model, theta, kw = _logreg_case()
    ideal, lin = tngd.build(**kw), tngd.build(**kw, backend="linear")
    s_i, s_l = ideal.init(theta), lin.init(theta)
    for idx in data.batch_indices(len(ds.y_train), 8, 3, seed=1):
        p = models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx])
        u_i, s_i = ideal.update(p, s_i)
        u_l, s_l = lin.update(p, s_l)
        assert np.linalg.norm(u_l - u_i) / np.linalg.norm(u_i) < 1e-8
        theta = theta + u_i
