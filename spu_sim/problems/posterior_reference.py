"""References for the posterior circuits (they depend on nothing in the circuit path).

- Gaussian-Gaussian: exact, N(P^-1 b, P^-1) (GaussianPosteriorProblem.posterior_mean / posterior_cov).
- Logistic regression: the Laplace approximation (MAP by scipy.optimize, Hessian at the MAP) and a reference
  sampler: emcee's affine-invariant ensemble sampler (Foreman-Mackey et al. 2013, emcee 3) on the same data
  and prior, started from the Laplace law, with its Monte Carlo standard errors from emcee's integrated
  autocorrelation time.

``link`` selects the sigmoid of the likelihood: ``logistic`` (the model) or ``hard`` (the piecewise-linear
clip(1/2 + z/4, 0, 1) a clipped-amplifier circuit realises): log p(theta) = -1/2 (theta - mu0)^T S0^-1
(theta - mu0) + sum_k [y_k z_k - F(z_k)], z = X theta, F' = the link (F = softplus for the logistic; for the
hard link F = 0 below -2, (z + 2)/2 + (z^2 - 4)/8 between, z above 2). Both are log-concave.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize


def link_fn(z: np.ndarray, link: str = "logistic") -> np.ndarray:
    if link == "hard":
        return np.clip(0.5 + 0.25 * z, 0.0, 1.0)
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def _F(z: np.ndarray, link: str) -> np.ndarray:
    if link == "hard":
        return np.where(z <= -2, 0.0, np.where(z >= 2, z, (z + 2) / 2 + (z * z - 4) / 8))
    return np.logaddexp(0.0, z)


def link_slope(z: np.ndarray, link: str) -> np.ndarray:
    if link == "hard":
        return np.where(np.abs(z) < 2, 0.25, 0.0)
    s = link_fn(z)
    return s * (1.0 - s)


def log_posterior(theta: np.ndarray, data, link: str = "logistic") -> np.ndarray:
    """(..., d) -> (...): unnormalised log posterior (module doc)."""
    th = np.asarray(theta, dtype=float)
    r = th - data.prior_mean
    z = th @ data.X.T
    return -0.5 * np.einsum("...i,ij,...j->...", r, data.prior_prec, r) + (z * data.y - _F(z, link)).sum(-1)


def grad_log_posterior(theta: np.ndarray, data, link: str = "logistic") -> np.ndarray:
    th = np.asarray(theta, dtype=float)
    return -(th - data.prior_mean) @ data.prior_prec.T + (data.y - link_fn(th @ data.X.T, link)) @ data.X


def laplace(data, link: str = "logistic") -> tuple[np.ndarray, np.ndarray]:
    """(MAP, Hessian of -log p at the MAP): S0^-1 + X^T diag(link'(X MAP)) X."""
    d = data.X.shape[1]
    res = minimize(lambda t: -log_posterior(t, data, link), np.array(data.prior_mean, dtype=float),
                   jac=lambda t: -grad_log_posterior(t, data, link), method="BFGS",
                   options={"gtol": 1e-10, "maxiter": 10_000})
    theta = res.x
    w = link_slope(data.X @ theta, link)
    H = data.prior_prec + (data.X * w[:, None]).T @ data.X
    return theta, 0.5 * (H + H.T) if d else H


class McmcReference(NamedTuple):
    """samples (n, d) after burn-in (walkers flattened), mean (d,), cov (d, d), mean_var (d,) and cov_var
    (d, d): the Monte Carlo variances of mean and cov from emcee's integrated autocorrelation time tau (d,)
    (in steps), n_eff = walkers * steps / max(tau)."""

    samples: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    mean_var: np.ndarray
    cov_var: np.ndarray
    tau_steps: np.ndarray
    n_eff: float


def emcee_reference(data, *, link: str = "logistic", n_walkers: int = 32, n_steps: int = 4000,
                    burn_steps: int = 500, seed: int = 0) -> McmcReference:
    """The reference posterior of logistic regression from emcee (module doc); reproducible from seed."""
    import emcee  # noqa: PLC0415
    d = data.X.shape[1]
    n_walkers = max(n_walkers, 2 * d + 2)
    theta_map, H = laplace(data, link)
    rng = np.random.default_rng(seed)
    p0 = rng.multivariate_normal(theta_map, np.linalg.inv(H), size=n_walkers)
    sampler = emcee.EnsembleSampler(n_walkers, d, lambda t: log_posterior(t, data, link), vectorize=True)
    sampler.random_state = np.random.RandomState(seed).get_state()
    sampler.run_mcmc(p0, burn_steps + n_steps, progress=False)
    chain = sampler.get_chain(discard=burn_steps)            # (steps, walkers, d)
    tau = np.atleast_1d(emcee.autocorr.integrated_time(chain, quiet=True))
    flat = chain.reshape(-1, d)
    n_eff = flat.shape[0] / float(np.max(tau))
    mean, cov = flat.mean(0), np.atleast_2d(np.cov(flat, rowvar=False))
    v = np.diag(cov)
    cov_var = (np.outer(v, v) + cov ** 2) / n_eff
    return McmcReference(flat, mean, cov, v / n_eff, cov_var, tau, n_eff)
