"""Posterior samplers (issue 13): problems, references, circuits in real ngspice, the CLI.

Statistical checks use fixed seeds and tolerances from theory: the circuit's time average and sample
covariance have the variances ideal.time_average_cov / ideal.sample_cov_var of the realised OU process (the
Laplace OU for the logistic model), the emcee reference its own Monte Carlo variance; a check passes at
4 combined standard deviations. Each such check is paired with one that the same tolerance rejects (a
wrong reference), so the tolerance is not vacuous.
"""

from __future__ import annotations

import numpy as np
import pytest

from spu_sim.circuit import BehavioralVoltage, Expr, add, call, mul, num, volt
from spu_sim.cli import main
from spu_sim.pipeline import prepare
from spu_sim.posterior import stats
from spu_sim.problems import posterior_reference as reference
from spu_sim.run_config import build_problem_from
from spu_sim.posterior.run import N_SIGMA, judge, run_posterior, sampling_theory
from spu_sim.spice import format_element

GAUSS = {"problem": {"kind": "gaussian_posterior", "X": {"random": {"n": 8, "d": 4, "scale": 0.3, "seed": 1}},
                     "y": {"random": {"theta_scale": 1.0, "seed": 2}}, "prior_cov": 1.0, "noise_var": 1.0},
         "circuit": {"topology": "posterior_gaussian"},
         "simulation": {"t_stop_tau": 300.0, "seed": 3, "noise_oversample": 20}}
LOGIT = {"problem": {"kind": "logistic_posterior",
                     "X": {"dataset": "breast_cancer", "features": ["mean radius", "mean texture", "mean smoothness"],
                           "n": 20, "seed": 0}, "prior_cov": 1.0},
         "circuit": {"topology": "posterior_logistic"},
         "simulation": {"t_stop_tau": 120.0, "seed": 3, "noise_oversample": 20}}


# ---------------------------------------------------------------- problems, references, design (no ngspice)


def test_gaussian_problem_is_the_bayes_posterior():
    """A = P, b as in the module doc; mean and covariance equal the Woodbury form of the same posterior."""
    p = build_problem_from(GAUSS)
    X, y, S0, s2 = p.data.X, p.data.y, p.data.prior_cov, p.noise_var
    G = X @ S0 @ X.T + s2 * np.eye(len(y))
    cov_w = S0 - S0 @ X.T @ np.linalg.solve(G, X @ S0)
    mean_w = S0 @ X.T @ np.linalg.solve(G, y)           # prior mean 0
    np.testing.assert_allclose(p.posterior_cov, cov_w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.posterior_mean, mean_w, rtol=1e-10, atol=1e-12)
    assert p.kappa == 1.0


def test_laplace_is_the_mode_and_its_curvature():
    p = build_problem_from(LOGIT)
    g = reference.grad_log_posterior(p.map, p.data)
    assert np.max(np.abs(g)) < 1e-6
    eps = 1e-5
    H_fd = np.array([-(reference.grad_log_posterior(p.map + eps * e, p.data)
                       - reference.grad_log_posterior(p.map - eps * e, p.data)) / (2 * eps) for e in np.eye(p.d)])
    np.testing.assert_allclose(p.A, H_fd, rtol=1e-5)


GAUSS_PRIOR = {**GAUSS, "problem": {**GAUSS["problem"], "prior_mean": [0.5, -1.0, 0.0, 2.0],
                                     "prior_cov": [[1.0, 0.3, 0, 0], [0.3, 2.0, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 1.0]]}}
LOGIT_PRIOR = {**LOGIT, "problem": {**LOGIT["problem"], "prior_mean": 0.3, "prior_cov": [1.0, 2.0, 0.5, 4.0],
                                    "X": {**LOGIT["problem"]["X"], "intercept": True}}}


@pytest.mark.parametrize("cfg", [GAUSS, LOGIT, GAUSS_PRIOR, LOGIT_PRIOR],
                         ids=["gaussian", "logistic", "gaussian-prior", "logistic-prior-intercept"])
def test_design_realises_the_drift(cfg):
    """The element values implement grad log p (gaussian: P theta - b; logistic: the nonlinear drift), also with
    a non-zero prior mean, a full or diagonal prior covariance and an intercept column."""
    prep = prepare(cfg)
    design, prob = prep.design, prep.problem
    th = np.random.default_rng(0).standard_normal((5, prob.d))
    if cfg["problem"]["kind"] == "gaussian_posterior":
        want = prob.b - th @ prob.A.T
    else:
        want = reference.grad_log_posterior(th, prob.data)
    np.testing.assert_allclose(design.drift(th), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(design.A_realized, prob.A, rtol=1e-9, atol=1e-12)


def test_tolerance_shows_up_in_the_realised_drift():
    cfg = {**GAUSS, "circuit": {"topology": "posterior_gaussian", "tolerance": {"local_rel": 0.02, "seed": 4}}}
    prep = prepare(cfg)
    err = np.linalg.norm(prep.design.A_realized - prep.problem.A) / np.linalg.norm(prep.problem.A)
    assert 1e-3 < err < 0.1


def test_sigmoid_expression_in_the_netlist():
    """The B source carries only numbers and checked node names; the hard sigmoid is the clipped line."""
    prep = prepare({**LOGIT, "circuit": {"topology": "posterior_logistic", "sigmoid": {"model": "hard"}}})
    from spu_sim.pipeline import build_circuit
    c = build_circuit(prep)
    b = c.of_type(BehavioralVoltage)
    assert len(b) == prep.design.n
    line = format_element(b[0])[0]
    assert line.startswith("BSIG1 s1 0 V = ") and "min(max(" in line and "V(r1)" in line
    with pytest.raises(ValueError):
        volt("r1; .end")
    with pytest.raises(ValueError):
        Expr("system", (num(1.0),))
    with pytest.raises(ValueError):
        call("exp", 1.0)
    assert format_element(BehavioralVoltage("B1", "a", "0", add(num(-1), mul(num(2), volt("b", "c")))))[0] \
        == "B1 a 0 V = ((-1) + (2 * V(b,c)))"


def test_autocorrelation_statistics_match_an_exact_ar1():
    """tau_int of rho_k = a^k is (1 + a)/(1 - a); the 1/e time of exp(-r t) is 1/r; a long AR(1) path gives
    tau_int within its (Sokal) standard error."""
    a = 0.9
    rho = (a ** np.arange(2000))[:, None]
    assert stats.integrated_time(rho)[0] == pytest.approx((1 + a) / (1 - a), rel=1e-3)
    r, dt = 2.0, 0.01
    assert stats.mixing_time(np.exp(-r * dt * np.arange(500))[:, None], dt) == pytest.approx(1 / r, rel=1e-3)
    rng = np.random.default_rng(5)
    n = 200_000
    w = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = w[0]
    for k in range(1, n):
        x[k] = a * x[k - 1] + np.sqrt(1 - a * a) * w[k]
    tau = stats.integrated_time(stats.autocorrelation(x[:, None], 2000))[0]
    se = 19.0 * np.sqrt(2 * (2 * 5 * tau + 1) / n)        # Sokal: var(tau) ~ 2 (2M + 1) / n tau^2, M = 5 tau
    assert abs(tau - 19.0) < 4 * se


def test_emcee_reference_matches_quadrature_in_one_dimension():
    """d = 1 logistic posterior: emcee's mean and variance agree with grid quadrature within 4 of its own
    Monte Carlo standard errors (the same errors the circuit tests add to their tolerance)."""
    cfg = {"problem": {"kind": "logistic_posterior", "X": {"dataset": "breast_cancer", "features": ["mean radius"],
                                                           "n": 40, "seed": 2}, "prior_cov": 1.0},
           "circuit": {"topology": "posterior_logistic"}}
    p = build_problem_from(cfg)
    g = np.linspace(p.map[0] - 12 / np.sqrt(p.A[0, 0]), p.map[0] + 12 / np.sqrt(p.A[0, 0]), 20001)
    lp = reference.log_posterior(g[:, None], p.data)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    mean = float((w * g).sum())
    var = float((w * (g - mean) ** 2).sum())
    mc = reference.emcee_reference(p.data, n_steps=3000, seed=1)
    assert abs(mc.mean[0] - mean) < 4 * np.sqrt(mc.mean_var[0])
    assert abs(mc.cov[0, 0] - var) < 4 * np.sqrt(mc.cov_var[0, 0])
    assert mc.n_eff > 1000


# ---------------------------------------------------------------- circuits in real ngspice


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pg")
    return run_posterior(GAUSS, out), out


@pytest.mark.ngspice
def test_gaussian_posterior_d4_in_ngspice(gaussian_run):
    """Mean and covariance equal the exact posterior within 4 sd of the time-average / sample-covariance theory,
    and that tolerance rejects a wrong posterior (noise variance doubled)."""
    m, out = gaussian_run
    assert m["engine"] == "ngspice-shared" and m["reference"] == "exact" and m["d"] == 4
    assert m["mean_z_max"] <= N_SIGMA and m["cov_z_max"] <= N_SIGMA, m
    assert m["cov_rel_err_expected"] < 0.15          # the tolerance is tight enough to mean something
    z = np.load(out / "samples.npz")
    theta, t = z["theta"], z["t"]
    assert theta.shape == (len(t), 4) and t[0] >= m["burn_in_tau"] * m["tau_s"] * (1 - 1e-9)
    wrong = build_problem_from({**GAUSS, "problem": {**GAUSS["problem"], "noise_var": 2.0}})
    prep = prepare(GAUSS)
    vm, vc = sampling_theory(prep.design, m["window_tau"])
    bad = judge(theta.mean(0), np.cov(theta, rowvar=False), wrong.posterior_mean, wrong.posterior_cov, vm, vc, "")
    assert max(bad["mean_z_max"], bad["cov_z_max"]) > N_SIGMA
    assert 0.5 < m["mixing_time_tau"] / m["mixing_time_theory_tau"] < 1.5
    for name in ("marginals.png", "pairs.png", "autocorrelation.png", "error_vs_time.png", "metrics.json",
                 "netlist.cir", "result.npz"):
        assert (out / name).is_file()


@pytest.mark.ngspice
def test_logistic_posterior_d3_breast_cancer_in_ngspice(tmp_path):
    """Mean and covariance within 4 combined sd (Laplace-OU sampling theory + emcee's Monte Carlo error) of the
    emcee reference; the exact-logistic B source has no sigmoid error."""
    m = run_posterior(LOGIT, tmp_path)
    assert m["engine"] == "ngspice-shared" and m["reference"] == "emcee" and m["d"] == 3
    assert m["mean_z_max"] <= N_SIGMA and m["cov_z_max"] <= N_SIGMA, m
    assert m["mean_err_in_sd_max"] < 0.2
    assert m["sigmoid_model"] == "logistic" and m["sigmoid_max_abs_deviation"] == 0.0


# ---------------------------------------------------------------- bad input: exit 2, one line


@pytest.mark.parametrize("problem, word", [
    ({"kind": "logistic_posterior", "X": [[1.0, 0.0], [0.0, 1.0]], "y": [0.0, 2.0]}, "labels"),
    ({"kind": "gaussian_posterior", "X": [[1.0, 0.0], [0.0, 1.0]], "y": [0.0]}, "rows"),
    ({"kind": "gaussian_posterior", "X": [[1.0, 0.0], [0.0, 1.0]]}, "problem.y"),
    ({"kind": "gaussian_posterior", "X": {"dataset": "breast_cancer", "features": ["nope"]}}, "features"),
    ({"kind": "logistic_posterior", "X": {"dataset": "diabetes"}}, "diabetes"),
    ({"kind": "gaussian_posterior", "X": [[1.0]], "y": [1.0], "prior_cov": -1.0}, "prior_cov"),
    ({"kind": "gaussian_posterior", "X": [[1.0]], "y": [1.0], "noise_var": 0}, "noise_var"),
])
def test_config_errors_exit_2(tmp_path, capsys, problem, word):
    import yaml
    topo = "posterior_logistic" if problem["kind"] == "logistic_posterior" else "posterior_gaussian"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"problem": problem, "circuit": {"topology": topo}}))
    assert main(["posterior", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and word in err and "Traceback" not in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_kind_topology_mismatch_and_reference_section_exit_2(tmp_path, capsys):
    import yaml
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**GAUSS, "circuit": {"topology": "posterior_logistic"}}))
    assert main(["posterior", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "problem.kind" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({**LOGIT, "reference": {"walkers": 3}}))
    assert main(["posterior", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "reference" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({"problem": {"matrix": [[1.0]], "vector": [1.0]}}))
    assert main(["posterior", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "gaussian_posterior" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({**GAUSS, "circuit": {"topology": "posterior_gaussian",
                                                         "quantization": {"c_bits": 4}}}))
    assert main(["posterior", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "c_bits" in capsys.readouterr().err


@pytest.mark.ngspice
def test_hard_sigmoid_effect_is_measured_in_ngspice(tmp_path):
    """The piecewise-linear sigmoid element samples its own posterior (within 4 sd of emcee on the hard-sigmoid
    density) and is rejected against the logistic model's posterior: the effect of the approximation."""
    cfg = {**LOGIT, "circuit": {"topology": "posterior_logistic", "sigmoid": {"model": "hard"}},
           "simulation": {**LOGIT["simulation"], "t_stop_tau": 80.0}}
    m = run_posterior(cfg, tmp_path)
    assert m["sigmoid_model"] == "hard" and 0.11 < m["sigmoid_max_abs_deviation"] < 0.13
    assert m["vs_realised_sigmoid_mean_z_max"] <= N_SIGMA and m["vs_realised_sigmoid_cov_z_max"] <= N_SIGMA, m
    assert max(m["mean_z_max"], m["cov_z_max"]) > N_SIGMA
    assert m["sigmoid_effect_mean_shift_in_sd_max"] > 0.2


def test_emcee_reference_is_reproducible():
    p = build_problem_from(LOGIT)
    a = reference.emcee_reference(p.data, n_steps=200, burn_steps=50, seed=7)
    b = reference.emcee_reference(p.data, n_steps=200, burn_steps=50, seed=7)
    np.testing.assert_array_equal(a.samples, b.samples)


def test_scaling_fits_and_convergence_time():
    """fit recovers a + b ln d exactly from data on that law; the convergence time of exp(-r t) d0 through eps
    is ln(d0 / eps) / r."""
    from spu_sim.experiments.posterior_scaling import convergence_time, fit
    d = np.array([2, 4, 8, 16, 32])
    f = fit(d, 0.3 + 0.7 * np.log(d))
    assert f["ln_d"]["a"] == pytest.approx(0.3) and f["ln_d"]["b"] == pytest.approx(0.7)
    assert f["ln_d"]["rms_rel_residual"] < 1e-12 < f["d_ln_d"]["rms_rel_residual"]
    t = np.linspace(0, 5, 50001)
    m = (3.0 * np.exp(-2.0 * t))[:, None]
    tc, d0 = convergence_time(t, m, np.zeros(1), np.eye(1), 0.1)
    assert d0 == pytest.approx(3.0) and tc == pytest.approx(np.log(30.0) / 2.0, abs=1e-4)


@pytest.mark.ngspice
def test_scaling_experiment_runs_small(tmp_path):
    import yaml
    from spu_sim.experiments import run_experiment
    cfg = yaml.safe_load(open("configs/posterior_scaling.yaml"))
    cfg["experiment"].update(d_values=[2, 3], replicates=1)
    cfg["simulation"]["t_stop_tau"] = 20
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    files = run_experiment("posterior_scaling", path, tmp_path / "out")
    names = {p.name for p in files}
    assert {"scaling.json", "scaling.png", "config.yaml"} <= names
    import json
    s = json.loads((tmp_path / "out" / "scaling.json").read_text())
    assert [r["d"] for r in s["means"]] == [2, 3] and all(r["engine"] == "ngspice-shared" for r in s["rows"])
    assert all(np.isfinite(r["t_conv_tau"]) and r["t_conv_tau"] > 0 for r in s["rows"])


@pytest.mark.ngspice
def test_macromodel_op_amps_sample_the_same_posterior(tmp_path):
    """opamp's macromodel for every op-amp (gain 1e5, GBW 10 MHz, supplies with quiescent current): the
    netlist holds the macromodels, the posterior is still sampled within the theory's tolerance, and the
    op-amp power is reported."""
    circuit = {"topology": "posterior_gaussian",
               "opamp": {"model": "macro", "gain": 1.0e5, "gbw_hz": 1.0e7, "i_quiescent_a": 1.0e-4}}
    cfg = {**GAUSS, "circuit": circuit, "simulation": {**GAUSS["simulation"], "t_stop_tau": 150.0}}
    m = run_posterior(cfg, tmp_path)
    text = (tmp_path / "netlist.cir").read_text()
    assert "XAS1 " in text and "XAI1 " in text and ".subckt SPU_OPAMP_MACRO" in text and "VSUM1" not in text and "RF1 r1 rs1" in text
    assert m["mean_z_max"] <= N_SIGMA and m["cov_z_max"] <= N_SIGMA, m
    assert m["power_opamp_w"] > m["n_opamps"] * 2 * 5.0 * 1.0e-4 * (1 - 1e-9)
