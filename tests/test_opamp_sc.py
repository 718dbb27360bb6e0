"""The switched-capacitor op-amp integrator SPU (topology opamp_sc) in real ngspice against the exact
discrete-time theory (spu_sim.topologies.opamp_sc.discrete).

Tolerances from theory: the time average of n clock-grid samples has covariance discrete.sample_mean_cov
(the exact sum of the AR autocovariances); its Mahalanobis distance is below the chi-square(d) quantile at
1 - 1e-4. Each sample-covariance entry has variance ideal.sample_cov_var of the exact continuous-time
embedding (whose clock-grid samples are the discrete process); |z| below the normal quantile at
1e-4 / (number of entries). Fixed seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from spu_sim import ideal
from spu_sim.cli import main
from spu_sim.compare import compare
from spu_sim.errors import ConfigError, DesignError
from spu_sim.pipeline import build_circuit, prepare, simulate
from spu_sim.circuit import NoiseSource, PulseVoltageSource, Switch
from spu_sim.spice import format_spice
from spu_sim.topologies.opamp_sc import discrete

P = 1e-4
ROOT = Path(__file__).resolve().parents[1]


def sc_problem(d: int, sc: dict, kappa: float = 0.05, circuit: dict | None = None, **sim) -> dict:
    cfg = {"problem": {"matrix": {"random": {"kind": "spd", "d": d, "condition": 3, "seed": 1}},
                       "vector": {"random": {"kind": "normal", "seed": 2}}, "kappa": kappa},
           "circuit": {"topology": "opamp_sc", "sc": sc, **(circuit or {})},
           "simulation": {"t_stop_tau": 200.0, "burn_in_tau": 10.0, "seed": 3, **sim}}
    if "tran" not in cfg["simulation"].get("analyses", ["tran"]):
        del cfg["simulation"]["burn_in_tau"]      # a transient knob: refused without a transient
    return cfg


def check_against_discrete(design, arrays) -> tuple[float, np.ndarray]:
    """(chi-square of the mean, z-scores of the covariance entries) against the design's clocked process."""
    p = design.process()
    n = int((arrays["t"] >= arrays["burn_in_s"]).sum())
    dm = arrays["x_mean"] - discrete.stationary_mean(p)
    chi2 = float(dm @ np.linalg.solve(discrete.sample_mean_cov(p, n), dm))
    var = ideal.sample_cov_var(design.effective_sde(), n * design.h)
    z = (arrays["x_cov"] - discrete.stationary_cov(p)) / np.sqrt(var)
    return chi2, z


def limits(d: int) -> tuple[float, float]:
    n_cov = d * (d + 1) // 2
    return stats.chi2.ppf(1 - P, d), stats.norm.ppf(1 - P / (2 * n_cov))


def test_discrete_process_converges_to_continuous_ou_at_first_order():
    """As f_clk tau grows, the stationary covariance of the clocked map approaches kappa A^-1 with the error
    h S1 predicted by the first-order expansion (discrete.euler_first_order_cov), and the mean is exact."""
    cfg = sc_problem(4, {"f_clk_tau": 10, "bits": 12, "ktc_noise": False})
    errs, preds = [], []
    for f in (10.0, 20.0, 40.0, 80.0, 160.0):
        cfg["circuit"]["sc"]["f_clk_tau"] = f
        ds = prepare(cfg).design
        A = ds.A_realized
        p = ds.process()
        S0 = ideal.stationary_cov(ideal.ou_sde(A, ds.b_realized, ds.kappa_realized))
        S = discrete.stationary_cov(p)
        S1 = discrete.euler_first_order_cov(A, np.where(A > 0, A, 0.0), ds.kappa_realized)
        errs.append(np.linalg.norm(S - S0) / np.linalg.norm(S0))
        preds.append(np.linalg.norm(S1) / (f * np.linalg.norm(S0)))
        # the realised mean of the clocked process is exactly A_realized^-1 b_realized for any clock
        m = np.linalg.solve(A, ds.b_realized)
        assert np.linalg.norm(discrete.stationary_mean(p) - m) < 1e-12 * np.linalg.norm(m)
        # the continuous embedding reproduces the map: expm(-K h) = Phi
        import scipy.linalg as sla
        assert np.allclose(sla.expm(-ds.effective_sde().K * ds.h), p.Phi, atol=1e-12)
    errs, preds = np.array(errs), np.array(preds)
    assert np.all(np.diff(errs) < 0)
    ratio = errs / preds
    assert abs(ratio[-1] - 1) < 0.05, ratio              # first order: error -> h ||S1|| / ||S0||
    assert abs(ratio[-1] - 1) < abs(ratio[0] - 1), ratio  # and the agreement improves as h -> 0
    slope = np.polyfit(np.log([10, 20, 40, 80, 160]), np.log(errs), 1)[0]
    assert -1.15 < slope < -0.85, slope


def test_netlist_structure_and_bad_input(tmp_path):
    cfg = sc_problem(2, {"f_clk_tau": 5, "bits": 4, "c_overlap_farad": 1e-16}, t_stop_tau=2.0, burn_in_tau=1.0)
    prep = prepare(cfg)
    c = build_circuit(prep)
    n_branch = int(np.count_nonzero(prep.design.code)) + 2 * prep.design.d   # couplings + b + noise
    assert len(c.of_type(Switch)) == 4 * n_branch
    assert len(c.of_type(PulseVoltageSource)) == 2
    held = [e for e in c.of_type(NoiseSource) if e.held]
    assert len(held) == n_branch + prep.design.d                              # kT/C per branch + noise DACs
    text = format_spice(c)
    assert "PULSE(" in text and "amplstep=true" in text
    assert ".op" not in [line.strip() for line in text.splitlines()]     # no DC path: no operating point
    assert len([e for e in c.elements if type(e).__name__ == "Capacitor" and e.name.startswith("CFT")]) == 5 * n_branch
    # bad input: a clock too slow for the matrix, a knob of another topology -> exit 2, one line
    with pytest.raises(DesignError, match="f_clk_tau"):
        prepare(sc_problem(2, {"f_clk_tau": 0.3}))
    with pytest.raises(ConfigError, match="r_bits"):
        prepare(sc_problem(2, {}, circuit={"quantization": {"r_bits": 8}}))
    with pytest.raises(DesignError, match="add tran"):
        prepare(sc_problem(2, {}, analyses=["op"]))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(sc_problem(2, {"f_clk_tau": 0.3})))
    assert main(["netlist", str(bad), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.ngspice
def test_d2_coarse_clock_follows_the_discrete_theory_not_the_continuous_ou():
    """f_clk tau = 4: the clocked covariance differs from the continuous OU by many standard errors, and the
    circuit matches the discrete-time theory (mean and covariance)."""
    cfg = sc_problem(2, {"f_clk_tau": 4, "bits": 6, "ktc_noise": False}, t_stop_tau=400.0)
    prep = prepare(cfg)
    r = simulate(prep)
    chi2, z = check_against_discrete(prep.design, r.arrays)
    lim_chi2, lim_z = limits(2)
    assert chi2 < lim_chi2, chi2
    assert np.max(np.abs(z)) < lim_z, z
    ds = prep.design
    m_real = np.linalg.solve(ds.A_realized, ds.b_realized)
    assert np.allclose(discrete.stationary_mean(ds.process()), m_real, rtol=1e-12)
    # the test can tell the two apart: the continuous OU of the realised matrix is many rms sampling errors away
    S_c = ideal.stationary_cov(ideal.ou_sde(ds.A_realized, ds.b_realized, ds.kappa_realized))
    S_d = discrete.stationary_cov(ds.process())
    n = int((r["t"] >= r["burn_in_s"]).sum())
    rms = np.sqrt(ideal.sample_cov_var(ds.effective_sde(), n * ds.h).sum())
    assert np.linalg.norm(S_d - S_c) > 3 * rms, (np.linalg.norm(S_d - S_c), rms)


@pytest.mark.ngspice
def test_ktc_noise_alone_matches_its_prediction():
    """No injected noise: the covariance is the kT/C floor of the clocked process (tiny units make it big)."""
    cfg = sc_problem(2, {"f_clk_tau": 5, "bits": 4, "injected_noise": False, "ktc_noise": True,
                         "c_unit_farad": 1e-17, "c_bottom_plate_rel": 0.0}, t_stop_tau=400.0)
    prep = prepare(cfg)
    assert not prep.design.injected and prep.design.kappa_realized == 0
    r = simulate(prep)
    chi2, z = check_against_discrete(prep.design, r.arrays)
    lim_chi2, lim_z = limits(2)
    assert chi2 < lim_chi2 and np.max(np.abs(z)) < lim_z, (chi2, z)
    S = discrete.stationary_cov(prep.design.process())
    assert np.trace(S) > 1e-6   # the floor is far above ngspice's own accuracy here, so the match is not trivial
    # kT/C off as well: no noise at all, the samples settle to the mean
    cfg["circuit"]["sc"]["ktc_noise"] = False
    cfg["simulation"]["t_stop_tau"] = 40.0
    r0 = simulate(cfg)
    assert np.max(np.abs(np.diag(r0["x_cov"]))) < 1e-3 * np.trace(S)


@pytest.mark.ngspice
def test_shipped_d4_config_compare(tmp_path):
    """configs/opamp_sc_d4.yaml (d = 4, 5-bit banks with mismatch, injected + kT/C noise): compare reports the
    error split, the circuit matches the clocked process, and the clock zoom plot is written."""
    cfg, _ = yaml.safe_load((ROOT / "configs" / "opamp_sc_d4.yaml").read_text()), None
    m = compare(cfg, tmp_path)
    prep = prepare(cfg)
    arrays = dict(np.load(tmp_path / "result.npz"))
    chi2, z = check_against_discrete(prep.design, arrays)
    lim_chi2, lim_z = limits(4)
    assert chi2 < lim_chi2, chi2
    assert np.max(np.abs(z)) < lim_z, z
    for key in ("sc_quantization_mean_rel_err", "sc_quantization_cov_rel_err", "sc_discretization_cov_rel_err",
                "sc_sampling_cov_rel_err", "sc_sampling_cov_rel_err_expected", "sc_kappa_ktc", "sc_energy_per_clock_j"):
        assert np.isfinite(m[key]), key
    assert m["sc_quantization_mean_rel_err"] == pytest.approx(
        np.linalg.norm(np.linalg.solve(prep.design.A_realized, prep.design.b_realized) - prep.problem.x_star)
        / np.linalg.norm(prep.problem.x_star))
    assert m["sc_discretization_mean_rel_err"] < 1e-12
    assert np.array_equal(arrays["sc_code"], prep.design.code) and arrays["A_effective"].shape == (4, 4)
    assert (tmp_path / "clock_zoom.png").is_file() and (tmp_path / "waveforms.png").is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["topology"] == "opamp_sc"


@pytest.mark.ngspice
def test_macro_opamp_still_follows_the_clocked_theory():
    """The op-amp macromodel (A0 = 1e5, GBW = 10 MHz at f_clk = 1 MHz: the charge transfer settles) keeps the
    circuit on the ideal clocked process within sampling error."""
    cfg = sc_problem(2, {"f_clk_tau": 5, "bits": 6, "ktc_noise": False}, circuit={"opamp": {"model": "macro"}},
                     t_stop_tau=150.0)
    prep = prepare(cfg)
    assert prep.design.macro is not None
    r = simulate(prep)
    chi2, z = check_against_discrete(prep.design, r.arrays)
    lim_chi2, lim_z = limits(2)
    assert chi2 < lim_chi2 and np.max(np.abs(z)) < lim_z, (chi2, z)


def test_sc_clock_experiment_theory_sweep(tmp_path):
    """The sc_clock experiment without ngspice points: files, plots, and the trends the theory predicts."""
    from spu_sim.experiments import replot, run_experiment
    cfg = yaml.safe_load((ROOT / "configs" / "sc_clock.yaml").read_text())
    cfg["experiment"].update(ngspice_f_clk_tau=[], ngspice_bits=[], f_clk_tau=[5, 10, 20, 40], bits=[4, 8, 12])
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    files = run_experiment("sc_clock", path, tmp_path / "out")
    names = {f.name for f in files}
    assert {"sc_clock.npz", "sc_clock.csv", "summary.json", "error_vs_f_clk_tau.png", "error_vs_bits.png"} <= names
    a = dict(np.load(tmp_path / "out" / "sc_clock.npz"))
    f = a["axis"] == "f_clk_tau"
    assert np.all(np.diff(a["sc_discretization_cov_rel_err"][f]) < 0)      # falls with the clock rate
    assert np.all(np.diff(a["ktc_floor_cov_rel"][f]) < 0)                  # kT/C per tau falls as 1/f_clk
    assert np.all(np.diff(a["energy_per_tau_j"][f]) > 0)                   # and the energy per tau rises
    b = a["axis"] == "bits"
    assert np.all(np.diff(a["energy_per_clock_j"][b]) > 0)
    assert a["sc_quantization_cov_rel_err"][b][-1] < a["sc_quantization_cov_rel_err"][b][0]
    assert len(replot("sc_clock", tmp_path / "out")) == 2


def test_sc_clock_simulated_points_name_their_engine(tmp_path):
    """A simulated point on the linear engine (clock phases stepped exactly): the files and labels say linear, and
    its measured covariance error against the clocked theory is within a few expected sampling errors."""
    from spu_sim.experiments import run_experiment
    cfg = yaml.safe_load((ROOT / "configs" / "sc_clock.yaml").read_text())
    cfg["simulation"]["backend"] = "linear"
    cfg["experiment"].update(ngspice_f_clk_tau=[10], ngspice_bits=[], f_clk_tau=[5, 10], bits=[4, 8])
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_experiment("sc_clock", path, tmp_path / "out")
    a = dict(np.load(tmp_path / "out" / "sc_clock.npz"))
    assert str(a["engine"]) == "linear" and a["simulated"].sum() == 1
    k = np.flatnonzero(a["simulated"])[0]
    assert a["measured_cov_rel_err_vs_clocked"][k] < 4 * a["expected_sampling_cov_rel_err"][k]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["engine"] == "linear"


@pytest.mark.ngspice
def test_clock_feedthrough_offset_in_the_fast_switch_limit():
    """Clock feedthrough (gate-terminal capacitors) shifts the mean by the predicted offset
    (design.feedthrough_offset_v, through the delaying branches) when the switches are fast (Ron = 10 ohm,
    so the edge current's drop across Ron is negligible); the theory without it is rejected."""
    cfg = sc_problem(2, {"f_clk_tau": 5, "bits": 6, "ktc_noise": False, "c_overlap_farad": 2e-14, "r_on_ohm": 10.0})
    prep = prepare(cfg)
    ds = prep.design
    r = simulate(prep)
    n = int((r["t"] >= r["burn_in_s"]).sum())
    V = discrete.sample_mean_cov(ds.process(), n)
    lim_chi2, _ = limits(2)
    chi2 = {}
    for ft in (True, False):
        dm = r["x_mean"] - discrete.stationary_mean(ds.process(feedthrough=ft))
        chi2[ft] = float(dm @ np.linalg.solve(V, dm))
    assert chi2[True] < lim_chi2 < chi2[False], chi2
