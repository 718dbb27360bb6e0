"""Shared fixtures. Circuit tests run real ngspice (installed by scripts/setup.sh); none is mocked."""

from __future__ import annotations

import numpy as np
import pytest


def spd_problem(d: int, condition: float, seed: int = 1, kappa: float = 0.01, **sim) -> dict:
    """A config dict of a random SPD problem for the op-amp SPU."""
    cfg = {"problem": {"matrix": {"random": {"kind": "spd", "d": d, "condition": condition, "seed": seed}},
                       "vector": {"random": {"kind": "normal", "seed": seed + 1}}, "kappa": kappa},
           "simulation": {"t_stop_tau": 50.0, "seed": 0}}
    cfg["simulation"].update(sim)
    return cfg


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
