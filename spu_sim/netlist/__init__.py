"""Netlist: design -> standalone ngspice text (+ the noise file it reads). One module per topology.

Only numbers computed by the design and names chosen here reach the netlist: no config string does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config

NETLIST_NAME = "netlist.cir"
NOISE_NAME = "noise.txt"


def fmt(x: float) -> str:
    """A float as exact SPICE text (shortest round-trip repr)."""
    x = float(x)
    if not np.isfinite(x):
        raise ValueError(f"non-finite value {x} cannot go into a netlist")
    return repr(x)


def format_netlist(design, cfg: Config) -> str:
    """The netlist text of a design (dispatch on its topology)."""
    if design.topology == "opamp":
        from .opamp import format_opamp_netlist
        return format_opamp_netlist(design, cfg)
    from .rlc import format_rlc_netlist  # noqa: PLC0415
    return format_rlc_netlist(design, cfg)


def noise_samples(d: int, n_steps: int, seed: int) -> np.ndarray:
    """Standard-normal noise samples, (n_steps + 2, d), reproducible from the seed.

    The generator is numpy's PCG64 seeded with `seed`; one extra sample past the stop time keeps the
    interpolation defined at the last point. The sample at t = 0 is zero, so that ``.op`` (which sees the
    filesource's value at t = 0) is the noise-free equilibrium.
    """
    w = np.random.default_rng(seed).standard_normal((n_steps + 2, d))
    w[0] = 0.0
    return w


def write_noise_file(path: Path, dt_s: float, values_v: np.ndarray) -> None:
    """XSPICE filesource text: one row per sample, time in s then one column per output (volts)."""
    t = np.arange(values_v.shape[0]) * dt_s
    data = np.column_stack([t, values_v])
    with open(path, "w") as fh:
        np.savetxt(fh, data, fmt="%.10e")
