"""Behaviour every topology and every engine must show, parametrised over the registries.

A new topology adds its small case to CASES (the first test fails until it does); a new engine is picked up by
the engine parametrisation automatically.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rlc_problem, spd_problem
from spu_sim import engines, ideal, topologies
from spu_sim.run_config import load_run_config
from spu_sim.errors import ConfigError
from spu_sim.pipeline import prepare, simulate

pytestmark = pytest.mark.ngspice

M3 = [[3.0, -1.0, -0.5], [-1.0, 2.5, -0.8], [-0.5, -0.8, 2.0]]   # an M-matrix: realisable by every topology


def _opamp(**sim):
    cfg = spd_problem(3, 5.0, seed=3, kappa=0.02, t_stop_tau=60.0)
    cfg["simulation"].update(sim)
    return cfg


def _rlc(**sim):
    return rlc_problem(M3, rlc={"coupling": "ideal"}, kappa=1.0, sample_dt_tau=0.1, **{"t_stop_tau": 60.0, **sim})


def _factored(**sim):
    """A = J^T H J + damping I from its factors (m = 2 rows, N = 3): the J, H and J^T crossbars and 2 m summers."""
    return {"problem": {"factors": {"J": {"random": {"kind": "normal", "rows": 2, "cols": 3, "scale": 0.8, "seed": 1}},
                                    "H": {"random": {"kind": "spd", "d": 2, "condition": 3, "seed": 2}},
                                    "damping": 1.0},
                        "vector": {"random": {"kind": "normal", "seed": 3}}, "kappa": 0.02},
            "circuit": {"topology": "opamp_factored"},
            "simulation": {"t_stop_tau": 60.0, "seed": 0, "noise_oversample": 20, **sim}}


#: a small config per linear built-in topology (d = 3, tens of tau: seconds on ngspice). opamp_sc (no .op, clocked)
#: and the posterior topologies have their own suites (test_opamp_sc, test_engine_linear_sc, test_posterior).
CASES = {"opamp": _opamp, "rlc": _rlc, "opamp_factored": _factored}
BUILT_IN = ("opamp", "rlc", "opamp_factored")


def test_every_built_in_topology_has_a_case():
    assert set(BUILT_IN) <= set(topologies.TOPOLOGIES.names())
    assert set(BUILT_IN) <= set(CASES)


@pytest.mark.parametrize("topology", BUILT_IN)
@pytest.mark.parametrize("engine", engines.ENGINES.names())
def test_same_config_and_seed_give_the_same_numbers(topology, engine):
    cfg = CASES[topology](t_stop_tau=10.0, backend=engine)
    a, b = simulate(cfg), simulate(cfg)
    assert str(a["engine"]) == engine
    assert np.array_equal(a["x"], b["x"])
    other = CASES[topology](t_stop_tau=10.0, backend=engine, seed=99)
    assert not np.allclose(simulate(other)["x"][5:], a["x"][5:])


@pytest.mark.parametrize("topology", BUILT_IN)
def test_ngspice_engines_agree_on_the_same_circuit(topology):
    runs = {e: simulate(CASES[topology](t_stop_tau=10.0, backend=e)) for e in engines.ENGINES.names() if e.startswith("ngspice")}
    ref = runs.pop("ngspice-subprocess")
    for name, r in runs.items():
        np.testing.assert_allclose(r["x"], ref["x"], rtol=0, atol=1e-9 * np.abs(ref["x"]).max(), err_msg=name)


@pytest.mark.parametrize("topology", BUILT_IN)
def test_stationary_covariance_within_sampling_theory(topology):
    """Sample covariance of a 60-tau run vs the realised process' Lyapunov covariance, within 4 rms of the
    sample-covariance theory (ideal.sample_cov_var) -- plus the noise-step error budget of 2 %."""
    prep = prepare(CASES[topology]())
    r = simulate(prep)
    sde = prep.design.effective_sde()
    d = prep.design.d
    S = ideal.stationary_cov(sde)[:d, :d]
    window = float(r["t"][-1] - r["burn_in_s"]) / float(r["tau_s"])
    rms = np.sqrt(ideal.sample_cov_var(sde, window)[:d, :d].sum())
    err = np.linalg.norm(r["x_cov"] - S)
    assert err < 4 * rms + 0.02 * np.linalg.norm(S), (err, rms)


@pytest.mark.parametrize("topology", [t for t in BUILT_IN if topologies.TOPOLOGIES.get(t).has_mean])
def test_operating_point_is_the_realised_solution(topology):
    prep = prepare(CASES[topology](analyses=["op"]))
    r = simulate(prep)
    want = np.linalg.solve(prep.design.A_realized, prep.design.b_realized)
    np.testing.assert_allclose(r["x_op"], want, rtol=1e-9)


@pytest.mark.parametrize("topology", BUILT_IN)
def test_unknown_circuit_key_lists_the_topology_keys(topology):
    cfg = CASES[topology]()
    cfg["circuit"] = {**cfg.get("circuit", {}), "topology": topology, "bogus_knob": 1}
    with pytest.raises(ConfigError, match=r"circuit\.bogus_knob: unknown key; valid keys here: topology"):
        load_run_config(cfg)


@pytest.mark.parametrize("topology", BUILT_IN)
def test_compare_publishes_metrics_naming_topology_and_engine(topology, tmp_path):
    from spu_sim.compare import compare
    m = compare(CASES[topology](t_stop_tau=20.0), tmp_path)
    assert m["topology"] == topology and m["engine"] == "ngspice-shared"
    assert (tmp_path / "metrics.json").is_file() and list(tmp_path.glob("*.png"))
