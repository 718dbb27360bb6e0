"""ResistorArray (a crossbar held as arrays) is the same circuit as the Resistor elements it expands to: the same
netlist lines for ngspice, the same MNA and results in the linear engine (including repeated nodes and ground
lines), and non-physical entries are refused by name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spu_sim.circuit import Resistor, ResistorArray, check_physical
from spu_sim.engines.linear import LinearEngine
from spu_sim.engines.linear.model import assemble
from spu_sim.errors import DesignError
from spu_sim.spice import format_spice
from spu_sim.topologies.opamp.build import coupling_arrays

from test_engine_linear import opamp_circuit, spd  # tests/ is on sys.path (rootdir conftest)


def _as_arrays(c):
    """The test circuit with its coupling resistors R<i>_<j> replaced by the topology's two crossbars."""
    d = len(c.readout_nodes)
    r = np.full((d, d), np.inf)
    sign = np.ones((d, d))
    rest = []
    for e in c.elements:
        if isinstance(e, Resistor) and e.name[1:].replace("_", "").isdigit() and "_" in e.name:
            i, j = (int(k) for k in e.name[1:].split("_"))
            r[i - 1, j - 1] = e.r_ohm
            sign[i - 1, j - 1] = -1.0 if e.n_pos.startswith("xn") else 1.0
        else:
            rest.append(e)
    assert np.isfinite(r).sum() == d * d
    return dataclasses.replace(c, elements=rest + coupling_arrays(r, sign)), rest


def test_array_circuit_equals_its_resistors():
    A = spd(6, 10.0, seed=3)
    A[0, 1] = A[1, 0] = -abs(A[0, 1])   # both signs present
    c, _ = opamp_circuit(A, np.arange(6.0) - 2.5, t_stop_tau=2.0, seed=1)
    ca, _ = _as_arrays(c)
    lines = {ln for ln in format_spice(c).splitlines() if ln[:1] == "R"}
    lines_a = {ln for ln in format_spice(ca).splitlines() if ln[:1] == "R"}
    assert lines_a == lines and len(lines) > 36
    ma, m = assemble(ca), assemble(c)
    perm = [m.nodes[k] for k in ma.nodes] + [len(m.nodes) + k for k in range(len(m.branches))]
    assert set(ma.nodes) == set(m.nodes)
    Gp = m.G.toarray()[np.ix_(perm, perm)]
    np.testing.assert_allclose(ma.G.toarray(), Gp, rtol=1e-14, atol=0)
    ya, y = LinearEngine().run(ca), LinearEngine().run(c)
    for k in ("x1", "x6"):
        np.testing.assert_allclose(ya["tran"].vectors[f"v({k})"], y["tran"].vectors[f"v({k})"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ya["op"].vectors[f"v({k})"], y["op"].vectors[f"v({k})"], rtol=1e-12)


def test_repeated_nodes_and_ground_lines():
    """Two rows into one node and a column on ground: the general (non-canonical) stamping path."""
    r = np.array([[1e3, 2e3, np.inf], [4e3, np.inf, 5e3], [7e3, 8e3, 9e3]])
    arr = ResistorArray("RX", ("a", "a", "b"), ("c", "0", "d"), r)
    G = assemble_of([arr]).G.toarray()
    Ge = assemble_of(arr.resistors()).G.toarray()
    np.testing.assert_allclose(G, Ge, rtol=1e-14)
    assert len(arr) == 7 and arr.resistors()[1].name == "RX1_2"


def assemble_of(elements):
    from spu_sim.circuit import Capacitor, Circuit, VoltageSource
    els = list(elements) + [Capacitor(f"C{n}", n, "0", 1e-9) for n in "abcd"] + [VoltageSource("V1", "d", "0", 1.0)]
    m = assemble(Circuit("t", els, ["a"]))
    order = sorted(m.nodes)
    idx = [m.nodes[k] for k in order]
    return dataclasses.replace(m, G=m.G[idx][:, idx])


@pytest.mark.parametrize("bad", [-1.0, 0.0, np.nan])
def test_non_physical_entry_is_named(bad):
    from spu_sim.circuit import Circuit
    r = np.full((3, 3), 1e3)
    r[1, 2] = bad
    c = Circuit("t", [ResistorArray("R", ("s1", "s2", "s3"), ("x1", "x2", "x3"), r, row_keys=[4, 5, 6])], ["x1"])
    with pytest.raises(DesignError, match="element R5_3: R = "):
        check_physical(c)
