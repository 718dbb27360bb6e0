"""Exact aggregated 1/f noise (issue 20 part 2): on ``linear-aggregated`` the 1/f construction of
spu_sim.parts.intrinsic_noise (a sum of OU processes) is drawn as OU states appended to the circuit's drift
(spu_sim.engines.linear.dense.ou_augmented, from the sources' NoiseLaw), so its covariance is the Lyapunov solution
of the augmented system, which this test builds itself from the circuit's linear model and the construction."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from spu_sim.engines.linear.model import build_model
from spu_sim.parts.intrinsic_noise import FLICKER_C, flicker_poles_hz
from spu_sim.pipeline import build_circuit, prepare, simulate

EN, FC = 1e-6, 1e7          # e_n (V/rtHz) and 1/f corner (Hz): the 1/f part dominates the output variance
D, T_STOP, BURN, STEP = 16, 1000.0, 20.0, 0.5


def _cfg(backend: str) -> dict:
    """D independent integrators (A = I, b = 0: the mean is 0 exactly), macromodel op-amps (no direct path from e_n
    to the readout), only the op-amps' e_n (white + 1/f) as noise."""
    return {"problem": {"matrix": np.eye(D).tolist(), "vector": [0.0] * D, "kappa": 0.0},
            "circuit": {"opamp": {"model": "macro", "en_v_per_rthz": EN, "flicker_corner_hz": FC}},
            "simulation": {"t_stop_tau": T_STOP, "noise_dt_tau": 0.01, "burn_in_tau": BURN, "backend": backend,
                           "analyses": ["tran"], "seed": 3},
            "readout": {"sample_dt_tau": STEP}}


def _augmented_lyapunov(prep, with_flicker: bool = True):
    """(S_y, C_m): the stationary variance of each readout (problem units) and its autocovariance at lags m STEP
    (m = 0, 1, ...), from x' = M x + N u of the circuit and, per e_n source, the white part e_n^2 / 2 plus one OU
    state per pole f_k (rate 2 pi f_k, variance c e_n^2 f_c pi / 2) feeding the source's input column."""
    design = prep.design
    circuit = build_circuit(prep)
    model = build_model(circuit, saves=[f"v({n})" for n in circuit.readout_nodes])
    dt = design.noise_dt_tau * design.tau_s
    poles = flicker_poles_hz(dt, (prep.n_noise_steps + 2) * dt) if with_flicker else np.zeros(0)
    n, n_src, k = model.M.shape[0], len(model.noise), len(poles)
    Ma = np.zeros((n + n_src * k, n + n_src * k))
    Ma[:n, :n] = model.M
    Dg = np.zeros_like(Ma)
    Dg[:n, :n] = model.N[:, 1:] @ model.N[:, 1:].T * EN ** 2 / 2.0
    var = FLICKER_C * EN ** 2 * FC * np.pi / 2.0
    for i in range(n_src):
        for j, f in enumerate(poles):
            s = n + i * k + j
            Ma[:n, s] = model.N[:, 1 + i]
            Ma[s, s] = -2.0 * np.pi * f
            Dg[s, s] = 2.0 * 2.0 * np.pi * f * var
    S = sla.solve_continuous_lyapunov(Ma, -Dg)
    Ca = np.hstack([model.Cx, np.repeat(model.Du[:, 1:], k, axis=1)]) * design.s_x
    Phi = sla.expm(Ma * STEP * design.tau_s)
    n_lag = int(round((T_STOP - BURN) / STEP)) + 1
    c = Ca[0]
    w, lags = S @ c, np.empty(n_lag)
    for m in range(n_lag):
        lags[m] = c @ w
        w = Phi @ w
    return np.diag(Ca @ S @ Ca.T), lags


def test_aggregated_one_over_f_covariance_equals_the_augmented_lyapunov_solution():
    prep = prepare(_cfg("linear-aggregated"))
    S_y, lags = _augmented_lyapunov(prep)
    S_white, _ = _augmented_lyapunov(prep, with_flicker=False)
    assert np.allclose(S_y, S_y[0], rtol=1e-9)           # D identical integrators
    r = simulate(_cfg("linear-aggregated"))
    assert r.arrays["x"].shape[1] == D
    t = r.arrays["t"] / prep.design.tau_s
    x = r.arrays["x"][t >= BURN - 1e-9]
    n = x.shape[0]
    assert n == len(lags)
    est = np.mean(x ** 2)                                  # the mean is 0 exactly: no sample-mean bias
    # Var of the time average of x_i^2 for a Gaussian process: (2 / n^2) sum_{j,l} C(|j - l| h)^2, the D outputs iid
    m = np.arange(n)
    var = 2.0 / n ** 2 * (n * lags[0] ** 2 + 2.0 * np.sum((n - m[1:]) * lags[1:] ** 2)) / D
    z = (est - S_y[0]) / np.sqrt(var)
    assert abs(z) < 4.0, (est, S_y[0], z)
    assert S_y[0] > 3.0 * S_white[0]                       # the 1/f part is most of it ...
    assert (est - S_white[0]) / np.sqrt(var) > 6.0         # ... and the run has it (white noise alone is far off)
    assert r.waveforms["tran"].engine == "linear-aggregated" and r.waveforms["tran"].noise_mode == "aggregated"
