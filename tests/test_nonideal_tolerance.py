"""Tolerance / mismatch, quantisation and temperature: realised matrices, reproducibility, exact defaults."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from conftest import spd_problem
from spu_sim.pipeline import netlist_text
from spu_sim.parts.element_values import element_errors, quantize_conductance
from spu_sim.pipeline import prepare, simulate


def _cfg(d=3, kappa=0.01, **circuit) -> dict:
    cfg = spd_problem(d, 4, seed=3, kappa=kappa, circuit=circuit, t_stop_tau=15.0)
    cfg["simulation"]["seed"] = 7
    return cfg


def test_zero_mismatch_is_the_nominal_design_and_netlist():
    nominal = prepare(_cfg())
    zero = prepare(_cfg(tolerance={"global_rel": 0.0, "local_rel": 0.0, "seed": 99}))
    assert type(zero.design) is type(nominal.design)
    assert netlist_text(zero) == netlist_text(nominal)


@pytest.mark.ngspice
def test_zero_mismatch_reproduces_the_ideal_run_exactly():
    a = simulate(_cfg())
    b = simulate(_cfg(tolerance={"global_rel": 0.0, "local_rel": 0.0, "seed": 5}))
    for key in ("x", "x_op", "x_mean", "x_cov", "A_realized", "b_realized"):
        assert np.array_equal(a[key], b[key]), key


def test_mismatch_draw_is_reproducible_from_its_seed():
    tol = {"global_rel": 0.01, "local_rel": 0.02}
    d1 = prepare(_cfg(tolerance={**tol, "seed": 11})).design
    d2 = prepare(_cfg(tolerance={**tol, "seed": 11})).design
    d3 = prepare(_cfg(tolerance={**tol, "seed": 12})).design
    assert np.array_equal(d1.r_ohm, d2.r_ohm) and np.array_equal(d1.c_f_farad, d2.c_f_farad)
    assert not np.array_equal(d1.r_ohm, d3.r_ohm)
    # the realised matrix reflects the draw: relative deviations of order local_rel, not zero
    dev = np.abs(d1.A_realized / d1.problem.A - 1)
    assert 1e-4 < dev.max() < 0.2


@pytest.mark.ngspice
def test_mismatch_run_realises_A_realized_and_is_reproducible():
    """.op of a mismatched circuit = A_realized^-1 b_realized (the circuit realises the reported matrix),
    and two runs of the same draw give identical transients."""
    cfg = _cfg(tolerance={"global_rel": 0.02, "local_rel": 0.03, "seed": 21})
    cfg["simulation"]["t_stop_tau"] = 5.0
    r1, r2 = simulate(cfg), simulate(copy.deepcopy(cfg))
    assert np.array_equal(r1["x"], r2["x"])
    x_real = np.linalg.solve(r1["A_realized"], r1["b_realized"])
    assert np.allclose(r1["x_op"], x_real, rtol=1e-9, atol=1e-12)
    assert np.max(np.abs(r1["x_op"] - r1["x_star"])) > 1e-3   # and it is not the target solution


def test_element_errors_statistics_and_independence():
    n = 2000
    f = element_errors(5, "R", (n,), 0.0, 0.01)
    # sample std of n Gaussians: relative standard error 1/sqrt(2 n) = 1.6 %; allow 4 of them
    assert abs(np.std(f - 1) / 0.01 - 1) < 4 / np.sqrt(2 * n)
    # one group's draw does not depend on other groups or on the global part being on
    assert np.array_equal(element_errors(5, "R", (n,), 0.0, 0.01), f)
    g = element_errors(5, "R", (n,), 0.02, 0.01)
    assert np.allclose(g / f, g[0] / f[0]) and g[0] / f[0] != 1.0


def test_global_tolerance_alone_keeps_the_solution():
    """A common factor on every resistor (and none on C) scales A and b alike: x* is unchanged."""
    d = prepare(_cfg(tolerance={"global_rel": 0.05, "local_rel": 0.0, "seed": 3})).design
    nom = prepare(_cfg()).design
    # resistors scale by (1 + g_R), C_f by (1 + g_C): A and b both scale by 1 / ((1 + g_R)(1 + g_C))
    ratio = d.A_realized / nom.A_realized
    assert np.allclose(ratio, ratio[0, 0], rtol=1e-12)
    assert np.allclose(d.b_realized / nom.b_realized, ratio[0, 0], rtol=1e-12)
    assert np.allclose(np.linalg.solve(d.A_realized, d.b_realized), nom.problem.x_star, rtol=1e-9)


def test_quantisation_grids():
    cfg = _cfg(quantization={"r_bits": 6, "dac_bits": 5})
    p = prepare(cfg)
    ic = p.cfg.circuit.integrator
    g = 1.0 / p.design.r_ohm[np.isfinite(p.design.r_ohm)]
    lsb = (1.0 / ic.r_min_ohm) / (2 ** 6 - 1)
    assert np.allclose(g / lsb, np.round(g / lsb), atol=1e-9)
    v_lsb = 2 * ic.v_dac_max_v / 2 ** 5
    assert np.allclose(p.design.v_dac_v / v_lsb, np.round(p.design.v_dac_v / v_lsb), atol=1e-9)
    # the realised matrix is the quantised one, the error is at most half a step per entry
    err = np.abs(p.design.A_realized - p.problem.A)
    assert err.max() <= 0.5 * lsb * p.design.alpha * (1 + 1e-9)
    assert err.max() > 0
    r = quantize_conductance(np.array([1e3, 1e9, np.inf]), 1e3, 4)
    assert r[0] == 1e3 and np.isinf(r[1]) and np.isinf(r[2])


def test_temperature_coefficient_scales_resistors():
    p = prepare(_cfg(temperature={"temp_c": 77.0, "r_tc1_per_k": 1e-3}))
    nom = prepare(_cfg())
    assert np.allclose(p.design.r_ohm, nom.design.r_ohm * 1.05, rtol=1e-12, equal_nan=True)
    assert np.allclose(p.design.A_realized, nom.design.A_realized / 1.05, rtol=1e-12)


@pytest.mark.ngspice
def test_quantised_run_realises_A_realized():
    r = simulate(_cfg(kappa=0.0, quantization={"r_bits": 5, "dac_bits": 6}))
    assert np.allclose(r["x_op"], np.linalg.solve(r["A_realized"], r["b_realized"]), rtol=1e-9, atol=1e-12)
