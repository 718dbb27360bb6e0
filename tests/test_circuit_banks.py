"""Element banks (spu_sim.circuit.ElementBank): exact shorthand for the per-element form.

Each check compares a bank with its expanded twin (the same elements written one by one): the elements themselves,
check_physical's message, the linear engine's MNA matrices and results, and the netlist text must be identical (no
tolerance: the bank is the same circuit, and the readers take its arrays in the same order).
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from spu_sim.circuit import (CCCS, VCVS, Capacitor, Circuit, ClippedVCVS, Comment, ElementBank, NoiseSource, Op, Resistor,
                             SampleColumn, Template, Tran, VoltageSource, check_physical, flatten, node_names,
                             saved_vectors)
from spu_sim.engines.linear.engine import LinearEngine
from spu_sim.engines.linear.model import assemble, build_model
from spu_sim.errors import BadInputError, DesignError
from spu_sim.parts.amplifiers import nullor_integrator, nullor_integrators, nullor_inverter, nullor_summer
from spu_sim.parts.dacs import b_dac_bank, b_dacs
from spu_sim.parts.noise_dacs import (noise_dac_banks_into_sums, noise_dacs, noise_dacs_into_sums, noise_sample_block,
                                      noise_samples)
from spu_sim.pipeline import build_circuit, prepare
from spu_sim.spice import format_spice

D = 6


def _fields(e) -> tuple:
    return type(e), tuple((f.name, getattr(e, f.name)) for f in dataclasses.fields(e) if f.name != "samples_v")


def same_elements(a: list, b: list) -> bool:
    return len(a) == len(b) and all(_fields(x) == _fields(y) for x, y in zip(a, b))


def test_bank_expansion_equals_the_per_element_form():
    rng = np.random.default_rng(0)
    c, ic, v, r = rng.uniform(1e-9, 2e-9, D), rng.standard_normal(D), rng.standard_normal(D), rng.uniform(1e3, 2e3, D)
    old_integrators = [x for i in range(1, D + 1) for x in (
        VoltageSource(f"VSUM{i}", f"sum{i}", "0", 0.0), CCCS(f"FINT{i}", f"st{i}", "0", f"VSUM{i}", 1.0),
        Capacitor(f"CF{i}", f"st{i}", "0", float(c[i - 1]), ic_v=float(ic[i - 1])),
        VCVS(f"EOUT{i}", f"x{i}", "0", f"st{i}", "0", 1.0))]
    bank = nullor_integrators(np.arange(1, D + 1), c, ic)
    assert bank.elements() == old_integrators and len(bank) == 4 * D
    assert [x for i in range(1, D + 1) for x in nullor_integrator(i, c[i - 1], ic[i - 1], comment=False)] == old_integrators
    old_dacs = [x for i in range(1, D + 1) for x in (VoltageSource(f"VDAC{i}", f"dac{i}", "0", float(v[i - 1])),
                                                     Resistor(f"RIN{i}", f"dac{i}", f"sum{i}", float(r[i - 1])))]
    assert b_dac_bank(v, r).elements() == old_dacs and b_dacs(v, r) == old_dacs
    assert nullor_inverter("EINVX3", "x3", "xn3") == [VCVS("EINVX3", "xn3", "0", "x3", "0", -1.0)]
    assert nullor_summer(("RFU2", "EU2"), "ru2", "u2", 5e3) == [Resistor("RFU2", "ru2", "0", 5e3),
                                                               VCVS("EU2", "u2", "0", "ru2", "0", 1.0)]
    # two keys per cell (the split summing nodes' VSU<k>_<g>), patterns with positions
    two = ElementBank((np.array([1, 1, 2]), np.array([0, 1, 0])), (
        Template(VoltageSource, dict(name="VSU{}_{}", n_pos="su{}p{}", n_neg="0", dc_v=0.0)),
        Template(CCCS, dict(name="FU{0}_{1}", n_pos="ru{0}", n_neg="0", sense="VSU{0}_{1}", gain=1.0))))
    assert two.elements()[2:4] == [VoltageSource("VSU1_1", "su1p1", "0", 0.0), CCCS("FU1_1", "ru1", "0", "VSU1_1", 1.0)]


@pytest.mark.parametrize("streamed", [False, True])
def test_noise_bank_keeps_the_sample_columns(streamed):
    """The noise DACs of a bank play the same columns: a SampleBlock's SampleColumns (the engines' streamed reader
    recognises the common block) or views of the one array."""
    u = noise_sample_block(D, 20, 1) if streamed else noise_samples(D, 20, 1)
    banks = noise_dac_banks_into_sums(0.5 * u, 1e-6, np.full(D, 1e4))
    srcs = banks[0].elements()
    assert same_elements(srcs + banks[1].elements(), noise_dacs_into_sums(0.5 * u, 1e-6, np.full(D, 1e4)))
    for i, s in enumerate(srcs):
        assert (s.name, s.node, s.model, s.file_name) == (f"ANOISE{i + 1}", f"nz{i + 1}", f"noisesrc{i + 1}",
                                                          f"noise_{i + 1}.txt")
        if streamed:
            assert isinstance(s.samples_v, SampleColumn) and s.samples_v.block is srcs[0].samples_v.block
            assert s.samples_v.index == i
        else:
            assert s.samples_v.base is srcs[0].samples_v.base and np.array_equal(s.samples_v, 0.5 * u[:, i])
    assert np.array_equal(np.asarray(srcs[2].samples_v), np.asarray(noise_dacs(0.5 * u, 1e-6)[2].samples_v))


def _small_circuit(bank_form: bool, noise: bool = True, r_leak=None) -> Circuit:
    """Integrators with a leak, a coupling resistor chain, DACs and noise DACs: banks or their expanded twin."""
    rng = np.random.default_rng(3)
    idx = np.arange(1, D + 1)
    parts = [nullor_integrators(idx, np.full(D, 1e-9), rng.standard_normal(D) * 0.1),
             ElementBank.of(Resistor, idx, name="RL{}", n_pos="x{}", n_neg="sum{}",
                            r_ohm=np.full(D, 1e4) if r_leak is None else r_leak),
             b_dac_bank(rng.standard_normal(D) * 0.01, np.full(D, 1e5))]
    if noise:
        parts += noise_dac_banks_into_sums(1e-3 * noise_samples(D, 200, 7), 1e-7, np.full(D, 1e5))
    E: list = [Comment("banks")]
    for p in parts:
        E += [p] if bank_form else p.elements()
    E += [Resistor(f"RC{i}", f"x{i}", f"sum{i + 1}", 3e4) for i in range(1, D)]
    return Circuit(title="banks", elements=E, readout_nodes=[f"x{i}" for i in idx],
                   analyses=[Op(), Tran(1e-6, 2e-5, 1e-7)], saves=[f"v(x{i})" for i in idx])


def test_circuit_reads_banks_as_their_elements():
    c, twin = _small_circuit(True), _small_circuit(False)
    assert any(isinstance(e, ElementBank) for e in c.banked)
    assert not any(isinstance(e, ElementBank) for e in c.elements) and same_elements(c.elements, twin.elements)
    assert same_elements(flatten(c.elements), flatten(twin.elements))
    assert same_elements(flatten(c.banked), twin.elements)          # flatten expands banks unless told not to
    for kind in (Capacitor, NoiseSource, Resistor, (VoltageSource, VCVS)):
        assert same_elements(c.of_type(kind), twin.of_type(kind))
    assert node_names(c) == node_names(twin)
    assert saved_vectors(c, ["x2", "i(vsum3)", "v(sum1,dac2)"]) == saved_vectors(twin, ["x2", "i(vsum3)", "v(sum1,dac2)"])
    kept = dataclasses.replace(c, title="other")                     # replace keeps the banks
    assert kept.banked == c.banked and kept.title == "other"
    back = pickle.loads(pickle.dumps(c))
    assert same_elements(back.elements, twin.elements)


def test_bank_circuit_and_its_twin_give_identical_mna_and_results():
    for noise in (False, True):
        c, twin = _small_circuit(True, noise), _small_circuit(False, noise)
        a, b = assemble(c), assemble(twin)
        assert a.nodes == b.nodes and a.branches == b.branches
        for m in ("C", "G", "B"):
            x, y = getattr(a, m), getattr(b, m)
            assert (x != y).nnz == 0 and np.array_equal(x.indices, y.indices) and np.array_equal(x.data, y.data)
        assert list(a.labels) == list(b.labels)
        ma, mb = build_model(c), build_model(twin)
        assert np.array_equal(ma.M, mb.M) and np.array_equal(ma.N, mb.N) and np.array_equal(ma.x0, mb.x0)
        ra, rb = LinearEngine().run(c), LinearEngine().run(twin)
        assert ra.keys() == rb.keys()
        for k in ra:
            assert ra[k].vectors.keys() == rb[k].vectors.keys()
            assert all(np.array_equal(ra[k].vectors[v], rb[k].vectors[v]) for v in ra[k].vectors)


def test_netlist_of_a_bank_is_the_per_element_netlist():
    assert format_spice(_small_circuit(True)) == format_spice(_small_circuit(False))


def test_check_physical_names_the_first_bad_element_of_a_bank():
    r = np.full(D, 1e4)
    r[[3, 4]] = [-5.0, np.nan]
    msgs = []
    for bank_form in (True, False):
        with pytest.raises(DesignError) as err:
            check_physical(_small_circuit(bank_form, r_leak=r))
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1] and "element RL4:" in msgs[0]
    # across the templates of a cell: cell 2's capacitor comes before cell 3's voltage source
    cell = nullor_integrators(np.arange(1, 5), np.array([1e-9, 1e-9, 0.0, 1e-9]), np.zeros(4)).templates
    source = Template(VoltageSource, {**cell[0].fields, "dc_v": np.array([0.0, 0.0, 0.0, np.inf])})
    bank = ElementBank((np.arange(1, 5),), (source,) + cell[1:])
    for form in ([bank], bank.elements()):
        with pytest.raises(DesignError, match="element CF3: C = 0 F is not physical"):
            check_physical(Circuit("t", list(form), []))
    ic = np.zeros(4)
    ic[1] = np.nan
    with pytest.raises(DesignError, match="element CF2: initial condition nan is not finite"):
        check_physical(Circuit("t", [nullor_integrators(np.arange(1, 5), np.full(4, 1e-9), ic)], []))
    u = noise_samples(4, 10, 0)
    u[5, 2] = np.inf
    with pytest.raises(DesignError, match="element ANOISE3: noise samples are not finite"):
        check_physical(Circuit("t", noise_dac_banks_into_sums(u, 1e-6, np.full(4, 1e4)), []))


def _factored_cfg(n: int, m: int, kappa: float) -> dict:
    rng = np.random.default_rng(0)
    J, B = rng.standard_normal((m, n)), rng.standard_normal((m, m))
    return {"problem": {"factors": {"J": J.tolist(), "H": (B @ B.T / m).tolist(), "damping": 0.1},
                        "vector": rng.standard_normal(n).tolist(), "kappa": kappa},
            "circuit": {"topology": "opamp_factored", "integrator": {"r_max_ohm": 1e10}},
            "simulation": {"analyses": ["op", "tran"], "t_stop_tau": 0.2, "backend": "linear", "seed": 1}}


@pytest.mark.parametrize("n", [40, 160])    # 160: the split summing nodes and buffers (FANOUT_MIN_N)
def test_opamp_factored_banks_equal_their_expanded_twin(n):
    """The factorised circuit as built (ideal op-amps: banks) and the same elements written one by one: the same
    netlist text, MNA and linear-engine transient."""
    c = build_circuit(prepare(_factored_cfg(n, 12, 0.05)))
    assert sum(isinstance(e, ElementBank) for e in c.banked) >= 6
    twin = dataclasses.replace(c, elements=list(c.elements))
    assert not any(isinstance(e, ElementBank) for e in twin.banked)
    assert format_spice(c) == format_spice(twin)
    a, b = assemble(c, blocks=True), assemble(twin, blocks=True)
    assert a.nodes == b.nodes and a.branches == b.branches
    assert all((getattr(a, m) != getattr(b, m)).nnz == 0 for m in ("C", "G", "B"))
    for method in ("auto", "lowrank") + (("krylov",) if n < 100 else ()):   # lowrank: the stated factors
        ra, rb = LinearEngine(method=method).run(c), LinearEngine(method=method).run(twin)
        assert ra.keys() == rb.keys() and any(w.kind == "tran" for w in ra.values())
        for k in ra:
            assert all(np.array_equal(ra[k].vectors[v], rb[k].vectors[v]) for v in ra[k].vectors)


def test_linear_engine_refuses_a_nonlinear_bank_naming_its_first_element():
    bank = ElementBank.of(ClippedVCVS, np.arange(1, 4), name="ECLIP{}", n_pos="o{}", n_neg="0", control="x{}",
                          v_max_v=1.0)
    c = Circuit("t", [Capacitor("C1", "x1", "0", 1e-9), bank], [], analyses=[Op()])
    with pytest.raises(BadInputError, match="element ECLIP1 .*nonlinear"):
        LinearEngine().check(c)
    with pytest.raises(BadInputError, match="element ECLIP1 .*nonlinear"):
        assemble(c)


def test_count_of_type_counts_bank_elements_without_building_them():
    c, twin = _small_circuit(True), _small_circuit(False)
    for kind in (Capacitor, Resistor, NoiseSource, (VoltageSource, VCVS), ClippedVCVS):
        assert c.count_of_type(kind) == twin.count_of_type(kind) == len(twin.of_type(kind))
    assert all("_per_template" not in e.__dict__ for e in c.banked if isinstance(e, ElementBank))
