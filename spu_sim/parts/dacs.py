"""The DACs that program a constant input (b, y): a held voltage on its own node, through an input resistor into
a summing node (a switched-capacitor topology takes the held voltage alone, ``dac``).

    b_dacs(v_dac_v, r_in_ohm)     VDAC<i> (node dac<i>) and RIN<i> into sum<i>, i = 1..d
    b_dac_bank(v_dac_v, r_in_ohm) the same as one ElementBank (spu_sim.circuit; for large d)
"""

from __future__ import annotations

import numpy as np

from ..circuit import ElementBank, ONE_CELL, Resistor, Template, VoltageSource


def dac(name: str, node: str, v_v: float) -> VoltageSource:
    """A DAC holding v_v volts on node (an ideal DC source to ground)."""
    return VoltageSource(name, node, "0", float(v_v))


def resistor_dac(v_name: str, r_name: str, node: str, into: str, v_v: float, r_ohm: float) -> list:
    """A DAC on node driving the current v_v / r_ohm into the (virtual-ground) node ``into``."""
    return ElementBank(ONE_CELL, _resistor_dac_cell(v_name, r_name, node, into, float(v_v), float(r_ohm))).elements()


def _resistor_dac_cell(v_name, r_name, node, into, v_v, r_ohm) -> tuple[Template, Template]:
    """resistor_dac's cell for a bank: names and nodes patterns or plain strings, values one number or an array."""
    return (Template(VoltageSource, dict(name=v_name, n_pos=node, n_neg="0", dc_v=v_v)),
            Template(Resistor, dict(name=r_name, n_pos=node, n_neg=into, r_ohm=r_ohm)))


def b_dacs(v_dac_v: np.ndarray, r_in_ohm: np.ndarray) -> list:
    """The right-hand side b of an integrator network: VDAC<i> on dac<i> through RIN<i> into sum<i> (d,)."""
    return b_dac_bank(v_dac_v, r_in_ohm).elements()


def b_dac_bank(v_dac_v: np.ndarray, r_in_ohm: np.ndarray) -> ElementBank:
    """b_dacs as one ElementBank (cell i: VDAC<i>, RIN<i>)."""
    d = len(v_dac_v)
    return ElementBank((np.arange(1, d + 1),), _resistor_dac_cell(
        "VDAC{}", "RIN{}", "dac{}", "sum{}", np.asarray(v_dac_v, dtype=float), np.asarray(r_in_ohm, dtype=float)))
