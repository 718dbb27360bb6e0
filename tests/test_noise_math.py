"""Pure maths of the injected noise: pre-emphasis keeps the intensity and cancels most of the
variance loss of linear interpolation (spu_sim.parts.noise_dacs.noise_samples)."""

import numpy as np
import pytest
from scipy.integrate import quad

from spu_sim.parts.noise_dacs import PRE_EMPHASIS, noise_samples


def knot_variance_ratio(rh: float, c: float) -> float:
    """Exact stationary variance at the knots of dx/dt = -r x + u(t), u the linear interpolation of
    u_k = w_k + c (w_k - w_{k-1}) with unit-intensity w (Var w = 1/h), divided by the white-noise value 1/(2r)."""
    r, h = 1.0, rh
    a = np.exp(-r * h)
    al = quad(lambda s: np.exp(-r * (h - s)) * (1 - s / h), 0, h)[0]
    be = quad(lambda s: np.exp(-r * (h - s)) * (s / h), 0, h)[0]
    n = int(60 / (r * h))
    u = np.zeros(n + 2)
    u[0], u[1] = 1 + c, -c
    x = np.zeros(n + 1)
    x[0] = be * u[0]
    for k in range(n):
        x[k + 1] = a * x[k] + al * u[k] + be * u[k + 1]
    return float(np.sum(x ** 2) / h * (2 * r))


@pytest.mark.parametrize("rh", [0.1, 0.02])
def test_pre_emphasis_cuts_the_interpolation_bias(rh):
    plain = knot_variance_ratio(rh, 0.0) - 1
    emph = knot_variance_ratio(rh, PRE_EMPHASIS) - 1
    assert plain == pytest.approx(-rh / 2, rel=0.1)   # physics.md: about 1 - r NT / 2
    assert abs(emph) < 0.1 * rh                        # at least 5x smaller


def test_noise_samples_are_seeded_and_keep_unit_intensity():
    a = noise_samples(3, 200_000, seed=5)
    b = noise_samples(3, 200_000, seed=5)
    c = noise_samples(3, 200_000, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(a[0] == 0)
    # low-frequency intensity = sum of the autocovariance = (DC gain)^2 = 1; check via block means
    blocks = a[1:200_001].reshape(-1, 1000, 3).mean(axis=1)  # each block mean has variance ~ 1/1000
    var = blocks.var(axis=0, ddof=1) * 1000
    # 200 blocks: relative std of a variance estimate sqrt(2/199) = 0.1 -> 4 sigma
    assert np.all(np.abs(var - 1) < 0.4)
