"""Netlist: design -> standalone ngspice text (+ the noise file it reads). One module per topology.

Only numbers computed by the design and names chosen here reach the netlist: no config string does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config

NETLIST_NAME = "netlist.cir"
NOISE_NAME = "noise.txt"  # multi-column file of one multi-output filesource (fine below 32 outputs)
NOISE_NAME_PER_OUTPUT = "noise_{}.txt"  # one file per noise output, 1-based index


def fmt(x: float) -> str:
    """A float as exact SPICE text (shortest round-trip repr)."""
    x = float(x)
    if not np.isfinite(x):
        raise ValueError(f"non-finite value {x} cannot go into a netlist")
    return repr(x)


def sample_dt_tau(design, cfg: Config) -> float:
    """Readout (ADC) sample period in tau: readout.sample_dt_tau, else the design's noise step. The
    transient's output step and the readout grid both use it."""
    return cfg.readout.sample_dt_tau or design.noise_dt_tau


def format_netlist(design, cfg: Config) -> str:
    """The netlist text of a design (dispatch on its topology)."""
    if design.topology == "opamp":
        from .opamp import format_opamp_netlist
        return format_opamp_netlist(design, cfg)
    from .rlc import format_rlc_netlist  # noqa: PLC0415
    return format_rlc_netlist(design, cfg)


PRE_EMPHASIS = 1.0 / 3.0


def noise_samples(d: int, n_steps: int, seed: int) -> np.ndarray:
    """Unit-intensity noise samples, (n_steps + 2, d), reproducible from the seed.

    u_k = w_k + c (w_k - w_{k-1}), w_k iid N(0, 1) from numpy's PCG64 seeded with `seed`, c = 1/3.

    Why the pre-emphasis: the filesource interpolates linearly between samples, which removes power
    above 1/h and lowers a mode's stationary variance by about r h / 2 (r: its decay rate, h: the
    sample step; physics.md measured 0.95 at r h = 0.1). The first difference adds back high-frequency
    power with DC gain 1, so the low-frequency intensity (what kappa is defined by) is unchanged and
    the loss falls to about 0.06 r h (exact single-mode calculation: -0.0081 at r h = 0.1,
    -0.0012 at r h = 0.02; tests/test_noise_math.py checks it).
    One extra sample past the stop time keeps the interpolation defined at the last point. The sample
    at t = 0 is zero, so that ``.op`` (which sees the filesource's value at t = 0) is noise-free.
    """
    w = np.random.default_rng(seed).standard_normal((n_steps + 3, d))
    u = w[1:] + PRE_EMPHASIS * (w[1:] - w[:-1])
    u[0] = 0.0
    return u


def noise_file_names(n: int) -> list[str]:
    return [NOISE_NAME_PER_OUTPUT.format(i) for i in range(1, n + 1)]


def format_noise_sources(d: int) -> list[str]:
    """Netlist lines of d noise DACs: ANOISE<i> (XSPICE filesource reading noise_<i>.txt) drives node nz<i>
    with the linearly interpolated samples (the topology connects nz<i> to its circuit)."""
    lines = []
    for i, name in enumerate(noise_file_names(d), start=1):
        lines.append(f"ANOISE{i} %vd([nz{i} 0]) noisesrc{i}")
        lines.append(f".model noisesrc{i} filesource (file=\"{name}\" amploffset=[0] amplscale=[1]"
                     " timeoffset=0 timescale=1 timerelative=false amplstep=false)")
    return lines


def write_noise_file(path: Path, dt_s: float, values_v: np.ndarray) -> None:
    """XSPICE filesource text for ONE multi-output filesource: time in s, then one column per output."""
    t = np.arange(values_v.shape[0]) * dt_s
    with open(path, "w") as fh:
        np.savetxt(fh, np.column_stack([t, values_v]), fmt="%.10e")


def write_noise_files(folder: Path, dt_s: float, values_v: np.ndarray) -> list[Path]:
    """XSPICE filesource text, one file per output (column k of values_v -> noise_<k+1>.txt): one row
    per sample, time in s then the value in volts.

    One filesource element per output, not one element with d outputs: ngspice 39's operating point
    fails to converge with a single filesource of 32 or more outputs (measured), while d single-output
    elements are fine at d = 64.
    """
    t = np.arange(values_v.shape[0]) * dt_s
    paths = []
    for k, name in enumerate(noise_file_names(values_v.shape[1])):
        path = Path(folder) / name
        with open(path, "w") as fh:
            np.savetxt(fh, np.column_stack([t, values_v[:, k]]), fmt="%.10e")
        paths.append(path)
    return paths
