"""The exact reference: closed forms checked against each other and against its exact sampler."""

import numpy as np
from scipy import stats

from spu_sim import ideal


def spd(d, seed):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d, d))
    return M @ M.T / d + 0.5 * np.eye(d)


def test_stationary_cov_symmetric_is_kappa_inverse():
    A = spd(4, 0)
    sde = ideal.ou_sde(A, np.ones(4), 0.3)
    assert np.allclose(ideal.stationary_cov(sde), 0.3 * np.linalg.inv(A), rtol=1e-10)


def test_stationary_cov_solves_lyapunov_for_nonsymmetric_drift():
    A = spd(3, 1) + np.array([[0, 0.3, 0], [-0.1, 0, 0.2], [0, 0, 0]])
    sde = ideal.ou_sde(A, np.zeros(3), 0.5)
    S = ideal.stationary_cov(sde)
    assert np.allclose(A @ S + S @ A.T, np.eye(3), atol=1e-12)
    assert not np.allclose(S, 0.5 * np.linalg.inv(A), atol=1e-3)  # the symmetric formula would be wrong


def test_transient_moments_limits():
    A, b, x0 = spd(3, 2), np.array([1.0, -2.0, 0.5]), np.array([3.0, 0.0, -1.0])
    sde = ideal.ou_sde(A, b, 0.1)
    m = ideal.transient_mean(sde, x0, np.array([0.0, 200.0]))
    assert np.allclose(m[0], x0) and np.allclose(m[1], np.linalg.solve(A, b))
    c = ideal.transient_cov(sde, np.array([0.0, 200.0]))
    assert np.allclose(c[0], 0, atol=1e-14) and np.allclose(c[1], 0.1 * np.linalg.inv(A))


def test_sampler_matches_transient_moments_over_paths():
    """2000 independent exact paths to t = 0.7: sample mean and covariance vs the closed forms."""
    A, b, x0 = spd(2, 3), np.array([0.5, -1.0]), np.array([2.0, 1.0])
    sde = ideal.ou_sde(A, b, 0.2)
    t = np.array([0.0, 0.35, 0.7])
    n = 2000
    ends = np.array([ideal.sample(sde, x0, t, seed=s)[-1] for s in range(n)])
    mean = ideal.transient_mean(sde, x0, t[-1:])[0]
    cov = ideal.transient_cov(sde, t[-1:])[0]
    # Hotelling-style check: n (xbar - m)^T cov^-1 (xbar - m) ~ chi2(2)
    diff = ends.mean(0) - mean
    assert n * diff @ np.linalg.solve(cov, diff) < stats.chi2.ppf(1 - 1e-4, 2)
    # variance of a sample variance: 2 sigma^4 / (n - 1)
    sc = np.cov(ends, rowvar=False)
    z = (np.diag(sc) - np.diag(cov)) / (np.diag(cov) * np.sqrt(2 / (n - 1)))
    assert np.all(np.abs(z) < 4.5)


def test_time_average_and_sample_cov_variance_theory():
    """Variance of the time average and of the sample covariance over 300 independent stationary
    windows against ideal.time_average_cov and ideal.sample_cov_var (large-T forms)."""
    A = np.array([[1.0, 0.3], [0.3, 2.0]])
    sde = ideal.ou_sde(A, np.zeros(2), 1.0)
    S = ideal.stationary_cov(sde)
    T, h, n = 60.0, 0.05, 300
    t = np.arange(0, T + h / 2, h)
    L = np.linalg.cholesky(S)
    means, covs = [], []
    for s in range(n):
        x0 = L @ np.random.default_rng(10_000 + s).standard_normal(2)
        x = ideal.sample(sde, x0, t, seed=s)
        means.append(x.mean(0))
        covs.append(np.cov(x, rowvar=False))
    means, covs = np.array(means), np.array(covs)
    v_mean = ideal.time_average_cov(sde, T)
    v_cov = ideal.sample_cov_var(sde, T)
    # ratio of an empirical variance to its truth: std sqrt(2/(n-1)) = 0.08; finite-T terms O(1/(lambda T)) ~ 2 %
    r_mean = means.var(0, ddof=1) / np.diag(v_mean)
    r_cov = covs.reshape(n, -1).var(0, ddof=1) / v_cov.ravel()
    assert np.all(np.abs(r_mean - 1) < 4 * 0.082 + 0.04), r_mean
    assert np.all(np.abs(r_cov - 1) < 4 * 0.082 + 0.04), r_cov
