"""spu-sim crosscheck: ngspice and the exact linear engine on one circuit and the same noise (real ngspice)."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import spd_problem
from spu_sim.cli import main

pytestmark = pytest.mark.ngspice


def _write(tmp_path, cfg):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_crosscheck_reports_agreement_run_times_and_a_plot(tmp_path, capsys):
    """The difference is ngspice's own integration error: it scales with reltol (ngspice's error control), so at
    reltol 1e-6 it is below 1e-2 sd and at least 10 times below the reltol 1e-4 run's."""
    diffs = {}
    for reltol in (1e-4, 1e-6):
        cfg = spd_problem(3, 5.0, seed=2, kappa=0.01, t_stop_tau=30.0, reltol=reltol)
        out = tmp_path / f"xc{reltol:g}"
        assert main(["crosscheck", _write(tmp_path, cfg), "--out", str(out)]) == 0
        m = json.loads((out / "crosscheck.json").read_text())
        assert m["reference"] == "ngspice-shared" and m["candidate"] == "linear"
        assert m["op_rel_diff"] < 1e-10
        assert m["reference_s"] > 0 and m["candidate_s"] > 0
        assert (out / "crosscheck.png").is_file() and (out / "netlist.cir").is_file()
        diffs[reltol] = m["path_rms_diff_sd"]
    assert diffs[1e-6] < 1e-2 and diffs[1e-6] < 0.1 * diffs[1e-4], diffs


def test_a_nonlinear_element_is_refused_by_the_linear_engine_and_run_by_ngspice(tmp_path, capsys):
    cfg = spd_problem(2, 5.0, seed=2, kappa=0.01, t_stop_tau=5.0,
                      circuit={"opamp": {"model": "macro", "v_out_max_v": 3.0}})
    cfg["simulation"]["backend"] = "linear"
    assert main(["simulate", _write(tmp_path, cfg), "--out", str(tmp_path / "lin")]) == 2
    err = capsys.readouterr().err
    assert "EO_XAI1" in err and "nonlinear" in err and len(err.strip().splitlines()) == 1
    cfg["simulation"]["backend"] = "ngspice-shared"
    assert main(["simulate", _write(tmp_path, cfg), "--out", str(tmp_path / "ng")]) == 0


def test_the_gaussian_posterior_circuit_agrees_on_both_engines(tmp_path):
    """Issue 13's cross-check: the linear engine on the posterior_gaussian circuit (d = 4, diabetes), the same
    noise as ngspice: .op to round-off, the path within ngspice's integration error (reltol 1e-4: < 1e-2 sd)."""
    from pathlib import Path

    from spu_sim.analyses.crosscheck import run_crosscheck
    from spu_sim.config.base import read_yaml
    data, _ = read_yaml(Path(__file__).resolve().parents[1] / "configs" / "posterior_gaussian_d4.yaml")
    data.pop("reference", None)
    data["simulation"]["t_stop_tau"] = 1.0
    m = run_crosscheck(data, tmp_path / "xc")
    assert m["topology"] == "posterior_gaussian"
    assert m["op_rel_diff"] < 1e-10 and m["path_rms_diff_sd"] < 1e-2, m
