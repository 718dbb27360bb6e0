"""Wires (circuit.wires) on the posterior circuits' arrays: the prior RP, X (RX) and X^T (RT) on real lines.

The realised drift of a small wired Gaussian posterior is rebuilt here from a dense nodal solve of each crossbar's
lines written out in the test (the layout of spu_sim.circuit.ResistorArray); ngspice's .op of the netlist with every
line node equals the realised drift's root, for the Gaussian and the logistic circuit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.linalg import solve_continuous_lyapunov

from spu_sim.compare import error_budget_or_note
from spu_sim.errors import BadInputError
from spu_sim.pipeline import build_circuit, prepare, simulate
from spu_sim.posterior.run import format_summary, run_posterior
from spu_sim.spice import format_spice

R_SEG = 20.0   # ohm per segment against r_min 1 kOhm: a drop of a few %, far above the 1e-10 of the check

GAUSS = {"problem": {"kind": "gaussian_posterior", "X": {"random": {"n": 5, "d": 3, "scale": 0.3, "seed": 1}},
                     "y": {"random": {"theta_scale": 1.0, "seed": 2}}, "prior_cov": 1.0, "noise_var": 1.0},
         "circuit": {"topology": "posterior_gaussian", "integrator": {"r_min_ohm": 1e3}},
         "simulation": {"t_stop_tau": 1.0, "analyses": ["op"], "backend": "linear"}}
LOGIT = {"problem": {"kind": "logistic_posterior",
                     "X": {"dataset": "breast_cancer", "features": ["mean radius", "mean texture"], "n": 6, "seed": 0},
                     "prior_cov": 1.0},
         "circuit": {"topology": "posterior_logistic", "integrator": {"r_min_ohm": 1e3}},
         "simulation": {"t_stop_tau": 1.0, "analyses": ["op"], "backend": "linear"}}


def _cfg(base: dict, r_seg: float | None = R_SEG, backend: str = "linear") -> dict:
    circuit = dict(base["circuit"])
    if r_seg is not None:
        circuit["wires"] = {"r_ohm_per_segment": r_seg}
    return {**base, "circuit": circuit, "simulation": {**base["simulation"], "backend": backend}}


def _nodal_transfer(r_ohm: np.ndarray, r_seg: float) -> np.ndarray:
    """T[i, j]: the current into row terminal i per volt on column terminal j, every other terminal at 0 V, from a
    dense nodal solve of the lines: column line j from its terminal down through (1, j) .. (R, j), row line i from
    its terminal right through (i, 1) .. (i, C), one segment r_seg each, the cell between the two line nodes. Lines
    without any cell are left out (they carry no current)."""
    R, C = r_ohm.shape
    g = np.where(np.isfinite(r_ohm), 1.0 / np.where(np.isfinite(r_ohm), r_ohm, 1.0), 0.0)
    gw = 1.0 / r_seg
    col = lambda i, j: j * R + i            # noqa: E731
    row = lambda i, j: R * C + i * C + j    # noqa: E731
    n = 2 * R * C
    K = np.zeros((n, n))

    def link(a, b, gg):
        K[a, a] += gg
        K[b, b] += gg
        K[a, b] -= gg
        K[b, a] -= gg
    for j in range(C):
        K[col(0, j), col(0, j)] += gw
        for i in range(R - 1):
            link(col(i, j), col(i + 1, j), gw)
    for i in range(R):
        K[row(i, 0), row(i, 0)] += gw
        for j in range(C - 1):
            link(row(i, j), row(i, j + 1), gw)
    for i in range(R):
        for j in range(C):
            link(col(i, j), row(i, j), g[i, j])
    keep = np.zeros(n, dtype=bool)
    for j in range(C):
        keep[[col(i, j) for i in range(R)]] = (g[:, j] > 0).any()
    for i in range(R):
        keep[[row(i, j) for j in range(C)]] = (g[i, :] > 0).any()
    out = np.zeros((R, C))
    for j in range(C):
        if not (g[:, j] > 0).any():
            continue
        rhs = np.zeros(n)
        rhs[col(0, j)] = gw
        v = np.zeros(n)
        v[keep] = np.linalg.solve(K[np.ix_(keep, keep)], rhs[keep])
        out[:, j] = gw * np.array([v[row(i, 0)] for i in range(R)])
    return out


def _signed_transfer(r: np.ndarray, sign: np.ndarray) -> np.ndarray:
    pos, neg = np.where(sign > 0, r, np.inf), np.where(sign < 0, r, np.inf)
    return _nodal_transfer(pos, R_SEG) - _nodal_transfer(neg, R_SEG)


def test_wired_gaussian_posterior_drift_is_the_nodal_solve():
    """A_realized = (tau / C_i)(G_P - G_T diag(R_f) G_X) with every G the lines' transfer, to 1e-10; b likewise."""
    d = prepare(_cfg(GAUSS)).design
    Gp, Gx, Gt = (_signed_transfer(d.r_p, d.sign_p), _signed_transfer(d.r_x, d.sign_x),
                  _signed_transfer(d.r_t, d.sign_t))
    c = (d.tau_s / d.c_f)[:, None]
    A = c * (Gp - Gt @ (d.r_f[:, None] * Gx))
    g_y = np.where(np.isfinite(d.r_y), 1.0 / np.where(np.isfinite(d.r_y), d.r_y, 1.0), 0.0)
    b = -(d.tau_s / d.c_f) * d.s_th * d.v_dac / d.r_in + (d.tau_s / d.c_f) * d.s_th * (Gt @ (d.r_f * g_y * d.v_y))
    assert np.abs(d.A_realized - A).max() <= 1e-10 * np.abs(A).max()
    assert np.abs(d.b_realized - b).max() <= 1e-10 * np.abs(b).max()
    ideal = prepare(_cfg(GAUSS, None)).design.A_realized
    assert np.abs(d.A_realized - ideal).max() > 1e-3 * np.abs(ideal).max()   # the IR drop is there


@pytest.mark.ngspice
@pytest.mark.parametrize("base, backend", [(GAUSS, "ngspice-shared"), (GAUSS, "linear"), (LOGIT, "ngspice-shared")],
                         ids=["gaussian-ngspice", "gaussian-linear", "logistic-ngspice"])   # the sigmoid: ngspice only
def test_op_of_the_wired_posterior_is_the_realised_root(base, backend):
    """Every array on lines in the netlist; the .op is the root of the realised (wired) drift, not the ideal one."""
    cfg = _cfg(base, backend=backend)
    prep = prepare(cfg)
    text = format_spice(build_circuit(prep))
    d = prep.design
    for prefix in ("RP", "RX", "RT"):
        assert f"\n{prefix}1_1 lc_" in text          # cross-points between line nodes
    assert text.count("\nRWc_") == sum(arr.r_ohm.shape[0] * int((np.isfinite(arr.r_ohm).any(axis=0)).sum())
                                       for arrs in d.wired_arrays.values() for _, arr in arrs)
    r = simulate(cfg)
    root = np.linalg.solve(r["A_realized"], r["b_realized"])
    assert np.allclose(r["x_op"], root, rtol=1e-6, atol=1e-9 * np.abs(root).max())
    ideal = prepare(_cfg(base, None)).design
    assert np.abs(root - np.linalg.solve(ideal.A_realized, ideal.b_realized)).max() > 1e-4 * np.abs(root).max()


@pytest.mark.parametrize("r_seg, key", [(-1.0, "r_ohm_per_segment"), (400.0, "circuit.wires.r_ohm_per_segment")])
def test_bad_posterior_wires_are_refused_before_any_engine(r_seg, key):
    with pytest.raises(BadInputError) as e:
        prepare(_cfg(GAUSS, r_seg))
    assert key in str(e.value)


def test_posterior_error_budget_by_cause(tmp_path):
    """spu-sim posterior's budget (spu_sim.compare.error_budget): with wires the only circuit cause, its mean share
    is the wired circuit's DC root against the exact posterior mean and its covariance share the Lyapunov solution
    of the realised drift (built here) against A^-1; the ideal circuit's noise-free run has no error beyond its
    transient; table, metrics.json and budget.png; the logistic circuit (sigmoid: ngspice only) gets a note."""
    cfg = _cfg({**GAUSS, "problem": {**GAUSS["problem"], "X": {"random": {"n": 5, "d": 3, "scale": 0.3, "seed": 1}}},
                "simulation": {"t_stop_tau": 60.0, "seed": 3, "noise_oversample": 10, "backend": "linear"}})
    m = run_posterior(cfg, tmp_path / "g")
    d = prepare(cfg).design
    A, b = d.problem.A, d.problem.b
    mean = np.linalg.solve(A, b)
    root = np.linalg.solve(d.A_realized, d.b_realized)
    assert m["budget_mean_parasitics"] == pytest.approx(np.linalg.norm(root - mean) / np.linalg.norm(mean), rel=1e-6)
    S = solve_continuous_lyapunov(-d.A_realized, -np.diag(2.0 * d.kappa_each))
    cov = np.linalg.inv(A)
    assert m["budget_cov_parasitics"] == pytest.approx(np.linalg.norm(S - cov) / np.linalg.norm(cov), rel=1e-6)
    assert m["budget_mean_finite_time"] < 1e-3 < m["budget_mean_sampling"]
    assert "budget_mean_quantisation_tolerance" not in m and "budget_op_parasitics" not in m
    for est in ("mean", "cov"):
        shares = [v for k, v in m.items() if k.startswith(f"budget_{est}_") and k.rsplit("_", 1)[-1] not in ("sum", "total")]
        assert m[f"budget_{est}_sum"] == pytest.approx(sum(shares), rel=1e-12)
        assert m[f"budget_{est}_total"] == m[f"{est}_rel_err"]
    assert json.loads((tmp_path / "g" / "metrics.json").read_text())["budget_cov_parasitics"] == m["budget_cov_parasitics"]
    assert (tmp_path / "g" / "budget.png").stat().st_size > 0
    assert "error budget" in format_summary(m) and "parasitics" in format_summary(m)
    logit = _cfg({**LOGIT, "simulation": {"t_stop_tau": 10.0, "backend": "ngspice-shared"}})
    note = error_budget_or_note(prepare(logit), {"mean_rel_err": 0.1, "cov_rel_err": 0.1, "window_tau": 10.0})
    assert list(note) == ["budget_note"] and "BSIG1" in note["budget_note"]
