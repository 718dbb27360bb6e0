"""Shared fixtures. Circuit tests run real ngspice (installed by scripts/setup.sh); none is mocked."""

from __future__ import annotations

import numpy as np
import pytest


def spd_problem(d: int, condition: float, seed: int = 1, kappa: float = 0.01, circuit: dict | None = None,
                **sim) -> dict:
    """A config dict of a random SPD problem for the op-amp SPU (matrix seed `seed`, vector seed `seed + 1`;
    `sim` overrides simulation keys, `circuit` sets the circuit section)."""
    cfg = {"problem": {"matrix": {"random": {"kind": "spd", "d": d, "condition": condition, "seed": seed}},
                       "vector": {"random": {"kind": "normal", "seed": seed + 1}}, "kappa": kappa},
           "simulation": {"t_stop_tau": 50.0, "seed": 0}}
    cfg["simulation"].update(sim)
    if circuit:
        cfg["circuit"] = circuit
    return cfg


def rlc_problem(matrix, *, rlc: dict | None = None, circuit: dict | None = None, kappa: float = 1.0,
                sample_dt_tau: float | None = None, **sim) -> dict:
    """A config dict for the RLC SPU: `matrix` (inline or {random: ...}), circuit.rlc = `rlc`, extra circuit
    sections in `circuit`; a 100-tau transient with noise every 0.05 tau unless `sim` overrides it."""
    cfg = {"problem": {"matrix": matrix, "kappa": kappa},
           "circuit": {"topology": "rlc", "rlc": dict(rlc or {}), **(circuit or {})},
           "simulation": {"t_stop_tau": 100.0, "noise_dt_tau": 0.05, "analyses": ["tran"], **sim}}
    if sample_dt_tau is not None:
        cfg["readout"] = {"sample_dt_tau": sample_dt_tau}
    return cfg


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
