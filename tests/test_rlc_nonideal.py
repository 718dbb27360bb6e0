"""Non-idealities of the RLC topology: tolerance/mismatch, temperature, cell-capacitor quantisation, knobs that
do not apply (errors), and the small-signal .noise of the RLC network against the 2d underdamped SDE."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from conftest import rlc_problem
from spu_sim import ideal
from spu_sim.engines import available
from spu_sim.topologies.rlc.nonideal import MAX_BANK_BITS
from spu_sim.topologies.rlc.sde import netlist_sde
from spu_sim.errors import BadInputError, ConfigError
from spu_sim.pipeline import netlist_text
from spu_sim.parts.element_values import element_errors
from spu_sim.pipeline import prepare, simulate

M4 = {"random": {"kind": "m_matrix", "d": 4, "condition": 5, "seed": 1}}
M3 = {"random": {"kind": "m_matrix", "d": 3, "condition": 5, "seed": 1}}
VAR_TOL = 0.01   # .noise: band truncation 2 (2/pi) 1e-4 + ngspice's integration between 20 points/decade


def rlc_cfg(matrix=M4, coupling="ideal", t_stop_tau=100.0, kappa=1.0, **circuit) -> dict:
    return rlc_problem(matrix, rlc={"coupling": coupling, "bits": 6}, circuit=circuit, kappa=kappa,
                       t_stop_tau=t_stop_tau, seed=3, sample_dt_tau=0.1)


def _values(text: str, prefix: str) -> dict[str, float]:
    """{element name: value} of the two-node elements whose name starts with prefix."""
    out = {}
    for ln in text.splitlines():
        f = ln.split()
        if f and f[0].startswith(prefix) and not ln.startswith("*"):
            out[f[0]] = float(f[3])
    return out


# ---------------------------------------------------------------- zero mismatch, reproducibility, realised values


@pytest.mark.parametrize("coupling", ["ideal", "switched"])
def test_zero_mismatch_is_the_nominal_design_and_netlist(coupling):
    nominal = prepare(rlc_cfg(coupling=coupling))
    zero = prepare(rlc_cfg(coupling=coupling, tolerance={"global_rel": 0.0, "local_rel": 0.0, "seed": 99},
                           temperature={"temp_c": 80.0}))     # no coefficients: nothing changes with T
    assert zero.design.notes == {} and zero.design.r_each_ohm is None
    assert netlist_text(zero) == netlist_text(nominal)
    assert np.array_equal(zero.design.A_realized, nominal.design.A_realized)
    for a, b in zip(zero.design.realized_sde(), nominal.design.realized_sde()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("coupling", ["ideal", "switched"])
def test_mismatch_draw_is_reproducible_and_is_in_the_netlist(coupling):
    tol = {"global_rel": 0.01, "local_rel": 0.03}
    p1 = prepare(rlc_cfg(coupling=coupling, tolerance={**tol, "seed": 11}))
    p2 = prepare(rlc_cfg(coupling=coupling, tolerance={**tol, "seed": 11}))
    p3 = prepare(rlc_cfg(coupling=coupling, tolerance={**tol, "seed": 12}))
    t1 = netlist_text(p1)
    assert t1 == netlist_text(p2) and t1 != netlist_text(p3)
    assert np.array_equal(p1.design.cm_realized_farad, p2.design.cm_realized_farad)
    assert not np.array_equal(p1.design.cm_realized_farad, p3.design.cm_realized_farad)
    d = p1.design
    # every drawn value is written into the netlist (shortest round-trip repr: exact)
    assert [_values(t1, "LL")[f"LL{i + 1}"] for i in range(4)] == d.l_cells.tolist()
    assert [_values(t1, "RR")[f"RR{i + 1}"] for i in range(4)] == d.r_cells.tolist()
    assert [_values(t1, "CC")[f"CC{i + 1}"] for i in range(4)] == d.c_cell_farad.tolist()
    assert "* Non-idealities" in t1 and "tolerance_local_rel = 0.03" in t1
    if coupling == "ideal":
        ck = _values(t1, "CK")
        assert all(ck[f"CK{i + 1}_{j + 1}"] == d.c_coupling_farad[i, j] for i in range(4) for j in range(i + 1, 4)
                   if d.c_coupling_farad[i, j] > 0)
    else:
        cb = _values(t1, "CB")
        assert len(cb) == 6 * 6
        assert all(v == d.bank_capacitor(*[int(x) - 1 for x in re.findall(r"\d+", k)[:2]], int(k.split("_")[-1]))
                   for k, v in cb.items())


def test_mismatch_changes_A_realized_by_the_drawn_factors():
    """Ideal coupling: each off-diagonal A_ij is C_ij / gamma, so A_realized_ij / A_ij - 1 is exactly the
    drawn error of CK<i>_<j>, and its rms over the 28 couplings of d = 8 is local_rel (sample standard
    deviation of 28 draws: relative standard error 1/sqrt(56) = 13 %; bounds at about 4.5 of them)."""
    m = {"random": {"kind": "m_matrix", "d": 8, "condition": 5, "seed": 2}}
    lr, seed = 0.02, 5
    nom = prepare(rlc_cfg(m)).design
    d = prepare(rlc_cfg(m, tolerance={"local_rel": lr, "seed": seed})).design
    f = element_errors(seed, "CK", (8, 8), 0.0, lr, kind="C")
    iu = np.triu_indices(8, 1)
    np.testing.assert_allclose(d.A_realized[iu] / nom.A_realized[iu], f[iu], rtol=1e-12)
    np.testing.assert_allclose(d.l_cells / nom.l_henry, element_errors(seed, "LCELL", (8,), 0.0, lr, kind="L"), rtol=1e-14)
    np.testing.assert_allclose(d.r_cells / nom.r_ohm, element_errors(seed, "RCELL", (8,), 0.0, lr, kind="R"), rtol=1e-14)
    rms = np.sqrt(np.mean((d.A_realized[iu] / nom.A_realized[iu] - 1) ** 2))
    assert 0.4 * lr < rms < 1.6 * lr
    rel = np.linalg.norm(d.A_realized - nom.A_realized) / np.linalg.norm(nom.A_realized)
    assert 0.1 * lr < rel < 3 * lr


def test_bank_bit_error_does_not_depend_on_the_bank_size():
    tol = {"local_rel": 0.05, "seed": 3}
    cfg8 = rlc_cfg(coupling="switched", tolerance=tol)
    cfg8["circuit"]["rlc"].update(bits=8, c_unit_farad=2.5e-12)
    d8 = prepare(cfg8).design
    d6 = prepare(rlc_cfg(coupling="switched", tolerance=tol)).design
    f = element_errors(3, "CB", (4, 4, MAX_BANK_BITS), 0.0, 0.05, kind="C")
    np.testing.assert_allclose(d6.c_bank_farad / (10e-12 * 2.0 ** np.arange(6)), f[:, :, :6], rtol=1e-14)
    np.testing.assert_allclose(d8.c_bank_farad[:, :, :6] / (2.5e-12 * 2.0 ** np.arange(6)), f[:, :, :6], rtol=1e-14)


@pytest.mark.parametrize("coupling", ["ideal", "switched"])
def test_netlist_sde_of_a_mismatched_design(coupling):
    """Ideal coupling: the netlist's exact model is the realised 2d SDE; switched: within the r_on effect."""
    d = prepare(rlc_cfg(coupling=coupling, tolerance={"global_rel": 0.02, "local_rel": 0.05, "seed": 4})).design
    ns, rs = netlist_sde(d), d.realized_sde()
    S_r = ideal.stationary_cov(rs)[:4, :4]
    import scipy.linalg as sla
    S_n = sla.solve_continuous_lyapunov(ns.K, ns.D)[:4, :4]
    assert np.linalg.norm(S_n - S_r) / np.linalg.norm(S_r) < (1e-12 if coupling == "ideal" else 2e-3)
    if coupling == "ideal":
        np.testing.assert_allclose(ns.K, rs.K, rtol=1e-10, atol=1e-12 * np.abs(rs.K).max())
        np.testing.assert_allclose(ns.D, rs.D, rtol=1e-10, atol=1e-12 * np.abs(rs.D).max())


def test_temperature_scales_C_L_R():
    """c_tc1: every capacitor (cell and coupling) scales by fc, so Cm and A_realized do; l_tc1: the p-row of
    K is -L_nom / L = -1/fl; r_tc1: eta / fr, and the cells' noise temperature e_n^2 h / (2 R) / fr."""
    nom = prepare(rlc_cfg()).design
    fc, fl, fr = 1 + 1e-3 * 50, 1 + 2e-4 * 50, 1 + 4e-3 * 50
    d = prepare(rlc_cfg(temperature={"temp_c": 77.0, "tnom_c": 27.0, "c_tc1_per_k": 1e-3, "l_tc1_per_k": 2e-4,
                                     "r_tc1_per_k": 4e-3})).design
    np.testing.assert_allclose(d.cm_realized_farad, fc * nom.cm_realized_farad, rtol=1e-12)
    np.testing.assert_allclose(d.A_realized, fc * nom.A_realized, rtol=1e-12)
    K, Kn = d.realized_sde().K, nom.realized_sde().K
    np.testing.assert_allclose(np.diag(K[4:, :4]), -1.0 / fl, rtol=1e-12)
    np.testing.assert_allclose(K[:4, :4] * fc * fr, Kn[:4, :4], rtol=1e-10, atol=1e-14)
    assert d.kappa_realized == pytest.approx(nom.kappa_realized / fr, rel=1e-12)
    # uniform temperature of the cells: the stationary voltage covariance is still kappa A^-1 (realised)
    S = ideal.stationary_cov(d.realized_sde())[:4, :4]
    np.testing.assert_allclose(S, d.kappa_realized * np.linalg.inv(d.A_realized), rtol=1e-9)


def test_c_bits_puts_the_trimmed_cell_capacitor_on_its_grid():
    bits = 6
    lsb = 1e-9 / 2 ** (bits - 1)
    nom = prepare(rlc_cfg(coupling="switched")).design
    d = prepare(rlc_cfg(coupling="switched", quantization={"c_bits": bits})).design
    k = d.c_cell_farad / lsb
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    err = np.abs(d.c_cell_farad - nom.c_cell_farad)
    assert err.max() <= 0.5 * lsb * (1 + 1e-12) and err.max() > 0
    # only the diagonal of Cm moves (the banks are quantised by rlc.bits already)
    off = ~np.eye(4, dtype=bool)
    assert np.array_equal(d.cm_realized_farad[off], nom.cm_realized_farad[off])
    assert d.notes["c_bits"] == bits


@pytest.mark.parametrize("circuit, name", [
    ({"quantization": {"r_bits": 6}}, "quantization.r_bits"),
    ({"quantization": {"dac_bits": 8}}, "quantization.dac_bits"),
    ({"opamp": {"model": "macro"}}, "opamp.model"),
    ({"opamp": {"offset_sigma_v": 1e-3}}, "opamp.offset_sigma_v"),
    ({"integrator": {"r_min_ohm": 2e3}}, "integrator.r_min_ohm"),
])
def test_knobs_that_do_not_apply_to_rlc_are_errors(circuit, name):
    with pytest.raises(ConfigError, match=re.escape(name) + ".*does not apply to topology rlc"):
        prepare(rlc_cfg(**circuit))


def test_inductor_coefficient_is_an_error_for_the_opamp_topology():
    cfg = {"problem": {"matrix": [[2.0, -0.5], [-0.5, 1.0]], "vector": [1.0, 0.0]},
           "circuit": {"temperature": {"temp_c": 50.0, "l_tc1_per_k": 1e-4}}}
    with pytest.raises(ConfigError, match="l_tc1_per_k does not apply to topology opamp"):
        prepare(cfg)


def test_not_applicable_knob_exit_code_2(tmp_path, capsys):
    import yaml
    from spu_sim.cli import main
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(rlc_cfg(quantization={"r_bits": 6})))
    assert main(["netlist", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "quantization.r_bits does not apply to topology rlc" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- ngspice: transient


@pytest.mark.parametrize("coupling", ["ideal", "switched"])
@pytest.mark.ngspice
@pytest.mark.skipif(not available(), reason="ngspice not installed")
def test_zero_mismatch_reproduces_the_nominal_run_exactly(coupling):
    a = simulate(rlc_cfg(M3, coupling=coupling, t_stop_tau=30.0))
    b = simulate(rlc_cfg(M3, coupling=coupling, t_stop_tau=30.0, tolerance={"local_rel": 0.0, "seed": 8}))
    for key in ("x", "x_cov", "A_realized", "kappa"):
        assert np.array_equal(a[key], b[key]), key


@pytest.mark.parametrize("coupling", ["ideal", "switched"])
@pytest.mark.ngspice
@pytest.mark.skipif(not available(), reason="ngspice not installed")
def test_sampled_covariance_of_a_mismatched_circuit_is_the_realised_one(coupling):
    """d = 3, 20 % local and 10 % global mismatch (seed 6: the cells' R are 89, 70, 59 ohm, so their noise
    temperatures differ by up to 1.5x and the law is not kT Cm^-1): the sample covariance over 3000 tau
    matches the realised SDE (each entry within 4 standard errors of ideal.sample_cov_var, the filesource's
    finite-step bias included via interpolated_noise_cov), and is far from the nominal circuit's (their
    distance, 23 %, is about 12 expected sampling errors)."""
    from spu_sim.experiments.rlc import interpolated_noise_cov
    tol = {"local_rel": 0.2, "global_rel": 0.1, "seed": 6}
    cfg = rlc_cfg(M3, coupling=coupling, t_stop_tau=3000.0, tolerance=tol)
    design = prepare(cfg).design
    nominal = prepare(rlc_cfg(M3, coupling=coupling)).design
    res = simulate(cfg)
    np.testing.assert_array_equal(res["A_realized"], design.A_realized)
    xs = res["x"][res["t"] >= float(res["burn_in_s"])]
    cov = xs.T @ xs / len(xs)
    sde = design.realized_sde()
    S_real = ideal.stationary_cov(sde)[:3, :3]
    S_nom = ideal.stationary_cov(nominal.realized_sde())[:3, :3]
    sd = np.sqrt(ideal.sample_cov_var(sde, len(xs) * 0.1)[:3, :3])
    step = interpolated_noise_cov(sde, design.noise_dt_tau)[:3, :3]
    iu = np.triu_indices(3)
    assert np.max(np.abs((cov - step) / sd)[iu]) < 4.0
    expected = np.sqrt((sd ** 2).sum()) / np.linalg.norm(S_real)

    def rel(a, b):
        return np.linalg.norm(a - b) / np.linalg.norm(b)
    bias = rel(step, S_real)
    assert rel(cov, S_real) < 2.5 * expected + bias
    assert rel(S_real, S_nom) > 8 * expected
    assert rel(cov, S_nom) > 5 * expected + bias
    # nor is it kT_eff Cm^-1 with the cells' mean temperature (the unequal R_i make it a Lyapunov solution)
    assert rel(S_real, design.kappa_realized * np.linalg.inv(design.A_realized)) > 3 * expected


# ---------------------------------------------------------------- ngspice: .noise


@pytest.mark.ngspice
@pytest.mark.skipif(not available(), reason="ngspice not installed")
def test_rlc_noise_matches_the_underdamped_sde(tmp_path):
    """The shipped config (2 % mismatch, d = 4): variances and the full covariance (differential outputs)
    within 1 % of the Lyapunov solution of the realised 2d SDE, pointwise resonant spectra to round-off."""
    from spu_sim.analyses.noise import run_noise
    m = run_noise("configs/noise_rlc_d4.yaml", tmp_path, transient=False)
    assert m["max_abs_var_error_relative"] < VAR_TOL
    assert m["cov_rel_error_vs_lyapunov"] < VAR_TOL
    assert m["spectrum_max_rel_error"] < 1e-4
    assert m["cov_rel_error_vs_kappa_A_inv"] > 3 * m["cov_rel_error_vs_lyapunov"]   # the mismatch is seen
    text = (tmp_path / "noise.cir").read_text()
    assert "ANOISE" not in text and "FNQ1 0 n1 VNQ1" in text and ".noise v(n1,n2) VNACIN" in text
    z = np.load(tmp_path / "noise.npz")
    assert z["K"].shape == (8, 8) and z["cov_noise"].shape == (4, 4)
    for f in ("noise_spectra.png", "noise_cov.png", "noise_metrics.json", "noise_config.yaml"):
        assert (tmp_path / f).is_file()


@pytest.mark.ngspice
@pytest.mark.skipif(not available(), reason="ngspice not installed")
def test_rlc_noise_covariance_is_kT_Cm_inverse(tmp_path):
    """Nominal circuit, one temperature: the .noise covariance is kT_eff Cm^-1 (= kappa A^-1) within 1 %."""
    from spu_sim.analyses.noise import run_noise
    m = run_noise(rlc_cfg(), tmp_path, transient=False)
    assert m["cov_rel_error_vs_kT_Cm_inv_realized"] < VAR_TOL
    assert m["cov_rel_error_vs_kappa_A_inv"] < VAR_TOL
    assert m["max_abs_var_error_relative"] < VAR_TOL


def test_rlc_noise_with_switched_coupling_is_a_clear_error(tmp_path, capsys):
    from spu_sim.analyses.noise import run_noise
    with pytest.raises(BadInputError, match="OFF in small-signal.*coupling: ideal"):
        run_noise(rlc_cfg(coupling="switched"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    import yaml
    from spu_sim.cli import main
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(rlc_cfg(coupling="switched"))))
    assert main(["noise", str(path), "--out", str(tmp_path / "out2")]) == 2
    assert "coupling: ideal" in capsys.readouterr().err
