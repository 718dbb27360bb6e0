"""tkfac on the ngspice op-amp SPU (backend ngspice-shared, spu_sim.analog.AnalogSolver) against digital kfac."""

import numpy as np
import pytest

from spu_sim.optim import kfac, tkfac
from spu_sim.train import data, models

pytestmark = pytest.mark.ngspice


def _norm2(m):
    return float(np.linalg.norm(m, 2))


def test_circuit_tkfac_tracks_kfac_within_the_measured_solve_error():
    """Three steps of a 3 -> 3 -> 2 MLP (factors 4, 3, 4, 2: 13 ngspice transients per refresh) on the
    problems of kfac's own trajectory. Per layer the circuit direction differs from kfac's by
    D_c - D = E_A dW Minv_G,c + Minv_A dW E_G (E = circuit inverse - exact inverse, both measured here), so
    |D_c - D|_F <= |E_A|_2 |dW Minv_G,c|_F + |Minv_A dW|_F |E_G|_2 exactly: the tolerance is the circuit's
    measured solve error carried through the update, nothing guessed. The solve error itself is bounded
    by 1e-2 (10 x ngspice's RELTOL, as for TNGD on the circuit)."""
    ds = data.make_blobs(n_samples=80, n_features=3, n_classes=2, seed=3)
    model = models.make_model("mlp", 3, 2, hidden=[3])
    theta = model.init(np.random.default_rng(0))
    kw = dict(lr=0.5, damping=0.01, decay=0.9, inverse_every=1)
    ref, circ = kfac.build(**kw), tkfac.build(**kw, backend="ngspice-shared", t_stop_tau=100.0)
    other = kfac.build(**{**kw, "damping": 0.02})
    s_r, s_c, s_o = ref.init(theta), circ.init(theta), other.init(theta)
    for k, idx in enumerate(data.batch_indices(len(ds.y_train), 8, 3, seed=1)):
        p = models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx])
        u_r, s_r = ref.update(p, s_r)
        u_c, s_c = circ.update(p, s_c)
        u_o, s_o = other.update(p, s_o)
        assert s_c.solves == 13 and s_c.tau_s > 0
        bound_sq, solve_err = 0.0, []
        for layer, ai, gi, aic, gic in zip(p.layers, s_r.a_inv, s_r.g_inv, s_c.kfac.a_inv, s_c.kfac.g_inv):
            ea, eg = aic - ai, gic - gi
            solve_err += [_norm2(ea) / _norm2(ai), _norm2(eg) / _norm2(gi)]
            dw = p.grad[layer.index]
            bound_sq += (_norm2(ea) * np.linalg.norm(dw @ gic) + np.linalg.norm(ai @ dw) * _norm2(eg)) ** 2
        assert max(solve_err) < 1e-2, (k, solve_err)
        diff = np.linalg.norm(u_c - u_r)
        tol = kw["lr"] * np.sqrt(bound_sq)
        assert diff <= tol * (1 + 1e-9), (k, diff, tol)
        # the tolerance discriminates: doubling the damping moves the direction 10x further than it
        assert np.linalg.norm(u_o - u_r) > 10 * tol, (k, np.linalg.norm(u_o - u_r), tol)
        print(k, "solve err", max(solve_err), "dir err", diff / np.linalg.norm(u_r), "tol", tol / np.linalg.norm(u_r),
              "damping x2", np.linalg.norm(u_o - u_r) / np.linalg.norm(u_r))
        theta = theta + u_r


def test_circuit_inverse_follows_the_ou_transient_with_warm_start():
    """At t = 2 tau the inverse is far from converged, so this checks the transient and the warm start
    (x0 = s Minv_prev e_j at the second refresh), not only the equilibrium: circuit and ideal backends
    integrate the same drift from the same x0, so they differ by ngspice's truncation error (tolerance
    1e-2 = 10 x RELTOL, as for TNGD). Half the analog time is far outside it."""
    ds = data.make_blobs(n_samples=80, n_features=3, n_classes=2, seed=3)
    model = models.make_model("logreg", 3, 2)
    theta = model.init(np.random.default_rng(0), 0.3)
    kw = dict(lr=0.5, damping=0.01, decay=0.5, inverse_every=1, t_stop_tau=2.0)
    ideal, circ, half = tkfac.build(**kw), tkfac.build(**kw, backend="ngspice-shared"), tkfac.build(**{**kw, "t_stop_tau": 1.0})
    s_i, s_c, s_h = ideal.init(theta), circ.init(theta), half.init(theta)
    for k, idx in enumerate(data.batch_indices(len(ds.y_train), 8, 2, seed=1)):
        p = models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx])
        u_i, s_i = ideal.update(p, s_i)
        u_c, s_c = circ.update(p, s_c)
        u_h, s_h = half.update(p, s_h)
        for inv_i, inv_c, inv_h in zip(s_i.kfac.a_inv + s_i.kfac.g_inv, s_c.kfac.a_inv + s_c.kfac.g_inv,
                                       s_h.kfac.a_inv + s_h.kfac.g_inv):
            err = _norm2(inv_c - inv_i) / _norm2(inv_i)
            assert err < 1e-2, (k, err)
            assert _norm2(inv_h - inv_i) / _norm2(inv_i) > 0.05, k
        exact = [kfac.spd_inverse(m) for pair in s_i.damped for m in pair]
        assert max(_norm2(a - b) / _norm2(b) for a, b in zip(s_i.kfac.a_inv + s_i.kfac.g_inv, exact)) > 1e-2
        assert np.linalg.norm(u_c - u_i) < 1e-2 * np.linalg.norm(u_i)
        theta = theta + u_i


def test_ideal_adc_model_reads_the_same_codes_as_the_circuit():
    """tkfac's ideal backend models the readout ADC with the circuit's range rule (1.25 x the larger of
    |x*| + 4 sigma and |x0|, spu_sim.design.opamp / readout). With a 6-bit ADC (one code = 2.5 x_range / 64,
    about 4 % of the largest entry) ngspice's 3e-6 solve error almost never moves a code, so the two
    backends must give the same inverse entry for entry (at most 2 % of entries one code apart, none
    further); a 7-bit ADC, by contrast, changes most entries."""
    ds = data.make_blobs(n_samples=80, n_features=3, n_classes=2, seed=3)
    model = models.make_model("mlp", 3, 2, hidden=[3])
    theta = model.init(np.random.default_rng(0))
    kw = dict(lr=0.5, damping=0.01, decay=0.9, inverse_every=1, t_stop_tau=100.0)
    adc = lambda bits: {"adc": {"bits": bits}}  # noqa: E731
    ideal, circ, finer = (tkfac.build(**kw, readout=adc(6)), tkfac.build(**kw, readout=adc(6), backend="ngspice-shared"),
                          tkfac.build(**kw, readout=adc(7)))
    s_i, s_c, s_f = ideal.init(theta), circ.init(theta), finer.init(theta)
    moved = total = changed = 0
    for idx in data.batch_indices(len(ds.y_train), 8, 2, seed=1):
        p = models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx])
        u_i, s_i = ideal.update(p, s_i)
        _, s_c = circ.update(p, s_c)
        _, s_f = finer.update(p, s_f)
        for a, c, f in zip(s_i.kfac.a_inv + s_i.kfac.g_inv, s_c.kfac.a_inv + s_c.kfac.g_inv,
                           s_f.kfac.a_inv + s_f.kfac.g_inv):
            code = 2.5 * 1.01 * np.abs(a).max() / 2 ** 6  # one code of the widest column (+1 % for ngspice)
            diff = np.abs(c - a)
            assert diff.max() <= code
            moved += int(np.count_nonzero(diff > 1e-9 * np.abs(a).max()))
            changed += int(np.count_nonzero(np.abs(f - a) > 1e-9 * np.abs(a).max()))
            total += a.size
        theta = theta + u_i
    assert moved <= 0.02 * total, (moved, total)  # measured here: 0 of 90 (differences <= 5e-16 relative)
    assert changed > 0.2 * total, (changed, total)


def test_unrealisable_quantised_factor_is_one_design_error():
    """2-bit factors of the digits MLP are not positive definite (docs/kfac.md): the circuit cannot be
    designed, and tkfac says which factor and knob, in one line (exit 2 through the CLI)."""
    from spu_sim.errors import DesignError

    ds = data.load_digits(test_fraction=0.25, seed=0, features="pca", n_components=12, pool=2)
    model = models.make_model("mlp", 12, 10, hidden=[16, 16])
    theta = model.init(np.random.default_rng(0))
    idx = data.batch_indices(len(ds.y_train), 32, 1, 0)[0]
    p = models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx])
    t = tkfac.build(lr=0.1, damping=0.01, backend="ngspice-shared", factor_bits=2)
    with pytest.raises(DesignError, match=r"tkfac: the 16 x 16 factor programmed with factor_bits = 2") as info:
        t.update(p, t.init(theta))
    assert "\n" not in str(info.value)
