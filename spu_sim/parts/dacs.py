"""The DACs that program a constant input (b, y): a held voltage on its own node, through an input resistor into
a summing node (a switched-capacitor topology takes the held voltage alone, ``dac``).

    b_dacs(v_dac_v, r_in_ohm)     VDAC<i> (node dac<i>) and RIN<i> into sum<i>, i = 1..d
"""

from __future__ import annotations

import numpy as np

from ..circuit import Resistor, VoltageSource


def dac(name: str, node: str, v_v: float) -> VoltageSource:
    """A DAC holding v_v volts on node (an ideal DC source to ground)."""
    return VoltageSource(name, node, "0", float(v_v))


def resistor_dac(v_name: str, r_name: str, node: str, into: str, v_v: float, r_ohm: float) -> list:
    """A DAC on node driving the current v_v / r_ohm into the (virtual-ground) node ``into``."""
    return [dac(v_name, node, v_v), Resistor(r_name, node, into, float(r_ohm))]


def b_dacs(v_dac_v: np.ndarray, r_in_ohm: np.ndarray) -> list:
    """The right-hand side b of an integrator network: VDAC<i> on dac<i> through RIN<i> into sum<i> (d,)."""
    E: list = []
    for i in range(1, len(v_dac_v) + 1):
        E += resistor_dac(f"VDAC{i}", f"RIN{i}", f"dac{i}", f"sum{i}", v_dac_v[i - 1], r_in_ohm[i - 1])
    return E
