"""RLC topology without ngspice: mapping, quantisation bounds, representability errors, the 2d SDE."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import rlc_problem
from spu_sim import ideal
from spu_sim.run_config import load_run_config
from spu_sim.topologies.rlc.sde import rlc_sde
from spu_sim.errors import DesignError
from spu_sim.pipeline import netlist_text, prepare
from spu_sim.spice import fmt

A3 = [[4.0, -1.0, -0.4], [-1.0, 3.0, -0.2], [-0.4, -0.2, 2.0]]   # gamma = 1 nF / 4: C_ij = 250, 100, 50 pF


def rlc_cfg(matrix, **rlc) -> dict:
    return rlc_problem(matrix, rlc=rlc)


def design_of(cfg: dict):
    c = load_run_config(cfg)
    return prepare(c).design


def test_ideal_coupling_realises_gamma_A_exactly(tmp_path):
    d = design_of(rlc_cfg(A3, coupling="ideal"))
    assert d.gamma == pytest.approx(1e-9 / 4)
    np.testing.assert_allclose(d.c_coupling_farad[0, 1:], [250e-12, 100e-12], rtol=1e-12)
    np.testing.assert_allclose(d.c_cell_farad, 0.25e-9 * np.array([2.6, 1.8, 1.4]), rtol=1e-12)
    np.testing.assert_allclose(d.A_realized, A3, rtol=1e-12)
    assert not d.has_mean and np.all(d.b_realized == 0)
    # the written files realise kappa = 1: kT_eff = e_n^2 h / (2 R) from RR1 and noise_1.txt, kappa = kT_eff s_x^2 /
    # gamma (pre-emphasised samples have variance ((1 + c)^2 + c^2) e_n^2; relative sd of the mean square
    # sqrt(2 (1 + 2 rho^2) / n), rho = -c (1 + c) / ((1 + c)^2 + c^2))
    from spu_sim.pipeline import write_netlist
    from spu_sim.parts.noise_dacs import PRE_EMPHASIS as c
    write_netlist(rlc_cfg(A3, coupling="ideal"), tmp_path)
    r_cell = float(re.search(r"^RR1 n1 nz1 (\S+)$", (tmp_path / "netlist.cir").read_text(), re.M).group(1))
    t, u = np.loadtxt(tmp_path / "noise_1.txt", unpack=True)
    e2 = np.mean(u[1:] ** 2) / ((1 + c) ** 2 + c ** 2)
    kappa = e2 * (t[1] - t[0]) / (2 * r_cell) * d.s_x ** 2 / d.gamma
    rho = -c * (1 + c) / ((1 + c) ** 2 + c ** 2)
    assert abs(kappa - 1.0) < 5 * np.sqrt(2 * (1 + 2 * rho ** 2) / (len(u) - 1)), kappa


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
@pytest.mark.parametrize("seed", [1, 2])
def test_quantisation_within_half_step(bits, seed):
    """Off-diagonal entries move by at most half a bank step; compensation keeps the diagonal exact."""
    m = {"random": {"kind": "m_matrix", "d": 6, "condition": 5, "seed": seed}}
    full = 0.5e-9
    d = design_of(rlc_cfg(m, bits=bits, c_unit_farad=full / (2 ** bits - 1)))
    A = d.problem.A
    off = ~np.eye(6, dtype=bool)
    half = 0.5 * d.c_unit_farad / d.gamma
    assert np.max(np.abs(d.A_realized - A)[off]) <= half * (1 + 1e-9)
    np.testing.assert_allclose(np.diag(d.A_realized), np.diag(A), rtol=1e-12)
    # the grid: every realised coupling is an integer number of steps
    codes = -d.A_realized[off] / d.step_problem_units
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-9)
    # the bound in absolute terms: half of full scale / (2^bits - 1)
    assert np.max(np.abs(d.A_realized - A)[off]) <= 0.5 * full / d.gamma / (2 ** bits - 1) * (1 + 1e-9)


def test_quantisation_error_halves_per_bit():
    """At a fixed full scale the bank step halves per bit, and so does the rounding error: its mean |error| is a
    quarter step (uniform rounding), checked within 4 sd of that mean (|U| on [0, step/2]: sd step / sqrt(48))
    over the 66 couplings of a 12-cell M-matrix, for 4..9 bits."""
    m = {"random": {"kind": "m_matrix", "d": 12, "condition": 5, "seed": 3}}
    full = 0.5e-9
    off = ~np.eye(12, dtype=bool) & np.triu(np.ones((12, 12), dtype=bool))
    means = []
    for bits in range(4, 10):
        d = design_of(rlc_cfg(m, bits=bits, c_unit_farad=full / (2 ** bits - 1)))
        step = d.step_problem_units
        err = np.abs(d.A_realized - d.problem.A)[off]
        assert abs(err.mean() / step - 0.25) < 4 / np.sqrt(48 * err.size), (bits, err.mean() / step)
        means.append(err.mean())
    ratios = np.array(means[:-1]) / np.array(means[1:])
    assert np.all((ratios > 1.3) & (ratios < 3.0)), ratios     # about 2 per bit (each mean within +-0.14 of it)


def test_positive_off_diagonal_is_a_clear_error():
    A = [[2.0, 0.3], [0.3, 2.0]]
    with pytest.raises(DesignError, match=r"problem\.matrix\[0\]\[1\] = 0\.3.*A_ij <= 0.*M-matrices"):
        design_of(rlc_cfg(A))


def test_positive_off_diagonal_exit_code_2(tmp_path, capsys):
    import yaml
    from spu_sim.cli import main
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(rlc_cfg([[2.0, 0.3], [0.3, 2.0]])))
    assert main(["netlist", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "problem.matrix[0][1]" in capsys.readouterr().err


def test_out_of_bank_range_is_an_error_not_clipping():
    with pytest.raises(DesignError, match=r"problem\.matrix\[0\]\[1\].*full scale"):
        design_of(rlc_cfg(A3, bits=3, c_unit_farad=10e-12))      # 250 pF > 70 pF full scale


def test_not_diagonally_dominant_is_an_error():
    A = [[1.0, -0.8, -0.5], [-0.8, 2.0, 0.0], [-0.5, 0.0, 2.0]]   # SPD M-matrix, row 0 sum < 0
    with pytest.raises(DesignError, match="row 0"):
        design_of(rlc_cfg(A, coupling="ideal"))


def test_rlc_sde_stationary_law():
    """K S + S K^T = D with S = blockdiag(kappa A^-1, kappa/a_ref I): the voltage covariance is kT Cm^-1."""
    A = np.array(A3)
    sde = rlc_sde(A, 0.7, 0.8, 4.0)
    S = ideal.stationary_cov(sde)
    np.testing.assert_allclose(S[:3, :3], 0.7 * np.linalg.inv(A), rtol=1e-10)
    np.testing.assert_allclose(S[3:, 3:], 0.7 / 4.0 * np.eye(3), atol=1e-12)
    np.testing.assert_allclose(S[:3, 3:], 0.0, atol=1e-12)


def test_design_sde_equals_circuit_equations():
    """The problem-unit SDE is the circuit's: integrate Cm dv/dt = -i - v/R, L di/dt = v in SI units."""
    d = design_of(rlc_cfg(A3, coupling="ideal"))
    Cm, L, R = d.cm_realized_farad, d.l_henry, d.r_ohm
    n = 3
    # SI: d/dt [v, i] = J [v, i]
    J = np.block([[-np.linalg.solve(Cm, np.eye(n)) / R, -np.linalg.inv(Cm)], [np.eye(n) / L, np.zeros((n, n))]])
    # problem units: x = s_x v, p = s_x tau i / c_cell; time in tau
    T = np.diag(np.r_[np.full(n, d.s_x), np.full(n, d.s_x * d.tau_s / 1e-9)])
    K_si = -T @ J @ np.linalg.inv(T) * d.tau_s
    np.testing.assert_allclose(d.realized_sde().K, K_si, rtol=1e-10, atol=1e-12)


def test_netlist_structure():
    d = design_of(rlc_cfg({"random": {"kind": "m_matrix", "d": 4, "condition": 5, "seed": 1}}, bits=5))
    cfg = load_run_config(rlc_cfg({"random": {"kind": "m_matrix", "d": 4, "condition": 5, "seed": 1}}, bits=5))
    text = netlist_text(prepare(cfg))
    lines = text.splitlines()
    assert sum(ln.startswith("SB") for ln in lines) == 6 * 5
    assert sum(ln.startswith("CB") for ln in lines) == 6 * 5
    assert sum(ln.startswith("CP") for ln in lines) == 6 * 5
    assert sum(ln.startswith("LL") for ln in lines) == 4
    assert ".op" not in [ln.strip() for ln in lines]
    # control voltages encode the codes
    for i in range(4):
        for j in range(i + 1, 4):
            code = int(d.code[i, j])
            for k in range(5):
                want = 1.0 if (code >> k) & 1 else 0.0
                assert f"VCTL{i + 1}_{j + 1}_{k} c{i + 1}_{j + 1}_{k} 0 DC {fmt(want)}" in text


def test_netlist_sde_is_the_realised_sde_for_ideal_coupling():
    from spu_sim.topologies.rlc.sde import netlist_sde
    d = design_of(rlc_cfg({"random": {"kind": "m_matrix", "d": 4, "condition": 5, "seed": 1}}, coupling="ideal"))
    ns, rs = netlist_sde(d), d.realized_sde()
    np.testing.assert_allclose(ns.K, rs.K, atol=1e-12)
    np.testing.assert_allclose(ns.D, rs.D, atol=1e-12)


def test_netlist_covariance_tends_to_kT_Cm_inverse_as_r_on_vanishes():
    """The switch resistance adds noiseless damping: a bias that scales with r_on (and vanishes with it)."""
    from spu_sim.topologies.rlc.sde import netlist_stationary_cov
    m = {"random": {"kind": "m_matrix", "d": 4, "condition": 5, "seed": 1}}
    errs = []
    for r_on in (10.0, 1.0, 0.1):
        d = design_of(rlc_cfg(m, bits=6, c_unit_farad=5e-12, r_on_ohm=r_on))
        S_real = d.kappa_realized * np.linalg.inv(d.A_realized)
        errs.append(np.linalg.norm(netlist_stationary_cov(d) - S_real) / np.linalg.norm(S_real))
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-4
    assert 5 < errs[0] / errs[1] < 20 and 5 < errs[1] / errs[2] < 20        # about linear in r_on


def test_interpolated_noise_cov_single_mode():
    """The exact finite-noise-step covariance: OU with r h = 0.1 keeps 0.9516 of its variance with plain
    linear interpolation (physics.md measured 0.95) and 1 - 0.0081 with the netlist's pre-emphasis."""
    from spu_sim.experiments.rlc import interpolated_noise_cov
    sde = ideal.ou_sde(np.array([[1.0]]), np.zeros(1), 1.0)
    assert interpolated_noise_cov(sde, 0.1, 0.0)[0, 0] == pytest.approx(0.9516, abs=2e-4)
    assert interpolated_noise_cov(sde, 0.1, 1.0 / 3.0)[0, 0] == pytest.approx(1 - 0.0081, abs=2e-4)
    assert interpolated_noise_cov(sde, 1e-3, 0.0)[0, 0] == pytest.approx(1.0, abs=1e-3)
