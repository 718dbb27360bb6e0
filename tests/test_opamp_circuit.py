"""The op-amp integrator SPU in real ngspice against the exact OU reference.

Tolerances come from theory: the time average has covariance ideal.time_average_cov (about
2 kappa A^-2 / T), each sample-covariance entry has variance ideal.sample_cov_var; the thresholds are
chi-square / normal quantiles at 1e-4, fixed seeds.
"""

from __future__ import annotations

import json

import re
import shutil
import subprocess

import numpy as np
import pytest
from scipy import stats

from spu_sim import ideal
from spu_sim.engines import get_engine
from spu_sim.engines.raw import parse_raw
from spu_sim.errors import SimulationError
from spu_sim.pipeline import prepare, simulate, write_netlist

from spu_sim.parts.noise_dacs import PRE_EMPHASIS
from conftest import spd_problem

pytestmark = pytest.mark.ngspice


def test_op_equals_solution_at_condition_1e3():
    cfg = spd_problem(8, 1e3, seed=3, kappa=0.0, analyses=["op"])
    cfg["circuit"] = {"integrator": {"r_max_ohm": 1e10}}
    r = simulate(cfg)
    assert np.linalg.cond(r["A"]) == pytest.approx(1e3, rel=1e-6)
    err = np.linalg.norm(r["x_op"] - r["x_star"]) / np.linalg.norm(r["x_star"])
    assert err < 1e-6, err


def test_scaling_keeps_tiny_and_huge_problems_accurate():
    """Entries of 1e4 and a right-hand side of 1e-3 map to the same voltages as an O(1) problem."""
    A = np.array([[3.0, -1.0, 0.5], [-1.0, 2.5, -0.7], [0.5, -0.7, 2.0]])
    b = np.array([1.0, -0.5, 0.25])
    base = {"problem": {"kappa": 0.0}, "simulation": {"analyses": ["op"]}}
    small = simulate(base | {"problem": {"matrix": A.tolist(), "vector": b.tolist(), "kappa": 0.0}})
    big = simulate(base | {"problem": {"matrix": (1e4 * A).tolist(), "vector": (1e-3 * b).tolist(), "kappa": 0.0}})
    x_big = np.linalg.solve(1e4 * A, 1e-3 * b)
    assert np.linalg.norm(big["x_op"] - x_big) / np.linalg.norm(x_big) < 1e-12
    assert np.linalg.norm(small["x_op"] - np.linalg.solve(A, b)) / np.linalg.norm(small["x_op"]) < 1e-12
    # same circuit up to the scale factors
    pb, ps = prepare(base | {"problem": {"matrix": (1e4 * A).tolist(), "vector": (1e-3 * b).tolist(), "kappa": 0.0}}), \
        prepare(base | {"problem": {"matrix": A.tolist(), "vector": b.tolist(), "kappa": 0.0}})
    assert np.allclose(pb.design.r_ohm, ps.design.r_ohm) and np.allclose(pb.design.v_dac_v, ps.design.v_dac_v)


@pytest.fixture(scope="module")
def transient_d4(tmp_path_factory):
    cfg = spd_problem(4, 5.0, seed=1, kappa=0.05, t_stop_tau=400.0, burn_in_tau=20.0)
    out = tmp_path_factory.mktemp("tran")
    return cfg, simulate(cfg, out), out


def test_transient_mean_and_cov_match_ou_within_sampling_error(transient_d4):
    cfg, r, _ = transient_d4
    prep = prepare(cfg)
    sde = prep.design.target_sde()
    T = (r["t"][-1] - float(r["burn_in_s"])) / float(r["tau_s"])
    # mean: (xbar - x*)^T V^-1 (xbar - x*) ~ chi2(d), V = covariance of a time average over T
    V = ideal.time_average_cov(sde, T)
    diff = r["x_mean"] - ideal.stationary_mean(sde)
    assert diff @ np.linalg.solve(V, diff) < stats.chi2.ppf(1 - 1e-4, 4)
    # covariance: each entry within 4.4 sigma (normal two-sided 1e-4 per entry, 10 entries)
    S = ideal.stationary_cov(sde)
    z = (r["x_cov"] - S) / np.sqrt(ideal.sample_cov_var(sde, T))
    assert np.all(np.abs(z) < 4.4), z
    # and the files realise the target diffusion (checked on what was written, not on the design's algebra):
    # kappa = s_x^2 v_n^2 h tau / (2 R_noise^2 C_f^2), with R_noise and C_f read from the netlist, h and v_n^2
    # from the noise files (pre-emphasised samples u = w + c (w - w_prev) have variance ((1 + c)^2 + c^2) v_n^2,
    # and their squares' mean has relative sd sqrt(2 (1 + 2 rho^2) / n), rho = -c (1 + c) / ((1 + c)^2 + c^2))
    _, _, out = transient_d4
    text = (out / "netlist.cir").read_text()
    s_x = json.loads((out / "design.json").read_text())["s_x_units_per_volt"]
    c = PRE_EMPHASIS
    rho = -c * (1 + c) / ((1 + c) ** 2 + c ** 2)
    for i in range(1, 5):
        rn = float(re.search(rf"^RN{i} nz{i} sum{i} (\S+)$", text, re.M).group(1))
        cf = float(re.search(rf"^CF{i} \S+ \S+ (\S+) ", text, re.M).group(1))
        t, u = np.loadtxt(out / f"noise_{i}.txt", unpack=True)
        v2 = np.mean(u[1:] ** 2) / ((1 + c) ** 2 + c ** 2)
        kappa = s_x ** 2 * v2 * (t[1] - t[0]) * float(r["tau_s"]) / (2 * rn ** 2 * cf ** 2)
        assert abs(kappa / 0.05 - 1) < 5 * np.sqrt(2 * (1 + 2 * rho ** 2) / (len(u) - 1)), (i, kappa)


def test_same_seed_same_numbers_other_seed_other_numbers(transient_d4, tmp_path):
    cfg, r, _ = transient_d4
    again = simulate(cfg)
    assert np.array_equal(again["x"], r["x"])
    other = simulate(cfg | {"simulation": cfg["simulation"] | {"seed": 1}})
    assert not np.allclose(other["x"], r["x"])


def test_written_netlist_runs_in_plain_ngspice_and_matches_in_process(transient_d4):
    """The published netlist.cir + noise_<i>.txt run with plain `ngspice -b netlist.cir` (its control block writes
    netlist.raw) give the in-process waveforms."""
    cfg, r, out = transient_d4
    proc = subprocess.run([shutil.which("ngspice"), "-b", "netlist.cir"], cwd=out,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    plots = parse_raw((out / "netlist.raw").read_bytes())
    t = plots["tran"].axis
    prep = prepare(cfg)
    x1 = np.interp(r["t"], t, plots["tran"].node("x1")) * prep.design.s_x
    assert np.allclose(x1, r["x"][:, 0], rtol=0, atol=1e-9 * np.abs(r["x"]).max())
    assert np.allclose(plots["op"].node("x2")[0] * prep.design.s_x, r["x_op"][1], rtol=1e-12)


def test_subprocess_backend_gives_identical_results(transient_d4):
    cfg, r, _ = transient_d4
    sub = simulate(cfg | {"simulation": cfg["simulation"] | {"backend": "ngspice-subprocess"}})
    assert np.allclose(sub["x"], r["x"], rtol=0, atol=1e-9 * np.abs(r["x"]).max())
    assert np.allclose(sub["x_op"], r["x_op"], rtol=1e-12)


def test_netlist_contains_only_generated_lines(tmp_path):
    """No config text reaches the netlist: every line is a comment or matches the generator's grammar."""
    cfg = spd_problem(5, 20.0, seed=4, kappa=0.02)
    write_netlist(cfg, tmp_path)
    text = (tmp_path / "netlist.cir").read_text()
    num = r"-?\d+(\.\d+)?(e[-+]?\d+)?"
    grammar = [r"\.subckt SPU_OPAMP_IDEAL inp inn out", r"VN inp inn DC 0", r"FN inn out VN 1", r"FP 0 inp VN 1",
               r"\.ends SPU_OPAMP_IDEAL", r"XI\d+ 0 sum\d+ x\d+ SPU_OPAMP_IDEAL", rf"CF\d+ x\d+ sum\d+ {num} IC={num}",
               r"EINV\d+ xn\d+ 0 x\d+ 0 -1", rf"R\d+_\d+ xn?\d+ sum\d+ {num}",
               rf"VDAC\d+ dac\d+ 0 DC {num}", rf"RIN\d+ dac\d+ sum\d+ {num}", r"ANOISE\d+ %vd\(\[nz\d+ 0\]\) noisesrc\d+",
               r'\.model noisesrc\d+ filesource \(file="noise_\d+\.txt" amploffset=\[0\] amplscale=\[1\] timeoffset=0 timescale=1 timerelative=false amplstep=false\)',
               rf"RN\d+ nz\d+ sum\d+ {num}", rf"\.options reltol={num}", r"\.save( v\(x\d+\))+", r"\.op",
               rf"\.tran {num} {num} 0 {num} uic", r"\.end",
               # the control block of the standalone run (spu_sim.spice.control_block)
               r"\.control", r"set filetype=binary", r"unset appendwrite", r"run", r"foreach plot op1 tran1",
               r"  setplot \$plot", r"  write netlist\.raw", r"  set appendwrite", r"end", r"quit", r"\.endc"]
    for line in text.splitlines():
        if not line.strip() or line.startswith("*"):
            continue
        assert any(re.fullmatch(g, line, flags=re.I) for g in grammar), line
    assert text.count("\nR") >= 25  # 5x5 coupling resistors (random SPD: no zero entries)


def test_ngspice_error_carries_its_message(tmp_path):
    """A netlist ngspice rejects: both backends raise SimulationError with ngspice's own words."""
    bad = tmp_path / "netlist.cir"
    bad.write_text("broken\nR1 a 0 1k\nC1 a 0 1n\nX1 a b nosuchsubckt\n.op\n.end\n")
    with pytest.raises(SimulationError) as e:
        get_engine("ngspice-subprocess").run_netlist(bad)
    assert "nosuchsubckt" in str(e.value).lower() and str(tmp_path) in str(e.value)
    with pytest.raises(SimulationError) as e2:
        get_engine("ngspice-shared").run_netlist(bad)
    assert "nosuchsubckt" in e2.value.ngspice_message.lower()
    # the in-process simulator is still usable afterwards
    assert np.isfinite(simulate(spd_problem(2, 2.0, kappa=0.0, analyses=["op"]))["x_op"]).all()


def test_adc_quantises_readout(tmp_path):
    cfg = spd_problem(3, 3.0, seed=2, kappa=0.02, t_stop_tau=20.0)
    cfg["readout"] = {"adc": {"bits": 6, "range_v": 1.0}}
    r = simulate(cfg)
    prep = prepare(cfg)
    v = r["x"] / prep.design.s_x
    step = 2.0 / 2 ** 6
    assert np.allclose(v / step, np.round(v / step), atol=1e-9)
    assert len(np.unique(np.round(v / step))) <= 2 ** 6 + 1


def test_ideal_opamp_is_a_subcircuit_a_designer_can_swap(tmp_path):
    """The ideal op-amp is one .subckt SPU_OPAMP_IDEAL inp inn out and one instance per integrator (and summer), the
    feedback capacitor outside it: replacing its body by hand with a VCVS of gain 100 in the written netlist makes
    plain ngspice -b give the .op of the macromodel of gain 100 without a pole (the same op-amp count, every op-amp
    swapped) to 1e-9 of the finite gain's own effect, and the untouched netlist gives the ideal .op (no inverters
    here: A has no negative entry, so every op-amp is an instance)."""
    base = {"problem": {"matrix": [[2.0, 0.5], [0.5, 1.0]], "vector": [1.0, 0.5], "kappa": 0.0},
            "simulation": {"analyses": ["op"]}}
    ops = {}
    for label, opamp in (("ideal", {"model": "ideal"}), ("macro", {"model": "macro", "gain": 100.0, "gbw_hz": None})):
        write_netlist({**base, "circuit": {"opamp": opamp}}, tmp_path / label)
    text = (tmp_path / "ideal" / "netlist.cir").read_text()
    assert text.count(".subckt SPU_OPAMP_IDEAL inp inn out") == 1
    assert re.findall(r"^(XI\d) 0 (sum\d) (x\d) SPU_OPAMP_IDEAL$", text, re.M) == [
        ("XI1", "sum1", "x1"), ("XI2", "sum2", "x2")]
    assert re.search(r"^CF1 x1 sum1 ", text, re.M) and not re.search(r"^(VSUM|FINT|EOUT)", text, re.M)
    body = re.search(r"^\.subckt SPU_OPAMP_IDEAL inp inn out\n(.*?)^\.ends", text, re.M | re.S)
    (tmp_path / "swapped").mkdir()
    swapped = text[:body.start(1)] + "E1 out 0 inp inn 100\n" + text[body.end(1):]
    for label, netlist in (("ideal", text), ("swapped", swapped), ("macro", None)):
        folder = tmp_path / label
        if netlist is not None:
            (folder / "netlist.cir").write_text(netlist)
        run = subprocess.run(["ngspice", "-b", "netlist.cir"], cwd=folder, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr[-300:]
        op = parse_raw((folder / "netlist.raw").read_bytes())["op"]
        ops[label] = np.array([np.real(op.node(f"x{i}"))[0] for i in (1, 2)])
    effect = np.abs(ops["macro"] - ops["ideal"]).max()
    assert effect > 1e-3 * np.abs(ops["ideal"]).max()
    assert np.abs(ops["swapped"] - ops["macro"]).max() < 1e-9 * effect
