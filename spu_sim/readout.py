"""Readout: waveforms (node voltages at ngspice's time points) -> estimates in problem units.

    1. resample each readout node onto the ADC's uniform grid t_k = k * sample_dt (linear
       interpolation between ngspice's own time points, which are at most one noise step apart);
    2. ADC: clip to +/- range_v and round to 2 range_v / 2^bits steps (ideal when bits is None);
    3. map volts to problem units with the design's scale (x = s_x V for the integrator SPU);
    4. discard the burn-in, then the time average (mean) and the sample covariance.

The ADC model is topology-agnostic: any design that has ``readout_nodes``, ``to_problem_units`` and
``v_swing_v`` can be read out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engines.raw import Waveforms


@dataclass(frozen=True)
class Adc:
    """bits None = ideal; range_v: full scale +/- range_v; values outside clip (and are counted)."""

    bits: int | None
    range_v: float

    @property
    def step_v(self) -> float:
        return 0.0 if self.bits is None else 2.0 * self.range_v / 2 ** self.bits

    def convert(self, v: np.ndarray) -> tuple[np.ndarray, int]:
        """Quantised voltages and the number of clipped samples."""
        if self.bits is None:
            return np.asarray(v, dtype=float), 0
        clipped = int(np.count_nonzero(np.abs(v) > self.range_v))
        q = np.clip(v, -self.range_v, self.range_v)
        q = np.round(q / self.step_v) * self.step_v
        return q, clipped


NOISE_FREE_POINTS = 2000


def sample_dt_tau(design, cfg) -> float:
    """Readout (ADC) sample period in tau: readout.sample_dt_tau, else the design's noise step (the noise is
    what the readout must resolve); without noise the fastest mode's step only up to NOISE_FREE_POINTS
    samples over the run (a noise-free transient of a badly scaled problem would otherwise ask for 1e9
    points). The transient's output step and the readout grid both use it."""
    if cfg.readout.sample_dt_tau:
        return cfg.readout.sample_dt_tau
    if design.has_noise:
        return design.noise_dt_tau
    return max(design.noise_dt_tau, cfg.simulation.t_stop_tau / NOISE_FREE_POINTS)


def make_adc(cfg, design) -> Adc:
    """The configured ADC; default range 1.25 x the design's swing."""
    return Adc(bits=cfg.readout.adc.bits, range_v=cfg.readout.adc.range_v or 1.25 * design.v_swing_v)


@dataclass(frozen=True)
class TransientReadout:
    """t_s (n,), x (n, d) problem units; x_mean (d,), x_cov (d, d) over t >= burn_in; n_clipped."""

    t_s: np.ndarray
    x: np.ndarray
    x_mean: np.ndarray
    x_cov: np.ndarray
    burn_in_s: float
    n_clipped: int


def resample(axis: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of one vector onto a grid (ngspice's time points are not uniform)."""
    return np.interp(grid, axis, np.real(values))


def read_node_voltages(wave: Waveforms, nodes: list[str], grid_s: np.ndarray) -> np.ndarray:
    """(len(grid), len(nodes)) voltages on the grid: ``resample`` of every node, in one vectorised pass over the
    nodes (a TNGD step reads 1e5 of them at one time point)."""
    return interp_columns(wave.axis, [wave.node(n) for n in nodes], grid_s)


def interp_columns(axis: np.ndarray, columns: list[np.ndarray], grid: np.ndarray) -> np.ndarray:
    """np.interp(grid, axis, real(c)) for every column c, as a (len(grid), len(columns)) array with the same
    numbers bit for bit: numpy's rule (a grid point on a knot takes the knot's value, points outside take the end
    values, else slope (x - x_j) + y_j with slope = (y_j+1 - y_j) / (x_j+1 - x_j), a NaN result retried from
    the right knot), applied to the rows the grid needs only."""
    axis = np.asarray(axis, dtype=float)
    grid = np.asarray(grid, dtype=float)
    n_pts = len(axis)
    j = np.clip(np.searchsorted(axis, grid, side="right") - 1, 0, max(n_pts - 2, 0))
    rows = np.unique(np.r_[j, np.minimum(j + 1, n_pts - 1)])
    V = np.empty((len(rows), len(columns)))
    for k, c in enumerate(columns):       # only the needed rows of each column (a view per node: no copy of it)
        V[:, k] = np.real(c[rows])
    at = np.searchsorted(rows, j)
    lo, hi = V[at], V[np.searchsorted(rows, np.minimum(j + 1, n_pts - 1))]
    out = np.empty((len(grid), len(columns)))
    for g, x in enumerate(grid):
        jj = int(j[g])
        if x < axis[0]:
            out[g] = lo[g]
        elif x >= axis[-1]:
            out[g] = V[np.searchsorted(rows, n_pts - 1)]
        elif x == axis[jj]:
            out[g] = lo[g]
        else:
            with np.errstate(invalid="ignore"):     # an infinite value: NaN retried as numpy does, silently
                slope = (hi[g] - lo[g]) / (axis[jj + 1] - axis[jj])
                row = slope * (x - axis[jj]) + lo[g]
                bad = np.isnan(row)
                if bad.any():
                    row[bad] = slope[bad] * (x - axis[jj + 1]) + hi[g][bad]
            out[g] = row
    return out


def estimate(x: np.ndarray, t_s: np.ndarray, burn_in_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Time average and sample covariance (ddof 1) of the samples after the burn-in."""
    keep = x[t_s >= burn_in_s]
    if keep.shape[0] < 2:
        raise ValueError("fewer than two samples after the burn-in")
    return keep.mean(axis=0), np.atleast_2d(np.cov(keep, rowvar=False))


def readout_grid(wave: Waveforms, sample_dt_s: float, t_stop_s: float) -> np.ndarray:
    """The ADC sample times k sample_dt_s up to t_stop_s that the waveform covers."""
    n = int(np.floor(t_stop_s / sample_dt_s + 1e-9))
    grid = np.arange(n + 1) * sample_dt_s
    return grid[grid <= wave.axis[-1] * (1 + 1e-12)]


def read_final_state(wave: Waveforms, design, adc: Adc, sample_dt_s: float, t_stop_s: float) -> np.ndarray:
    """x at the last ADC sample only (what an optimiser reads): read_transient's last row, without reading
    the other samples or estimating their statistics."""
    grid = readout_grid(wave, sample_dt_s, t_stop_s)
    vq, _ = adc.convert(read_node_voltages(wave, design.readout_nodes, grid[-1:]))
    return np.array(design.to_problem_units(vq)[-1])


def read_transient(wave: Waveforms, design, adc: Adc, sample_dt_s: float, t_stop_s: float,
                   burn_in_s: float) -> TransientReadout:
    """The whole readout chain of a transient (see module doc)."""
    grid = readout_grid(wave, sample_dt_s, t_stop_s)
    v = read_node_voltages(wave, design.readout_nodes, grid)
    vq, clipped = adc.convert(v)
    x = design.to_problem_units(vq)
    mean, cov = estimate(x, grid, burn_in_s)
    return TransientReadout(grid, x, mean, cov, burn_in_s, clipped)


def read_op(wave: Waveforms, design) -> np.ndarray:
    """The operating point in problem units (no ADC: .op is the exact equilibrium of the netlist)."""
    v = np.array([float(np.real(wave.node(n))[0]) for n in design.readout_nodes])
    return design.to_problem_units(v)
