"""Intrinsic noise (issue 20 parts 1, 2, 4's kappa_intrinsic, 7): resistor thermal noise and op-amp e_n / i_n / 1-f
noise in the transient of both engine families and in .noise (spu_sim.parts.intrinsic_noise)."""

from __future__ import annotations


import numpy as np
import pytest
import scipy.signal as ss
import yaml

from conftest import spd_problem
from spu_sim.analyses.crosscheck import run_crosscheck
from spu_sim.analyses.noise import run_noise, spectrum_theory_v2
from spu_sim.cli import main
from spu_sim.ideal import LinearSDE, sample_cov_var, stationary_cov
from spu_sim.parts.intrinsic_noise import (K_BOLTZMANN, ar1_filter, flicker_poles_hz, flicker_psd,
                                           flicker_psd_sampled, white_psd_sampled)
from spu_sim.pipeline import build_circuit, prepare, simulate

T_STOP_TAU = 2000.0
BURN_TAU = 100.0


def _thermal_cfg(backend="linear", **sim):
    cfg = spd_problem(3, 5.0, seed=2, kappa=0.0, t_stop_tau=T_STOP_TAU, noise_dt_tau=0.02, burn_in_tau=BURN_TAU,
                      backend=backend, circuit={"thermal_noise": True, "temperature": {"temp_c": 50.0}}, **sim)
    cfg["simulation"]["analyses"] = ["tran"]
    return cfg


def test_defaults_add_no_source_so_shipped_runs_are_unchanged():
    cfg = spd_problem(3, 5.0, seed=2, kappa=0.01, t_stop_tau=2.0)
    base = build_circuit(prepare(cfg))
    cfg["circuit"] = {"thermal_noise": False, "opamp": {"en_v_per_rthz": 0.0, "in_a_per_rthz": 0.0}}
    same = build_circuit(prepare(cfg))
    assert [getattr(e, "name", None) for e in same.elements] == [getattr(e, "name", None) for e in base.elements]
    assert len(base.noise_sources) == 3 and prepare(cfg).design.intrinsic is None


def test_thermal_noise_alone_covariance_equals_the_lyapunov_solution_from_element_values():
    """kappa = 0 (noise DAC off): the linear engine's covariance over 1900 tau equals the Lyapunov solution whose
    diffusion this test builds from the element values, D_ii = s_x^2 tau 2kT sum_j G_ij / C^2 (every resistor ends on
    a summing node, its far end at an op-amp output or DAC), within 4 sampling sigmas (sample_cov_var) per entry."""
    cfg = _thermal_cfg()
    prep = prepare(cfg)
    d = prep.design
    kT = K_BOLTZMANN * (50.0 + 273.15)
    g = np.where(np.isfinite(d.r_ohm), 1.0 / d.r_ohm, 0.0).sum(axis=1) + 1.0 / d.r_in_ohm
    D = np.diag(d.s_x ** 2 * d.tau_s * 2.0 * kT * g / d.c_farad ** 2)
    sde = LinearSDE(d.A_realized, d.b_realized, D)
    np.testing.assert_allclose(d.realized_sde().D, D, rtol=1e-12)
    assert d.kappa_intrinsic == pytest.approx(np.mean(np.diag(D)) / 2, rel=1e-12)
    circuit = build_circuit(prep)
    assert len(circuit.noise_sources) == 3           # aggregated: one source per summing node
    S = stationary_cov(sde)
    cov = simulate(cfg).arrays["x_cov"]
    z = (cov - S) / np.sqrt(sample_cov_var(sde, T_STOP_TAU - BURN_TAU))
    assert np.abs(z).max() < 4.0, z
    assert np.linalg.norm(cov) > 0.5 * np.linalg.norm(S)     # the noise is there (it is ~1e-10: easy to lose)


@pytest.mark.ngspice
def test_thermal_and_opamp_noise_ngspice_plays_the_same_samples_on_the_same_path(tmp_path):
    """Same samples on both engines: the path difference is ngspice's integration error, shrinking with reltol
    (b = 0, so the deterministic relaxation does not dominate the micro-volt noise)."""
    diffs = {}
    for circ in ({"thermal_noise": True},
                 {"thermal_noise": True, "opamp": {"model": "macro", "en_v_per_rthz": 1e-6, "in_a_per_rthz": 1e-11,
                                                   "flicker_corner_hz": 1e5}}):
        for reltol in (1e-4, 1e-6):
            cfg = spd_problem(2, 5.0, seed=2, kappa=0.0, t_stop_tau=10.0, noise_dt_tau=0.02, reltol=reltol,
                              circuit=circ)
            cfg["simulation"]["analyses"] = ["tran"]
            cfg["problem"]["vector"] = [0.0, 0.0]
            m = run_crosscheck(cfg, tmp_path / f"xc{len(diffs)}")
            diffs[len(diffs)] = m.path_rms_diff_sd
    assert diffs[1] < 1e-2 and diffs[1] < 0.1 * diffs[0], diffs
    assert diffs[3] < 0.1 * diffs[2], diffs


def test_flicker_construction_is_one_over_f_within_half_a_db_over_the_run_band():
    """The sum of OU processes (one pole per decade), as sampled every dt, against e_n^2 f_c / f over
    [1 / T, f_Nyquist / 10]: the construction's ripple and aliasing stay within +-0.5 dB (measured -0.41 / +0.23);
    the continuous form (what .noise sees) within 0.5 dB up to f_Nyquist / 20 (measured -0.38 / +0.23)."""
    dt, T, fc = 1e-8, 2e-3, 1e6
    poles = flicker_poles_hz(dt, T)
    for top, psd_of in ((0.05, lambda f: flicker_psd_sampled(f, 1.0, fc, poles, dt)),
                        (0.025, lambda f: flicker_psd(f, 1.0, fc, poles))):
        f = np.logspace(np.log10(1 / T), np.log10(top / dt), 500)
        db = 10 * np.log10(psd_of(f) / (fc / f))
        assert np.abs(db).max() < 0.5, np.abs(db).max()


def _welch_bands(x, dt, f_lo, f_hi, n_bands=8):
    """(band centres, band means of the one-sided Welch PSD, the estimator's relative sd per band): Hann
    segments without overlap (independent), bins two apart taken as independent (sd = 1 / sqrt(K M / 2))."""
    nper = 2 ** 12
    k = len(x) // nper
    f, p = ss.welch(x, fs=1 / dt, window="hann", nperseg=nper, noverlap=0, detrend="constant")
    edges = np.logspace(np.log10(f_lo), np.log10(f_hi), n_bands + 1)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (f >= a) & (f < b)
        out.append((f[sel], p[sel], 1.0 / np.sqrt(k * sel.sum() / 2.0)))
    return out


def _one_integrator(en, fc, backend="linear", t_stop_tau=2000.0, kappa=0.0):
    cfg = {"problem": {"matrix": [[1.0]], "vector": [1.0], "kappa": kappa},
           "circuit": {"opamp": {"model": "ideal", "en_v_per_rthz": en, "flicker_corner_hz": fc}},
           "simulation": {"t_stop_tau": t_stop_tau, "noise_dt_tau": 0.01, "burn_in_tau": 20.0, "backend": backend,
                          "analyses": ["tran"], "seed": 3},
           "readout": {"sample_dt_tau": 0.01}}
    return cfg


def _noise_gain2(design, f):
    """|1 + G_in / (G_11 + j w C)|^2 of the inverting integrator with leak R_11 and input R_in."""
    g11, gin = 1.0 / design.r_ohm[0, 0], 1.0 / design.r_in_ohm
    return np.abs(1.0 + gin / (g11 + 2j * np.pi * f * design.c_farad)) ** 2


def test_opamp_voltage_noise_integrator_output_spectrum_equals_the_closed_form():
    """One integrator (A = 1, R_11 = R_in = 1 kOhm, C = 1 nF), ideal op-amp with e_n = 1 uV/rtHz and a 1/f corner
    at 100 kHz: the transient's output spectrum equals |noise gain|^2 (e_n^2 + the 1/f construction) in every
    band over [4 / (segment length), f_Nyquist / 20] within 4 estimator sigmas, and e_n^2 (1 + f_c / f) within 0.5 dB + 4 sigmas."""
    en, fc = 1e-6, 1e5
    cfg = _one_integrator(en, fc)
    prep = prepare(cfg)
    d = prep.design
    r = simulate(cfg)
    t, x = r.arrays["t"] / d.tau_s, r.arrays["x"][:, 0]
    v = (x[t >= 20.0] - x[t >= 20.0].mean()) / d.s_x
    dt = d.noise_dt_tau * d.tau_s
    poles = flicker_poles_hz(dt, prep.n_noise_steps * dt + 2 * dt)
    for f, p, sd in _welch_bands(v, dt, 4.0 / (2 ** 12 * dt), 0.5 / dt / 20):
        model = _noise_gain2(d, f) * (white_psd_sampled(f, en ** 2 / 2, dt) + flicker_psd_sampled(f, en, fc, poles, dt))
        ratio = p.mean() / model.mean()
        print(f"{f[0]:.3g}-{f[-1]:.3g} Hz: transient / closed form = {ratio:.4f} (sd {sd:.4f})")
        assert abs(ratio - 1) < 4 * sd, (f[0], ratio, sd)
        closed = _noise_gain2(d, f) * en ** 2 * (1 + fc / f)
        assert abs(p.mean() / closed.mean() - 1) < 4 * sd + 0.13, (f[0], p.mean() / closed.mean())


@pytest.mark.ngspice
def test_noise_analysis_has_the_same_sources_as_the_transient(tmp_path):
    """.noise of the one-integrator circuit with e_n (1/f corner) and a small injected kappa: its output spectrum is
    the OU Lorentzian of kappa plus |noise gain|^2 (e_n^2 + the continuous 1/f construction) to 1e-3, i.e. the
    spectrum the transient matches in the test above (same construction, its sampled form)."""
    en, fc = 1e-6, 1e5
    cfg = _one_integrator(en, fc, backend="ngspice-shared", kappa=1e-6)
    m = run_noise(cfg, tmp_path / "n", transient=False)
    z = np.load(tmp_path / "n" / "noise.npz")
    prep = prepare(cfg)
    d = prep.design
    f = z["f_hz"]
    dt = d.noise_dt_tau * d.tau_s
    poles = flicker_poles_hz(dt, prep.n_noise_steps * dt + 2 * dt)
    ou = spectrum_theory_v2(z["K"], z["D"], d.s_x, d.tau_s, f)[:, 0, 0]
    expect = ou + _noise_gain2(d, f) * (en ** 2 + flicker_psd(f, en, fc, poles))
    assert np.abs(z["spectrum_v2_hz"][0] / expect - 1).max() < 1e-3
    assert np.abs(z["spectrum_v2_hz"][0] / ou - 1).max() > 0.5          # the op-amp noise is visible
    assert m["engine"] == "ngspice-shared"


@pytest.mark.ngspice
def test_noise_analysis_with_thermal_noise_matches_the_lyapunov_judge(tmp_path):
    """Thermal noise on a circuit whose kT/C is comparable with kappa (C = 10 fF, 10 mV swing): the .noise
    covariance equals the Lyapunov solution of the design's full diffusion (injected + intrinsic) to 1e-3 and
    misses the injected-only one by far more; the transient (linear engine, 1900 tau) agrees within sampling."""
    cfg = spd_problem(2, 5.0, seed=2, kappa=0.01, t_stop_tau=T_STOP_TAU, noise_dt_tau=0.02, burn_in_tau=BURN_TAU,
                      backend="linear",
                      circuit={"thermal_noise": True, "integrator": {"c_farad": 1e-14, "v_swing_v": 0.01}})
    cfg["simulation"]["analyses"] = ["tran"]
    cfg["problem"]["vector"] = [0.0, 0.0]
    noise_cfg = dict(cfg, simulation=dict(cfg["simulation"], backend="ngspice-shared"))
    m = run_noise(noise_cfg, tmp_path / "n", transient=False)
    z = np.load(tmp_path / "n" / "noise.npz")
    assert m["cov_rel_error_vs_lyapunov"] < 1e-3
    injected_only = stationary_cov(LinearSDE(z["K"], np.zeros(2), z["D"] - prepare(noise_cfg).design.intrinsic_diffusion()))
    assert np.linalg.norm(z["cov_noise"] - injected_only) / np.linalg.norm(injected_only) > 0.02
    prep = prepare(cfg)
    sde = prep.design.effective_sde()
    cov = simulate(cfg).arrays["x_cov"]
    zs = (cov - z["cov_noise"]) / np.sqrt(sample_cov_var(sde, T_STOP_TAU - BURN_TAU))
    assert np.abs(zs).max() < 4.0, zs


@pytest.mark.parametrize("key, value, fix", [
    ("en_v_per_rthz", -1e-9, "greater than or equal to 0"), ("in_a_per_rthz", float("nan"), "is nan, not a finite number"),
    ("flicker_corner_hz", float("inf"), "finite"), ("flicker_corner_hz", 1e3, "en_v_per_rthz")])
def test_bad_noise_keys_exit_2_naming_the_key_before_any_engine_runs(tmp_path, capsys, key, value, fix):
    cfg = spd_problem(2, 5.0, circuit={"opamp": {key: value}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["simulate", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "circuit.opamp" in err and key in err and fix in err, err
    assert not (tmp_path / "o").exists()


def test_thermal_noise_key_must_be_a_boolean(tmp_path, capsys):
    cfg = spd_problem(2, 5.0, circuit={"thermal_noise": "sometimes"})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["simulate", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "thermal_noise" in err, err


def test_rlc_thermal_noise_alone_gives_kT_times_the_inverse_capacitance_matrix():
    """RLC cells with the noise DAC off: the cell resistors' 2kT/R makes v ~ N(0, kT Cm^-1) (physics.md section 4),
    i.e. kappa_intrinsic = kT s_x^2 / gamma in problem units; the linear engine's covariance over 1900 tau equals
    kappa_intrinsic A^-1 within 4 sampling sigmas."""
    from conftest import rlc_problem
    A = np.array([[2.0, -0.5], [-0.5, 1.0]])
    cfg = rlc_problem(A.tolist(), kappa=0.0, circuit={"thermal_noise": True}, t_stop_tau=T_STOP_TAU, backend="linear",
                      burn_in_tau=BURN_TAU)
    d = prepare(cfg).design
    kT = K_BOLTZMANN * (27.0 + 273.15)
    assert d.kappa_intrinsic == pytest.approx(kT * d.s_x ** 2 / d.gamma, rel=1e-12)
    S = d.kappa_intrinsic * np.linalg.inv(A)
    sde = d.realized_sde()
    np.testing.assert_allclose(stationary_cov(sde)[:2, :2], S, rtol=1e-9)
    cov = simulate(cfg).arrays["x_cov"]
    z = (cov - S) / np.sqrt(sample_cov_var(sde, T_STOP_TAU - BURN_TAU)[:2, :2])
    assert np.abs(z).max() < 4.0, z


def test_macro_inverter_thermal_noise_played_through_its_e_n_is_the_same_path_and_matches_the_judge():
    """Macromodel (no GBW pole), a negative coupling (an inverter of 1 MOhm resistors), C = 1 pF, noise DAC off:
    the thermal current at the inverter's resistive input node is played through that op-amp's e_n source when
    there is one (-i / sum G at the + input, exact). With e_n = 1e-15 V/rtHz (negligible) the path equals the one
    with separate current sources (same streams) to 1e-6, and the covariance matches the Lyapunov judge (the
    inverter's node noise through R2 included) within 4 sampling sigmas."""
    covs = {}
    for en in (0.0, 1e-15):
        cfg = {"problem": {"matrix": [[2.0, -0.9], [-0.9, 1.0]], "vector": [0.0, 0.0], "kappa": 0.0},
               "circuit": {"thermal_noise": True, "integrator": {"c_farad": 1e-12},
                           "opamp": {"model": "macro", "gbw_hz": None, "en_v_per_rthz": en, "r_inverter_ohm": 1e6}},
               "simulation": {"t_stop_tau": 1000.0, "noise_dt_tau": 0.02, "burn_in_tau": BURN_TAU, "backend": "linear",
                              "analyses": ["tran"], "seed": 1}}
        prep = prepare(cfg)
        names = [s.name for s in build_circuit(prep).noise_sources]
        covs[en] = simulate(cfg).arrays["x_cov"]
    assert len(names) == 6 and sum(n.startswith("ATH") for n in names) == 2    # the inverter node's source merged
    np.testing.assert_allclose(covs[1e-15], covs[0.0], rtol=1e-6)
    sde = prep.design.effective_sde()
    z = (covs[0.0] - stationary_cov(sde)) / np.sqrt(sample_cov_var(sde, 1000.0 - BURN_TAU))
    assert np.abs(z).max() < 4.0, z


@pytest.mark.parametrize("n", [1, 31, 32, 33, 1000])
@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0 - 1e-6])
def test_blocked_ar1_filter_equals_the_recursion(n, rho):
    """The 1/f construction's blocked AR(1) (ar1_filter) is the recursion y_k = rho y_(k-1) + w_k, to rounding."""
    w = np.random.default_rng(n).standard_normal((n, 3))
    np.testing.assert_allclose(ar1_filter(w, rho), ss.lfilter([1.0], [1.0, -rho], w, axis=0), rtol=0, atol=1e-12 * n)
