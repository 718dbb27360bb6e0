"""The error budget of compare (spu_sim.compare.error_budget): each cause measured alone on the linear engine.

A run with one cause only must have that cause's share equal to its total error (the share is measured on the
same circuit, so only a wrong "alone" configuration -- a cause dropped or another one kept -- breaks it), and no
other circuit cause listed. Finite time and sampling: a noise-free ideal run's time-average error is its
finite-time share exactly; with noise the total and the sampling share differ by at most the finite-time share
(triangle inequality, the two shares being the parts of one difference).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from spu_sim.compare import BUDGET_CAUSES, compare, format_budget

A4 = [[3.0, -0.8, 0.4, 0.0], [-0.8, 2.5, -0.6, 0.3], [0.4, -0.6, 2.0, -0.5], [0.0, 0.3, -0.5, 1.5]]
B4 = [1.0, -0.5, 0.25, 0.8]
CIRCUIT_CAUSES = [n for n, _ in BUDGET_CAUSES.items()]


def _cfg(circuit: dict, kappa=0.0, t_stop=20.0, analyses=("op", "tran"), backend="linear") -> dict:
    return {"problem": {"matrix": A4, "vector": B4, "kappa": kappa}, "circuit": {"integrator": {"r_min_ohm": 1e3}, **circuit},
            "simulation": {"t_stop_tau": t_stop, "analyses": list(analyses), "backend": backend, "seed": 4},
            "readout": {"sample_dt_tau": None if kappa or "tran" not in analyses else 0.05}}


@pytest.mark.parametrize("cause, circuit", [
    ("parasitics", {"wires": {"r_ohm_per_segment": 20.0}}),
    ("quantisation_tolerance", {"tolerance": {"local_rel": 0.02, "seed": 5}}),
    ("opamp", {"opamp": {"model": "macro", "gain": 100.0, "gbw_hz": None, "offset_v": 1e-3}}),
])
def test_one_cause_only_has_its_share_equal_to_the_total(tmp_path, cause, circuit):
    m = compare(_cfg(circuit, analyses=("op",)), tmp_path / "o")
    assert m["op_rel_err"] > 1e-6                                # the cause does change the solution
    assert m[f"budget_op_{cause}"] == pytest.approx(m["op_rel_err"], rel=1e-9)
    assert m["budget_op_sum"] == pytest.approx(m["budget_op_total"], rel=1e-9)
    others = [c for c in CIRCUIT_CAUSES if c != cause]
    assert not [c for c in others if f"budget_op_{c}" in m]     # nothing else is listed
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert saved[f"budget_op_{cause}"] == m[f"budget_op_{cause}"]
    assert (tmp_path / "o" / "budget.png").is_file()
    assert "sum of the shares" in format_budget(m)


def test_finite_time_alone_and_sampling(tmp_path):
    short = compare(_cfg({}, t_stop=4.0), tmp_path / "a")        # noise-free and short: finite time only
    assert short["mean_rel_err"] > 1e-3
    assert short["budget_mean_finite_time"] == pytest.approx(short["mean_rel_err"], rel=1e-9)
    assert "budget_mean_sampling" not in short
    noisy = compare(_cfg({}, kappa=0.01, t_stop=40.0), tmp_path / "b")
    ft, sa = noisy["budget_mean_finite_time"], noisy["budget_mean_sampling"]
    assert sa > 10 * ft                                           # sampling dominates the long noisy run
    assert abs(noisy["mean_rel_err"] - sa) <= ft * (1 + 1e-9) + 1e-15
    assert noisy["budget_cov_sampling"] == pytest.approx(noisy["cov_rel_err"], rel=1e-9)   # ideal circuit: all of it


@pytest.mark.ngspice
def test_budget_of_an_ngspice_run_is_measured_on_the_linear_engine(tmp_path):
    """The run on ngspice with wires only: its .op error and the linear engine's share agree (exact engine, the
    same wired netlist), to ngspice's DC accuracy."""
    m = compare(_cfg({"wires": {"r_ohm_per_segment": 20.0}}, analyses=("op",), backend="ngspice-shared"), tmp_path / "o")
    assert m["engine"] == "ngspice-shared"
    assert m["budget_op_parasitics"] == pytest.approx(m["op_rel_err"], rel=1e-6)


def test_several_causes_are_each_listed(tmp_path):
    m = compare(_cfg({"wires": {"r_ohm_per_segment": 5.0}, "tolerance": {"local_rel": 0.01, "seed": 3},
                      "opamp": {"model": "macro", "gain": 1e3, "gbw_hz": None, "offset_v": 1e-3},
                      "temperature": {"temp_c": 40.0}}, kappa=0.01),
                tmp_path / "o")
    assert "budget_op_intrinsic_noise" not in m      # an operating temperature alone is no cause
    for c in ("parasitics", "quantisation_tolerance", "opamp"):
        assert m[f"budget_op_{c}"] > 0 and m[f"budget_cov_{c}"] >= 0
    shares = [m[f"budget_mean_{c}"] for c in ("parasitics", "quantisation_tolerance", "opamp", "finite_time", "sampling")]
    assert m["budget_mean_sum"] == pytest.approx(sum(shares), rel=1e-12)
    assert np.isfinite(m["budget_mean_total"])


def test_output_impedance_and_input_capacitance_are_in_the_op_amp_share(tmp_path):
    """r_out_ohm (with its pole keys) and c_in_farad are the op-amp's own (characterise measures them with its gain):
    the op-amp share is the macro op-amp with them, ||x(gain, r_out, c_in) - x*|| / ||x*||, checked against a run
    of the linear engine made here, and there is no parasitics row (no wires; before, r_out / c_in were a parasitics
    share and the op-amp share left r_out's DC error out)."""
    from spu_sim.pipeline import simulate
    amp = {"model": "macro", "gain": 100.0, "gbw_hz": None, "r_out_ohm": 1e3, "r_out_hf_ohm": 100.0,
           "r_out_pole_hz": 1e3, "c_in_farad": 1e-12}
    m = compare(_cfg({"opamp": amp}, analyses=("op",)), tmp_path / "o")
    with_r = simulate(_cfg({"opamp": amp}, analyses=("op",)))
    without = simulate(_cfg({"opamp": {k: amp[k] for k in ("model", "gain", "gbw_hz")}}, analyses=("op",)))
    x_star = with_r["x_star"]
    expect = np.linalg.norm(with_r["x_op"] - x_star) / np.linalg.norm(x_star)
    assert np.linalg.norm(with_r["x_op"] - without["x_op"]) > 1e-3 * np.linalg.norm(without["x_op"] - x_star)
    assert m["budget_op_opamp"] == pytest.approx(expect, rel=1e-9)
    assert "budget_op_parasitics" not in m


def test_save_nodes_of_the_run_do_not_stop_the_budget(tmp_path):
    """simulation.save_nodes names vectors of the run's own circuit (here the macro op-amp's output source VOI1,
    which the cause-alone circuits do not have): the budget runs keep no waveforms, so the budget is still there."""
    cfg = _cfg({"opamp": {"model": "macro", "gain": 100.0, "gbw_hz": None}, "tolerance": {"local_rel": 0.02, "seed": 5}},
               analyses=("op",))
    cfg["simulation"]["save_nodes"] = ["sum1", "i(voi1)"]
    m = compare(cfg, tmp_path / "o")
    assert "budget_note" not in m
    assert m["budget_op_opamp"] > 0 and m["budget_op_quantisation_tolerance"] > 0


def test_compare_prints_why_there_is_no_budget(tmp_path, capsys, monkeypatch):
    """A run whose budget cannot be measured says why on the terminal (not only in metrics.json)."""
    from spu_sim import compare as compare_mod
    from spu_sim.cli import main
    from spu_sim.errors import BadInputError
    import yaml

    def refuse(*a, **k):
        raise BadInputError("element X1 is nonlinear: the linear engine cannot run it exactly")
    monkeypatch.setattr(compare_mod, "error_budget", refuse)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_cfg({"tolerance": {"local_rel": 0.02, "seed": 5}}, analyses=("op",))))
    assert main(["compare", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "no error budget: element X1 is nonlinear" in out


def test_a_swing_limit_leaves_the_budget_standing_and_is_named(tmp_path):
    """Every realistic macromodel has an output-swing limit, which the linear engine cannot run: the budget leaves it
    out and says so, instead of failing whole (a limit far above the swing changes nothing: the op share is the
    total, as without it)."""
    cfg = _cfg({"opamp": {"model": "macro", "gain": 100.0, "gbw_hz": None, "v_out_max_v": 5.0}}, analyses=("op",),
               backend="ngspice-subprocess")
    m = compare(cfg, tmp_path / "o")
    assert "budget_note" not in m
    assert m["budget_op_opamp"] == pytest.approx(m["op_rel_err"], rel=1e-6)
    assert "v_out_max_v" in m["budget_left_out"] and "v_out_max_v" in format_budget(m)


def test_budget_plot_gives_each_share_its_value():
    """Shares within one decade (0.16 to 0.34) leave a log axis without a labelled tick: each bar carries its value."""
    from spu_sim.compare import budget_figure
    from spu_sim.plotting import pyplot
    m = {"engine": "linear", "budget_cov_quantisation_tolerance": 0.1632, "budget_cov_sampling": 0.1762,
         "budget_cov_sum": 0.3394, "budget_cov_total": 0.1786}
    fig = budget_figure(m)
    texts = {t.get_text() for t in fig.axes[0].texts}
    pyplot().close(fig)
    assert {"0.163", "0.176", "0.339", "0.179"} <= texts
