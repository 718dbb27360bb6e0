"""The readout's vectorised interpolation (readout.interp_columns) against numpy's np.interp per node: the same
numbers bit for bit on random axes, grids inside, outside and on the knots, and infinite samples."""

import numpy as np
import pytest

from spu_sim.engines.raw import Waveforms
from spu_sim.readout import interp_columns, read_node_voltages


@pytest.mark.parametrize("seed", range(40))
def test_interp_columns_equals_np_interp(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    axis = np.linspace(0.0, 1.0, n) if seed % 3 == 0 else np.sort(rng.uniform(0.0, 1.0, n))
    cols = [rng.standard_normal(n) for _ in range(6)]
    if seed % 5 == 0 and n > 2:
        cols[1][n // 2] = np.inf
        cols[2][0] = -np.inf
    grid = np.r_[rng.uniform(-0.2, 1.2, 7), axis[rng.integers(0, n, 3)], axis[0], axis[-1]]
    if seed % 2:
        grid = np.sort(grid)
    with np.errstate(invalid="ignore"):
        want = np.column_stack([np.interp(grid, axis, c) for c in cols])
    assert np.array_equal(interp_columns(axis, cols, grid), want, equal_nan=True)


def test_read_node_voltages_by_node_name():
    t = np.linspace(0.0, 1e-6, 11)
    wave = Waveforms("tran", t, {"time": t, "v(x1)": t * 2.0, "v(x2)": -t})
    got = read_node_voltages(wave, ["x2", "X1"], np.array([0.05e-6, 1e-6]))
    assert np.array_equal(got, np.array([[-0.05e-6, 0.1e-6], [-1e-6, 2e-6]]))
