"""Op-amp macromodel: finite gain and offset (effective drift), gain-bandwidth (transient), swing, energy."""

from __future__ import annotations

import numpy as np
import pytest

from spu_sim.errors import BadInputError
from spu_sim.ideal import LinearSDE, transient_mean
from spu_sim.topologies.opamp.metrics import circuit_metrics
from spu_sim.topologies.opamp.nonideal import macro_state_space
from spu_sim.pipeline import build_circuit, prepare, simulate
from spu_sim.spice import format_spice

A2 = [[2.0, -0.5], [-0.5, 1.0]]
B2 = [1.0, 0.5]


def _cfg(opamp: dict | None = None, t_stop: float = 8.0, **sim) -> dict:
    cfg = {"problem": {"matrix": A2, "vector": B2, "kappa": 0.0},
           "simulation": {"t_stop_tau": t_stop, "analyses": ["op", "tran"], **sim},
           "readout": {"sample_dt_tau": 0.01}}
    if opamp is not None:
        cfg["circuit"] = {"opamp": {"model": "macro", **opamp}}
    return cfg


@pytest.mark.ngspice
def test_finite_gain_and_offset_give_the_effective_drift():
    """.op of the macromodel circuit = A_effective^-1 b_effective (derivation in spu_sim.topologies.opamp.nonideal)."""
    r = simulate(_cfg({"gain": 100.0, "gbw_hz": None, "offset_v": 2e-3, "offset_sigma_v": 1e-3}, t_stop=1.0))
    x_eff = np.linalg.solve(r["A_effective"], r["b_effective"])
    assert np.allclose(r["x_op"], x_eff, rtol=1e-7, atol=1e-10)
    # and the shift from the ideal solution is large compared with that agreement (gain 100: ~1 %)
    assert np.max(np.abs(x_eff - r["x_star"])) > 1e-3


@pytest.mark.ngspice
def test_gain_bandwidth_changes_the_transient_as_predicted():
    """d = 2, GBW = 1 MHz, tau_s = 2 us: eps = 1 / (2 pi GBW tau_s) = 0.08.

    Hand calculation (first order in eps; integrator op-amp A(s) = 2 pi GBW / s, summing node at
    -s V / (2 pi GBW); inverters (noise gain 2) delay the inverted signals by 2 eps):
        A' = P A, b' = P b, P = I - eps (diag(alpha Gsum) - A - 2 A_neg)
    so x* is unchanged and each mode is slowed (here: the transient lags the ideal one, x - x_ideal < 0).
    The exact linear model of the netlist (macro_state_space) must match ngspice to ngspice's own error
    (the ideal circuit's max deviation from the exact OU mean, measured in the same test), and the hand
    calculation must give the sign and, for t in [1, 3] tau, the size within 25 % (its O(eps^2) and
    initial-slip terms are about 10 %).
    """
    r_id = simulate(_cfg())
    r_m = simulate(_cfg({"gain": 1e5, "gbw_hz": 1e6}))
    d = prepare(_cfg({"gain": 1e5, "gbw_hz": 1e6})).design
    t = r_m["t"] / d.tau_s
    x_ideal = transient_mean(LinearSDE(np.array(A2), np.array(B2), np.zeros((2, 2))), np.zeros(2), t)
    num_err = np.abs(r_id["x"] - x_ideal).max()
    sde, out = macro_state_space(d)
    x_exact = transient_mean(sde, np.concatenate([d.x0_v, d.x0_v, -d.x0_v]), t) @ out.T
    eps = 1.0 / (2 * np.pi * 1e6 * d.tau_s)
    gsum = np.where(np.isfinite(d.r_ohm), 1 / d.r_ohm, 0).sum(1) + 1 / d.r_in_each_ohm
    Ae, be = d.A_effective, d.b_effective
    P = np.eye(2) - eps * (np.diag(d.alpha * gsum) - Ae - 2 * np.where(Ae < 0, Ae, 0))
    x_hand = transient_mean(LinearSDE(P @ Ae, P @ be, np.zeros((2, 2))), np.zeros(2), t)
    dev_ng, dev_exact, dev_hand = r_m["x"] - r_id["x"], x_exact - x_ideal, x_hand - x_ideal
    assert np.abs(dev_ng).max() > 30 * num_err
    assert np.abs(dev_ng - dev_exact).max() < 2 * num_err + 0.01 * np.abs(dev_exact).max()
    late = t >= 1.0
    assert np.all(dev_ng[late] < 0) and np.all(dev_hand[late] < 0)
    win = (t >= 1.0) & (t <= 3.0)
    rel = np.linalg.norm(dev_ng[win] - dev_hand[win], axis=1) / np.linalg.norm(dev_ng[win], axis=1)
    assert rel.max() < 0.25


@pytest.mark.ngspice
def test_output_swing_limit_clips():
    r = simulate(_cfg({"gain": 1e5, "gbw_hz": None, "v_out_max_v": 0.3}, t_stop=5.0))
    d = prepare(_cfg({"gain": 1e5, "gbw_hz": None, "v_out_max_v": 0.3})).design
    v = r["x"] / d.s_x
    assert np.max(np.abs(v)) <= 0.3 + 1e-9
    assert np.max(np.abs(v)) > 0.299          # the unclipped solution needs more than 0.3 V


@pytest.mark.ngspice
def test_swing_limit_acts_on_the_output_node_not_before_r_out():
    """With r_out_ohm = 50 kohm the output stage's source sits I_load r_out above the output (here about 1 V /
    1 kohm x 50 kohm = 50 V): a limit on that source (the model before) clipped at 1.5 V with every output inside
    1.5 V. The limit is the clamp BCL<t> on the node after the output impedance, so inside the swing the .op equals
    the unlimited one to ngspice's tolerance; VO<t> comes after the clamp (it senses the delivered current)."""
    opamp = {"gain": 1e5, "gbw_hz": None, "r_out_ohm": 5e4, "v_out_max_v": 1.5}
    text = format_spice(build_circuit(prepare(_cfg(opamp, t_stop=1.0))))
    assert "\nEO oo 0 pp 0 1\n" in text and "TABLE" not in text
    assert "\nROUTI1 ooI1 ocI1 " in text and "\nBCLI1 ocI1 0 I = " in text and "\nVOI1 ocI1 x1 " in text
    r = simulate(_cfg(opamp, t_stop=1.0))
    r_free = simulate(_cfg({**opamp, "v_out_max_v": None}, t_stop=1.0))
    v = r["x_op"] / prepare(_cfg(opamp)).design.s_x
    assert np.max(np.abs(v)) < 1.5 and np.max(np.abs(v)) > 0.5
    assert np.allclose(r["x_op"], r_free["x_op"], rtol=1e-6, atol=1e-9)


def test_swing_limit_on_the_linear_engine_is_refused_naming_the_key():
    """The clamp is nonlinear: the linear engine refuses it (as the clipped stage), naming circuit.opamp.v_out_max_v."""
    cfg = _cfg({"gain": 1e5, "gbw_hz": None, "r_out_ohm": 5e4, "v_out_max_v": 1.5}, t_stop=1.0, backend="linear")
    with pytest.raises(BadInputError, match=r"BCLI1 .*remove circuit\.opamp\.v_out_max_v"):
        simulate(cfg)


@pytest.mark.ngspice
def test_supply_energy_model():
    """Quiescent current adds exactly 2 V_s I_q per op-amp to the power; the load part is positive."""
    opamp = {"gain": 1e5, "gbw_hz": 1e7, "supply_v": 5.0}
    r0 = simulate(_cfg({**opamp, "i_quiescent_a": 0.0}, t_stop=4.0))
    r1 = simulate(_cfg({**opamp, "i_quiescent_a": 1e-3}, t_stop=4.0))
    T = r1["t_supply_s"][-1] - r1["t_supply_s"][0]
    n_opamps = 2 + 2   # two integrators, two inverters (A has negative entries in both columns)
    extra = float(r1["energy_supply_j"] - r0["energy_supply_j"])
    assert extra == pytest.approx(2 * 5.0 * 1e-3 * n_opamps * T, rel=1e-6)
    p0 = prepare(_cfg({**opamp, "i_quiescent_a": 0.0}, t_stop=4.0))
    m = circuit_metrics(p0.design, p0.problem, r0.arrays)
    assert 0 < m["energy_resistive_j"] < m["energy_supply_j"]


@pytest.mark.ngspice
def test_settling_time_measured_matches_prediction():
    cfg = _cfg(t_stop=8.0)
    r = simulate(cfg)
    p1 = prepare(cfg)
    m = circuit_metrics(p1.design, p1.problem, r.arrays)
    # noise-free: measured on the 0.01 tau readout grid vs the exact mean trajectory (4000-point grid)
    assert m["settle_measured_tau"] == pytest.approx(m["settle_predicted_exact_tau"], abs=0.03)
    # the single-mode estimate ln(1/tol)/lambda_min is the right scale (not a bound: the max-norm criterion
    # sees the eigenvector components)
    assert 0.5 < m["settle_predicted_exact_tau"] / m["settle_predicted_slowest_tau"] < 2.0
