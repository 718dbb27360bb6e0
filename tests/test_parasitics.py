"""Parasitics of the arrays (circuit.wires) and of the op-amp (r_out_ohm with its optional pole r_out_hf_ohm /
r_out_pole_hz, c_in_farad).

The IR-drop check solves the wired 4 x 4 crossbars node by node here, written out from the layout of
spu_sim.circuit.ResistorArray (column lines from the drivers at the top, row lines from the summing nodes at the
left, one segment between neighbouring cross-points), and compares A_realized with it; ngspice's .op of the
netlist with every line node must equal A_realized^-1 b_realized.
"""

from __future__ import annotations

import numpy as np
import pytest

from spu_sim.circuit import ResistorArray
from spu_sim.errors import BadInputError
from spu_sim.pipeline import build_circuit, prepare, simulate
from spu_sim.spice import format_spice

A4 = [[3.0, -0.8, 0.4, 0.0], [-0.8, 2.5, -0.6, 0.3], [0.4, -0.6, 2.0, -0.5], [0.0, 0.3, -0.5, 1.5]]
B4 = [1.0, -0.5, 0.25, 0.8]
R_SEG = 20.0    # ohm per segment: r_seg G_cell d^2 / 2 = 20 / 1e3 * 8 = 16 %: a drop far above 1e-10


def _cfg(wires=None, opamp=None, backend="linear", analyses=("op",), t_stop=1.0, kappa=0.0, reltol=1e-4) -> dict:
    circuit = {"integrator": {"r_min_ohm": 1e3}}
    if wires is not None:
        circuit["wires"] = wires
    if opamp is not None:
        circuit["opamp"] = opamp
    return {"problem": {"matrix": A4, "vector": B4, "kappa": kappa}, "circuit": circuit,
            "simulation": {"t_stop_tau": t_stop, "analyses": list(analyses), "backend": backend, "reltol": reltol},
            "readout": {"sample_dt_tau": 0.05 if "tran" in analyses else None}}


def _nodal_transfer(r_ohm: np.ndarray, r_seg: float) -> np.ndarray:
    """G_eff[i, j]: the current into row terminal i per volt on column terminal j (all other terminals at 0 V),
    from a dense nodal solve of the lines written out here (not ResistorArray's code)."""
    R, C = r_ohm.shape
    g = np.where(np.isfinite(r_ohm), 1.0 / r_ohm, 0.0)
    gw = 1.0 / r_seg
    col = lambda i, j: j * R + i            # noqa: E731  column-line node at cross-point (i, j)
    row = lambda i, j: R * C + i * C + j    # noqa: E731  row-line node
    n = 2 * R * C
    K = np.zeros((n, n))

    def link(a, b, gg):
        K[a, a] += gg
        K[b, b] += gg
        K[a, b] -= gg
        K[b, a] -= gg
    for j in range(C):
        K[col(0, j), col(0, j)] += gw               # segment from the driver (a terminal)
        for i in range(R - 1):
            link(col(i, j), col(i + 1, j), gw)
    for i in range(R):
        K[row(i, 0), row(i, 0)] += gw               # segment to the summing node (a terminal)
        for j in range(C - 1):
            link(row(i, j), row(i, j + 1), gw)
    for i in range(R):
        for j in range(C):
            link(col(i, j), row(i, j), g[i, j])
    out = np.zeros((R, C))
    for j in range(C):
        rhs = np.zeros(n)
        rhs[col(0, j)] = gw                         # 1 V on column terminal j
        v = np.linalg.solve(K, rhs)
        out[:, j] = gw * np.array([v[row(i, 0)] for i in range(R)])   # current into row terminal i (held at 0)
    return out


def test_port_admittance_without_wires_is_the_element_values():
    r = np.array([[1e3, np.inf], [2e3, 4e3]])
    Y = ResistorArray("R", ("s1", "s2"), ("x1", "x2"), r).port_admittance()
    assert np.allclose(Y[:2, 2:], -np.array([[1e-3, 0], [5e-4, 2.5e-4]]), rtol=0, atol=1e-18)
    assert np.allclose(Y.sum(axis=1), 0, atol=1e-18)


def test_ir_drop_a_realized_equals_a_nodal_solve():
    """4 x 4 with wires: A_realized = alpha (C_nom / C_i)(G_pos - G_neg) from the nodal solve, to 1e-10."""
    d = prepare(_cfg({"r_ohm_per_segment": R_SEG})).design
    pos, neg = np.where(d.sign > 0, d.r_ohm, np.inf), np.where(d.sign < 0, d.r_ohm, np.inf)
    expect = d.alpha * (d.c_farad / d.c_f_farad)[:, None] * (_nodal_transfer(pos, R_SEG) - _nodal_transfer(neg, R_SEG))
    assert np.abs(d.A_realized - expect).max() <= 1e-10 * np.abs(expect).max()
    ideal = prepare(_cfg()).design.A_realized
    assert np.abs(d.A_realized - ideal).max() > 1e-3 * np.abs(ideal).max()   # the drop is there, and large


@pytest.mark.ngspice
@pytest.mark.parametrize("backend", ["ngspice-shared", "linear"])
def test_op_of_the_wired_netlist_equals_a_realized_inverse_b(backend):
    cfg = _cfg({"r_ohm_per_segment": R_SEG}, backend=backend)
    prep = prepare(cfg)
    text = format_spice(build_circuit(prep))
    assert text.count("\nRWc_") == 2 * 16 and text.count("\nRWr_") == 2 * 16   # both crossbars on lines
    r = simulate(cfg)
    x = np.linalg.solve(r["A_realized"], r["b_realized"])
    assert np.allclose(r["x_op"], x, rtol=1e-7, atol=1e-12)
    assert np.abs(x - np.linalg.solve(A4, B4)).max() > 1e-3   # and it is not the ideal solution


@pytest.mark.ngspice
def test_wired_transient_linear_engine_follows_ngspice():
    """Noise-free transient with wires and wire capacitance (line nodes are states of the linear engine): the
    difference to ngspice shrinks with reltol as in the crosscheck tests, and at reltol 1e-8 is far below the
    wires' own effect on the path. (Sample t = 0 is left out: ngspice's first output point differs by 3e-4 with
    and without wires alike.)"""
    w = {"r_ohm_per_segment": R_SEG, "c_farad_per_segment": 1e-13}
    err = {}
    for reltol in (1e-4, 1e-8):
        out = {b: simulate(_cfg(w, backend=b, analyses=("tran",), t_stop=3.0, reltol=reltol))["x"][1:]
               for b in ("linear", "ngspice-shared")}
        err[reltol] = np.abs(out["linear"] - out["ngspice-shared"]).max()
    effect = np.abs(out["linear"] - simulate(_cfg(None, analyses=("tran",), t_stop=3.0))["x"][1:]).max()
    assert err[1e-8] < err[1e-4] / 30 and err[1e-8] < effect / 100, (err, effect)


@pytest.mark.ngspice
def test_macro_with_r_out_and_c_in_matches_between_engines():
    """r_out / c_in are in the netlist (ngspice) and in the linear engine's exact model: same .op, and the .op
    is A_effective^-1 b_effective within r_out / A0 (the quasi-static model leaves r_out out)."""
    op = {"model": "macro", "gain": 1e4, "gbw_hz": 1e7, "r_out_ohm": 50.0, "c_in_farad": 2e-12}
    cfg = _cfg({"r_ohm_per_segment": R_SEG}, opamp=op)
    text = format_spice(build_circuit(prepare(cfg)))
    assert "\nROUTI1 " in text and "\nCINI1 " in text
    x = {b: simulate(_cfg({"r_ohm_per_segment": R_SEG}, opamp=op, backend=b))["x_op"] for b in ("linear", "ngspice-shared")}
    assert np.allclose(x["linear"], x["ngspice-shared"], rtol=1e-7, atol=1e-12)
    r = simulate(cfg)
    x_eff = np.linalg.solve(r["A_effective"], r["b_effective"])
    assert np.abs(r["x_op"] - x_eff).max() < 10 * 50.0 / 1e3 / 1e4 * np.abs(x_eff).max()


#: a macro op-amp whose output impedance falls from 5 kohm to 100 ohm above 20 kHz (a Miller op-amp's shape)
ZOUT_POLE = {"model": "macro", "gain": 1e3, "gbw_hz": 2e7, "r_out_ohm": 5e3, "r_out_hf_ohm": 100.0, "r_out_pole_hz": 2e4}


@pytest.mark.ngspice
def test_macro_output_impedance_pole_in_the_netlist_and_both_engines():
    """r_out_hf_ohm / r_out_pole_hz: every op-amp's output impedance is ROUT (r_hf) in series with RZO || CZO, RZO =
    r_out - r_hf and CZO = 1 / (2 pi f_p RZO), so Z(f) = r_hf + (r_out - r_hf) / (1 + j f / f_p). At DC it is r_out:
    the .op equals the design with r_out at every frequency (both engines, to solver precision). In the transient the
    pole matters (here the load currents of a 1 kohm array through 5 kohm against 100 ohm), and the linear engine
    follows ngspice as for the wires: the difference shrinks with reltol and at 1e-8 is far below the pole's effect."""
    flat = {k: v for k, v in ZOUT_POLE.items() if k not in ("r_out_hf_ohm", "r_out_pole_hz")}
    elements = {e.name: e for e in build_circuit(prepare(_cfg(opamp=ZOUT_POLE))).elements if hasattr(e, "name")}
    assert elements["ROUTI1"].r_ohm == 100.0 and elements["RZOI1"].r_ohm == 4900.0
    assert elements["CZOI1"].c_farad == pytest.approx(1 / (2 * np.pi * 2e4 * 4900.0), rel=1e-12)
    x = {(b, name): simulate(_cfg(opamp=op, backend=b))["x_op"]
         for b in ("linear", "ngspice-shared") for name, op in (("pole", ZOUT_POLE), ("flat", flat))}
    for key in x:
        assert np.allclose(x[key], x[("linear", "flat")], rtol=1e-7, atol=1e-12), key
    err = {}
    for reltol in (1e-4, 1e-8):
        out = {b: simulate(_cfg(opamp=ZOUT_POLE, backend=b, analyses=("tran",), t_stop=3.0, reltol=reltol))["x"][1:]
               for b in ("linear", "ngspice-shared")}
        err[reltol] = np.abs(out["linear"] - out["ngspice-shared"]).max()
    effect = np.abs(out["linear"] - simulate(_cfg(opamp=flat, analyses=("tran",), t_stop=3.0))["x"][1:]).max()
    assert err[1e-8] < err[1e-4] / 30 and err[1e-8] < effect / 100, (err, effect)


def test_defaults_leave_the_netlist_unchanged():
    base = _cfg()
    zero = _cfg({"r_ohm_per_segment": 0.0, "c_farad_per_segment": 0.0},
                opamp={"model": "ideal", "r_out_ohm": 0.0, "c_in_farad": 0.0})
    assert format_spice(build_circuit(prepare(base))) == format_spice(build_circuit(prepare(zero)))


@pytest.mark.parametrize("wires, key", [
    ({"r_ohm_per_segment": -1.0}, "r_ohm_per_segment"),
    ({"r_ohm_per_segment": float("nan")}, "r_ohm_per_segment"),
    ({"r_ohm_per_segment": float("inf")}, "r_ohm_per_segment"),
    ({"c_farad_per_segment": 1e-12}, "r_ohm_per_segment"),
    ({"r_ohm_per_segment": 200.0}, "circuit.wires.r_ohm_per_segment"),   # 4 x 200 > 0.5 x 1 kOhm: unrealisable
])
def test_bad_wires_are_refused_before_any_engine(wires, key):
    with pytest.raises(BadInputError) as e:
        prepare(_cfg(wires))
    assert key in str(e.value)


@pytest.mark.parametrize("opamp, key", [
    ({"model": "macro", "r_out_ohm": -1.0}, "r_out_ohm"),
    ({"model": "macro", "c_in_farad": float("nan")}, "c_in_farad"),
    ({"model": "macro", "r_out_ohm": 1e3, "r_out_hf_ohm": 10.0}, "r_out_pole_hz"),            # one without the other
    ({"model": "macro", "r_out_ohm": 1e3, "r_out_hf_ohm": 2e3, "r_out_pole_hz": 1e3}, "r_out_hf_ohm (2000)"),
    ({"model": "macro", "r_out_ohm": 1e3, "r_out_hf_ohm": 10.0, "r_out_pole_hz": -1.0}, "r_out_pole_hz"),
])
def test_bad_opamp_parasitics_are_refused(opamp, key):
    with pytest.raises(BadInputError) as e:
        prepare(_cfg(opamp=opamp))
    assert key in str(e.value)
    assert "\n" not in str(e.value)


def _factored_cfg(wires=None, backend="linear", n=10, m=4) -> dict:
    circuit = {"topology": "opamp_factored", "integrator": {"r_min_ohm": 1e3}}
    if wires is not None:
        circuit["wires"] = wires
    return {"problem": {"factors": {"J": {"random": {"kind": "normal", "rows": m, "cols": n, "scale": 0.3, "seed": 1}},
                                    "H": {"random": {"kind": "spd", "d": m, "condition": 4, "scale": 0.5, "seed": 2}},
                                    "damping": 1.0},
                        "vector": {"random": {"kind": "normal", "seed": 3}}, "kappa": 0.0},
            "circuit": circuit, "simulation": {"t_stop_tau": 1.0, "analyses": ["op"], "backend": backend}}


def test_factored_arrays_on_wires_transfer_by_the_nodal_solve():
    """J array of opamp_factored on wires: J_realized = -P_u s_u / s_x with P_u from the lines' transfer, which the
    test recomputes with its own nodal solve (ideal summers: V_u = -(G_pos - G_neg) V_x / G_f)."""
    d = prepare(_factored_cfg({"r_ohm_per_segment": R_SEG})).design
    pos = np.where(d.s_j > 0, d.r_j_ohm, np.inf)
    neg = np.where(d.s_j > 0, np.inf, d.r_j_ohm)
    g = _nodal_transfer(pos, R_SEG) - _nodal_transfer(neg, R_SEG)
    expect = g * d.r_fu_ohm[:, None] * d.s_u / d.s_x
    assert np.abs(d.J_realized - expect).max() <= 1e-10 * np.abs(expect).max()
    assert np.abs(d.J_realized - d.problem.J).max() > 1e-3 * np.abs(d.problem.J).max()


@pytest.mark.ngspice
@pytest.mark.parametrize("backend", ["ngspice-shared", "linear"])
def test_factored_op_on_wires_equals_a_realized_inverse_b(backend):
    cfg = _factored_cfg({"r_ohm_per_segment": R_SEG}, backend=backend)
    text = format_spice(build_circuit(prepare(cfg)))
    assert "\nRWc_x1_su1 " in text and "\nRWr_sz1_u1 " in text and "\nRWr_sum1_z1 " in text   # J, H, J^T on lines
    r = simulate(cfg)
    x = np.linalg.solve(r["A_realized"], r["b_realized"])
    assert np.allclose(r["x_op"], x, rtol=1e-7, atol=1e-12)
    assert np.abs(x - r["x_star"]).max() > 1e-3 * np.abs(r["x_star"]).max()


def test_array_limits_experiment_small(tmp_path):
    """The experiment at toy size: the error grows with the wire resistance, an unrealisable wire is a NaN point with
    its reason, the largest N within the budget is read from the saved points, and the plot exists."""
    import json

    import yaml
    from spu_sim.experiments import run_experiment
    cfg = {"problem": {"matrix": [[1.0]], "vector": [1.0], "kappa": 1e-4},
           "circuit": {"integrator": {"r_min_ohm": 1e3, "r_max_ohm": 1e12}}, "simulation": {"t_stop_tau": 100.0},
           "experiment": {"n": [4, 8], "r_ohm_per_segment": [0.0, 5.0, 100.0], "noise_values": [1e-6, 1e-3],
                          "error_budget": 0.01, "factored": {"factors_file": None, "n": [6], "m": 3}}}
    path = tmp_path / "limits.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_experiment("array_limits", path, tmp_path / "out")
    z = np.load(tmp_path / "out" / "array_limits.npz")
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    dense = (z["family"] == "dense") & (z["n"] == 8) & (z["noise"] == 1e-6)
    err = dict(zip(z["r_ohm_per_segment"][dense], z["error_rel"][dense]))
    assert err[0.0] < 1e-3 < err[5.0]                 # ideal lines: noise only; 5 ohm segments: IR drop
    assert np.isnan(err[100.0])                       # 8 x 100 ohm > 0.5 x 1 kOhm: refused, not simulated
    for e in s["largest_n"]:
        sel = (z["family"] == e["family"]) & (z["r_ohm_per_segment"] == e["r_ohm_per_segment"]) & (z["noise"] == e["noise"])
        ok = z["n"][sel][z["error_rel"][sel] <= 0.01]
        assert e["n_max"] == (int(ok.max()) if ok.size else 0)
        assert e["at_grid_edge"] == (ok.size > 0 and ok.max() == z["n"][sel].max())
    assert (tmp_path / "out" / "array_limits.png").is_file()
    assert set(z["family"]) == {"dense", "factored"}


@pytest.mark.parametrize("circuit, key", [
    ({"wires": {"r_ohm_per_segment": -0.5}}, "r_ohm_per_segment"),
    ({"wires": {"r_ohm_per_segment": 400.0}}, "circuit.wires.r_ohm_per_segment"),
    ({"topology": "opamp_factored", "wires": {"r_ohm_per_segment": 400.0}}, "circuit.wires.r_ohm_per_segment"),
    ({"opamp": {"model": "macro", "r_out_ohm": float("inf")}}, "r_out_ohm"),
])
def test_cli_exit_2_names_the_key_before_any_engine(tmp_path, capsys, circuit, key):
    """The CLI refuses with exit code 2 and one line naming the key and the fix; compare writes nothing."""
    import yaml
    from spu_sim.cli import main
    cfg = _factored_cfg() if circuit.get("topology") == "opamp_factored" else _cfg()
    cfg["circuit"].update(circuit)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main(["compare", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and key in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "result.npz").exists()
