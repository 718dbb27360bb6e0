"""RLC topology in real ngspice: the capacitance matrix the netlist presents, the sampled covariance
against kT Cm^-1 of the realised circuit, and the node autocovariance against the exact underdamped one."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rlc_problem
from spu_sim import ideal
from spu_sim.engines import available, get_engine
from spu_sim.run_config import load_run_config
from spu_sim.experiments.rlc import autocovariance, bartlett_se, exact_autocovariance, interpolated_noise_cov
from spu_sim.pipeline import netlist_text, prepare, simulate
from spu_sim.spice import without_control

pytestmark = [pytest.mark.ngspice, pytest.mark.skipif(not available(), reason="ngspice not installed")]

A3 = [[4.0, -1.0, -0.4], [-1.0, 3.0, -0.2], [-0.4, -0.2, 2.0]]   # gamma = 0.25 nF: codes 25, 10, 5 of 10 pF
PF = 1e-12


def rlc_cfg(matrix, t_stop_tau=100.0, **rlc) -> dict:
    return rlc_problem(matrix, rlc=rlc, t_stop_tau=t_stop_tau, seed=3, sample_dt_tau=0.1)


def _series(c_pf: float, par_pf: float = 1.0) -> float:
    return c_pf * par_pf / (c_pf + par_pf)


def hand_maxwell_pf(compensated: bool) -> np.ndarray:
    """Written out by hand for A3, 6-bit banks of 10 pF, 1 pF per switch node (bank (i, j): capacitors at
    node i, switches to node j). Codes: (1,2) 25 = 011001b, (1,3) 10 = 001010b, (2,3) 5 = 000101b."""
    if compensated:
        return 0.25e3 * np.array(A3)             # Cm = gamma A exactly, in pF
    c12, c13, c23 = 250.0, 100.0, 50.0
    cell = [650.0, 450.0, 350.0]                 # gamma * row sums of A3
    load1 = sum(_series(c) for c in (20, 40, 320)) + sum(_series(c) for c in (10, 40, 160, 320))  # off bits at n1
    load2 = 3 * 1.0 + sum(_series(c) for c in (20, 80, 160, 320))   # 3 on bits of (1,2); off bits of (2,3)
    load3 = 2 * 1.0 + 2 * 1.0                                       # on bits of (1,3) and (2,3)
    return np.array([[cell[0] + c12 + c13 + load1, -c12, -c13],
                     [-c12, cell[1] + c12 + c23 + load2, -c23],
                     [-c13, -c23, cell[2] + c13 + c23 + load3]])


def measure_maxwell(design, cfg, tmp_path) -> np.ndarray:
    """Cm_ij = -I(VM<i>) / (dV_j/dt) from an ngspice transient of the netlist's capacitor network: cells' L,
    R and noise removed, every cell node held by a voltage source, node j ramped at 1e6 V/s, the others at 0.

    (A transient, not .ac: ngspice 39 evaluates an S switch as OFF in small-signal .ac whatever its
    control voltage -- measured -- so only the transient sees the bank as built.)
    """
    text = without_control(netlist_text(prepare(cfg)))   # the standalone run's control block goes too
    keep = [ln for ln in text.splitlines()
            if not ln.startswith(("LL", "RR", "ANOISE", ".model noisesrc", ".tran", ".ic", ".save", ".end"))]
    d = design.d
    slope = 1e6
    Cm = np.empty((d, d))
    backend = get_engine("ngspice-subprocess")
    for j in range(d):
        src = [f"VM{i + 1} n{i + 1} 0 " + ("PWL(0 0 1e-6 1)" if i == j else "DC 0") for i in range(d)]
        folder = tmp_path / f"ramp{j}"
        folder.mkdir()
        path = folder / "ramp.cir"
        path.write_text("\n".join(keep + src + [".tran 1e-9 5e-7", ".end"]) + "\n")
        tr = backend.run_netlist(path)["tran"]
        for i in range(d):
            branch = tr.vectors.get(f"i(vm{i + 1})", tr.vectors.get(f"vm{i + 1}#branch"))
            Cm[i, j] = -float(np.real(branch[-1])) / slope   # current delivered into n<i>
    return Cm


@pytest.mark.parametrize("compensated", [True, False])
def test_realised_capacitance_matrix_equals_hand_maxwell(tmp_path, compensated):
    cfg = load_run_config(rlc_cfg(A3, bits=6, c_unit_farad=10 * PF, c_parasitic_farad=1 * PF,
                              compensate_parasitics=compensated))
    design = prepare(cfg).design
    assert [int(design.code[0, 1]), int(design.code[0, 2]), int(design.code[1, 2])] == [25, 10, 5]
    hand = hand_maxwell_pf(compensated) * PF
    np.testing.assert_allclose(design.cm_realized_farad, hand, rtol=1e-12, atol=1e-9 * PF)
    measured = measure_maxwell(design, cfg, tmp_path)
    # r_on C ~ 0.3 ns has long settled at 500 ns; r_off leaks ~ 0.5 V / 1e9 ohm, 5e-6 of the 1e-4 A signal
    np.testing.assert_allclose(measured, hand, rtol=0, atol=1e-4 * np.abs(hand).max())


@pytest.mark.parametrize("coupling", ["ideal", "switched"])
def test_sampled_covariance_matches_kT_Cm_inverse(tmp_path, coupling):
    """d = 4, fixed seed: every entry of the sample covariance within 4 standard errors (ideal.sample_cov_var
    of the realised 2d SDE over the same window) of the exact covariance for the simulated noise (the
    filesource's finite step included: interpolated_noise_cov), and within 4 standard errors plus that known
    step bias of kT Cm^-1."""
    cfg = rlc_cfg({"random": {"kind": "m_matrix", "d": 4, "condition": 5, "seed": 1}}, t_stop_tau=600.0,
                  coupling=coupling, bits=6)
    prep = prepare(cfg)
    res = simulate(cfg, tmp_path / "run")
    design = prep.design
    assert not bool(res["has_mean"]) and np.all(np.isnan(res["x_op"])) and np.all(res["x_star"] == 0)
    t, x = res["t"], res["x"]
    xs = x[t >= float(res["burn_in_s"])]
    window_tau = len(xs) * 0.1
    cov = xs.T @ xs / len(xs)
    sde = design.realized_sde()
    theory = ideal.stationary_cov(sde)[:4, :4]
    # the same matrix in volts^2 is kT_eff Cm^-1 of the realised circuit
    np.testing.assert_allclose(theory / design.s_x ** 2, design.kt_eff_joule * np.linalg.inv(design.cm_realized_farad),
                               rtol=1e-9)
    sd = np.sqrt(ideal.sample_cov_var(sde, window_tau)[:4, :4])
    step = interpolated_noise_cov(sde, design.noise_dt_tau)[:4, :4]
    iu = np.triu_indices(4)
    z = (cov - step) / sd
    assert np.max(np.abs(z[iu])) < 4.0, z
    assert np.all(np.abs(cov - theory)[iu] < 4.0 * sd[iu] + np.abs(step - theory)[iu])
    expected = np.sqrt((sd ** 2).sum()) / np.linalg.norm(theory)
    bias = np.linalg.norm(step - theory) / np.linalg.norm(theory)
    assert bias < 0.02                               # noise_dt_tau = 0.05 with pre-emphasis: about 1.5 %
    assert np.linalg.norm(cov - theory) / np.linalg.norm(theory) < 2.5 * expected + bias

    # node autocovariance: measured vs exact underdamped, within 4.5 Bartlett standard errors at every lag
    lags = np.arange(101) * 0.1
    c_emp = autocovariance(xs[:, 0], 100)
    c_ex = exact_autocovariance(sde, 0, lags)
    se = bartlett_se(lambda s: exact_autocovariance(sde, 0, s), lags, window_tau, 0.1, 10.0 + 12.0 / design.slowest_rate_tau)
    assert np.max(np.abs(c_emp - c_ex) / se) < 4.5


@pytest.mark.parametrize("coupling", ["ideal", "switched"])
def test_noise_free_ringdown_follows_exact_transient_mean(coupling):
    """kappa = 0, x0 != 0 (via .ic): the node voltages follow E[x(t)] of the realised underdamped SDE
    (oscillation frequencies, decay and the scaling of p all enter). Tolerance: ngspice's integration
    error at reltol 1e-4 (about 1e-3 of the amplitude over 30 tau) -- measured 7e-4 and 1.1e-3."""
    cfg = {"problem": {"matrix": {"random": {"kind": "m_matrix", "d": 4, "condition": 5, "seed": 1}},
                       "kappa": 0.0, "x0": [1.0, 0.0, -0.5, 0.3]},
           "circuit": {"topology": "rlc", "rlc": {"coupling": coupling, "bits": 6}},
           "simulation": {"t_stop_tau": 30.0, "noise_dt_tau": 0.05, "analyses": ["tran"], "burn_in_tau": 0},
           "readout": {"sample_dt_tau": 0.05}}
    prep = prepare(cfg)
    res = simulate(cfg)
    t_tau = res["t"] / prep.design.tau_s
    mean = ideal.transient_mean(prep.design.realized_sde(), prep.design.x0_state, t_tau)[:, :4]
    assert np.max(np.abs(res["x"] - mean)) < 3e-3
    assert mean[:, 0].min() < -0.05 and res["x"][:, 0].min() < -0.05   # underdamped: rings through zero
