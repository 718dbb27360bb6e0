"""The shipped example netlists (netlists/<name>/) equal a fresh generation from netlists/sources/ and run
in plain `ngspice -b`, where their .op equals the design's realised (or effective) equilibrium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from spu_sim.engines import get_engine
from spu_sim.pipeline import prepare, write_netlist

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "netlists" / "sources").glob("*.yaml"))
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
#: numbers of a fresh generation may differ from the shipped ones in the last digits: LAPACK and numpy releases
#: round differently (numpy 2.4 wrote one digit fewer of a design value than the release the files were made with)
NUMBER_RTOL = 1e-12


def same_text_up_to_rounding(fresh: str, shipped: str) -> bool:
    """The same text, except numbers that agree to NUMBER_RTOL (relative; absolute 1e-300 for zeros)."""
    if NUMBER.sub("#", fresh) != NUMBER.sub("#", shipped):
        return False
    a = np.array([float(x) for x in NUMBER.findall(fresh)])
    b = np.array([float(x) for x in NUMBER.findall(shipped)])
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= NUMBER_RTOL * np.abs(b) + 1e-300))


def test_the_comparison_rejects_a_changed_value_or_word():
    assert same_text_up_to_rounding("R1 a b 1000.0000000000001", "R1 a b 1000")
    assert not same_text_up_to_rounding("R1 a b 1000.001", "R1 a b 1000")
    assert not same_text_up_to_rounding("R1 a c 1000", "R1 a b 1000")


@pytest.mark.parametrize("src", SOURCES, ids=[s.stem for s in SOURCES])
def test_shipped_netlist_is_current(src, tmp_path):
    write_netlist(src, tmp_path)
    shipped = ROOT / "netlists" / src.stem
    for f in shipped.iterdir():
        assert same_text_up_to_rounding((tmp_path / f.name).read_text(), f.read_text()), \
            f"{f} is stale: run scripts/make_netlists"


@pytest.mark.ngspice
@pytest.mark.parametrize("src", SOURCES, ids=[s.stem for s in SOURCES])
def test_shipped_netlist_runs_in_plain_ngspice(src, tmp_path):
    import shutil
    shutil.copytree(ROOT / "netlists" / src.stem, tmp_path / "n")
    plots = get_engine("ngspice-subprocess").run_netlist(tmp_path / "n" / "netlist.cir")
    prep = prepare(src)
    design = prep.design
    sde = design.effective_sde() if hasattr(design, "effective_sde") else design.realized_sde()
    x_eq = np.linalg.solve(sde.K, sde.f)[: design.d]
    x_op = design.to_problem_units(np.array([plots["op"].node(n)[0] for n in design.readout_nodes]))
    assert np.allclose(x_op, x_eq, rtol=1e-6, atol=1e-9), (x_op, x_eq)
    if "tran" in plots:
        assert plots["tran"].axis[-1] == pytest.approx(prep.cfg.simulation.t_stop_tau * design.tau_s, rel=1e-9)
    assert json.loads((tmp_path / "n" / "design.json").read_text())["d"] == design.d
