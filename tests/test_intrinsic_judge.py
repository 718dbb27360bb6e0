"""The intrinsic diffusion in the realised judge of every linear topology (issue 20 parts 1 and 4): the netlist-read
form (spu_sim.topologies.intrinsic) equals topology opamp's closed form, and the transient's covariance with
intrinsic noise equals the Lyapunov solution of the realised drift with the full diffusion (injected + intrinsic)
in opamp_factored and posterior_gaussian (linear engine, fixed seeds, z-scores from sampling theory)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy import stats

from conftest import spd_problem
from spu_sim import ideal
from spu_sim.cli import main
from spu_sim.compare import compare as run_compare
from spu_sim.pipeline import prepare, simulate
from spu_sim.topologies.intrinsic import circuit_intrinsic_diffusion

FACTORED = {"problem": {"factors": {"J": {"random": {"kind": "normal", "rows": 3, "cols": 6, "scale": 0.4, "seed": 5}},
                                    "H": {"random": {"kind": "spd", "d": 3, "condition": 4.0, "scale": 0.5, "seed": 6}},
                                    "damping": 1.0},
                        "vector": {"random": {"kind": "normal", "seed": 7}}, "kappa": 0.0},
            "circuit": {"topology": "opamp_factored", "thermal_noise": True, "opamp": {"in_a_per_rthz": 1e-12}},
            "simulation": {"t_stop_tau": 400.0, "burn_in_tau": 10.0, "seed": 0, "noise_dt_tau": 0.02,
                           "backend": "linear", "analyses": ["tran"]}}
GAUSS = {"problem": {"kind": "gaussian_posterior", "X": {"random": {"n": 8, "d": 3, "scale": 0.3, "seed": 1}},
                     "y": {"random": {"theta_scale": 1.0, "seed": 2}}, "prior_cov": 1.0, "noise_var": 1.0},
         "circuit": {"topology": "posterior_gaussian", "opamp": {"in_a_per_rthz": 3e-7}},
         "simulation": {"t_stop_tau": 300.0, "burn_in_tau": 5.0, "seed": 3, "noise_dt_tau": 0.02,
                        "backend": "linear", "analyses": ["tran"]}}


def _z_max(r, sde) -> float:
    T = (r["t"][-1] - float(r["burn_in_s"])) / float(r["tau_s"])
    z = (r["x_cov"] - ideal.stationary_cov(sde)) / np.sqrt(ideal.sample_cov_var(sde, T))
    return float(np.abs(z).max())


def _bound(d: int) -> float:
    return float(stats.norm.ppf(1 - 1e-4 / 2 / (d * (d + 1) / 2)))     # two-sided 1e-4, Bonferroni over entries


@pytest.mark.parametrize("circuit", [{"thermal_noise": True},
                                     {"thermal_noise": True, "opamp": {"in_a_per_rthz": 1e-12},
                                      "integrator": {"prune_below_relative": 0.3}}])
def test_netlist_read_diffusion_equals_the_opamp_closed_form(circuit):
    prep = prepare(spd_problem(4, 5.0, seed=2, kappa=0.01, t_stop_tau=20.0, circuit=circuit))
    d = prep.design
    D = circuit_intrinsic_diffusion(prep.topology, d, d.intrinsic)
    np.testing.assert_allclose(D, d.intrinsic_diffusion(), rtol=1e-10, atol=1e-12 * np.abs(D).max())
    assert np.abs(D).max() > 0


def test_factored_thermal_noise_alone_matches_the_lyapunov_solution_of_the_realised_sde():
    """kappa = 0: the only noise is the resistors' thermal noise and i_n (J, H, J^T arrays, summers, leak)."""
    prep = prepare(FACTORED)
    sde = prep.design.realized_sde()
    assert np.allclose(sde.D, prep.design.intrinsic_diffusion) and prep.design.kappa_intrinsic > 0
    assert _z_max(simulate(FACTORED), sde) < _bound(6)


def test_posterior_gaussian_judge_has_the_full_diffusion_and_needs_it():
    """i_n of 0.3 uA/rtHz at every op-amp input: the intrinsic diffusion is of the order of the injected one, the
    run matches the full-diffusion judge and fails the injected-only one at the same bound (the test discriminates)."""
    prep = prepare(GAUSS)
    d = prep.design
    full = d.realized_sde()
    injected = full._replace(D=full.D - d.intrinsic_diffusion)
    assert np.trace(d.intrinsic_diffusion) > 0.2 * np.trace(injected.D)
    r = simulate(GAUSS)
    assert _z_max(r, full) < _bound(3)
    assert _z_max(r, injected) > _bound(3)      # the same run fails the injected-only judge


SC = {"problem": {"matrix": {"random": {"kind": "spd", "d": 3, "condition": 3.0, "seed": 1}},
                  "vector": {"random": {"kind": "normal", "seed": 2}}, "kappa": 0.01},
      "circuit": {"topology": "opamp_sc", "opamp": {"in_a_per_rthz": 2.5e-10}},
      "simulation": {"t_stop_tau": 300.0, "burn_in_tau": 10.0, "seed": 0, "backend": "linear", "analyses": ["tran"]}}


def test_opamp_sc_op_amp_current_noise_is_in_the_clocked_judge():
    """i_n integrates on C_f over each clock period (q_in_period): the run matches the clocked judge with it and
    fails the one without it at the same bound."""
    prep = prepare(SC)
    d = prep.design
    assert d.kappa_intrinsic > 0 and np.all(d.q_in_period > 0.5 * d.q_injected)
    r = simulate(SC)
    assert _z_max(r, d.effective_sde()) < _bound(3)
    without = prepare({**SC, "circuit": {"topology": "opamp_sc"}}).design.effective_sde()
    assert _z_max(r, without) > _bound(3)


def test_opamp_sc_covariance_is_not_judged_against_a_judge_without_its_voltage_noise(tmp_path):
    """e_n is sampled onto the branch capacitors through the switches' bandwidth, which the clocked judge does not
    model: compare leaves the covariance-vs-realised errors out and says why, and keeps those the judge holds."""
    cfg = {**SC, "circuit": {"topology": "opamp_sc", "opamp": {"en_v_per_rthz": 1e-7}},
           "simulation": {**SC["simulation"], "t_stop_tau": 30.0}}
    m = run_compare(cfg, tmp_path / "o", budget=False)
    assert "cov_rel_err_vs_realized" not in m and not any(k.startswith("sc_sampling_cov") for k in m)
    assert "e_n" in m["realized_note"] and "not judged" in m["realized_note"]
    assert np.isfinite(m["mean_rel_err_vs_realized"]) and np.isfinite(m["cov_rel_err"])
    m_in = run_compare(SC | {"simulation": {**SC["simulation"], "t_stop_tau": 30.0}}, tmp_path / "i", budget=False)
    assert "cov_rel_err_vs_realized" in m_in and "realized_note" not in m_in     # i_n is in the judge


def test_opamp_sc_refuses_thermal_noise_with_one_line(tmp_path, capsys):
    cfg = {**SC, "circuit": {"topology": "opamp_sc", "thermal_noise": True}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["simulate", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "thermal_noise" in err[0] and "kT/C" in err[0], err


# ---------------------------------------------------------------- the macromodel in the realised judge (issue 20)

MACRO = {"model": "macro", "gain": 300.0, "offset_sigma_v": 2e-3}     # GBW: the default 10 MHz


def _macro(base: dict) -> dict:
    cfg = {**base, "circuit": {**base["circuit"], "opamp": {**base["circuit"]["opamp"], **MACRO}},
           "simulation": {**base["simulation"], "analyses": ["op", "tran"]}}
    return cfg


@pytest.mark.parametrize("base", [FACTORED, GAUSS], ids=["opamp_factored", "posterior_gaussian"])
def test_macro_opamp_is_in_the_realised_judge(base):
    """Gain 300, GBW 10 MHz and random offsets with intrinsic noise: the judge is the circuit's own process read from
    the netlist (op-amp poles as extra states after the d readouts, topologies.intrinsic.circuit_sde). Its mean
    equals the engine's .op to rounding (the ideal-op-amp model misses it by ~2 %), and the transient's covariance
    is inside the Bonferroni 1e-4 bound of it (posterior_gaussian: outside it for the ideal-op-amp judge)."""
    cfg = _macro(base)
    prep = prepare(cfg)
    design = prep.design
    d = design.d
    sde = design.effective_sde()
    assert sde.K.shape[0] > d                                   # the op-amps' poles are states of the judge
    r = simulate(cfg)
    mean = ideal.stationary_mean(sde)[:d]
    assert np.abs(r["x_op"] - mean).max() < 1e-9 * np.abs(mean).max()
    ideal_op = ideal.stationary_mean(design.realized_sde())
    assert np.abs(r["x_op"] - ideal_op).max() > 1e-3 * np.abs(mean).max()
    T = (r["t"][-1] - float(r["burn_in_s"])) / float(r["tau_s"])
    z = (r["x_cov"] - ideal.stationary_cov(sde)[:d, :d]) / np.sqrt(ideal.sample_cov_var(sde, T)[:d, :d])
    assert np.abs(z).max() < _bound(d), z
    if base is GAUSS:
        assert _z_max(r, design.realized_sde()) > _bound(d)


@pytest.mark.parametrize("command", ["compare", "posterior"])
def test_posterior_logistic_with_intrinsic_noise_exits_2_in_compare_and_posterior(tmp_path, capsys, command):
    """Its judge (the Laplace linearisation of the sigmoid circuit) has no model of intrinsic noise: one line naming
    the keys, before any engine runs, and no output folder."""
    cfg = {"problem": {"kind": "logistic_posterior", "X": {"dataset": "breast_cancer", "features": ["mean radius"],
                                                           "n": 20, "seed": 0}, "prior_cov": 1.0},
           "circuit": {"topology": "posterior_logistic", "thermal_noise": True, "opamp": {"in_a_per_rthz": 1e-12}},
           "simulation": {"t_stop_tau": 20.0, "seed": 3}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main([command, str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "circuit.thermal_noise" in err[0] and "circuit.opamp.in_a_per_rthz" in err[0] \
        and "posterior_logistic" in err[0], err
    assert not (tmp_path / "o").exists()
