"""The linear engine on clocked circuits (spu_sim.engines.linear.switched) against real ngspice and the exact
discrete-time theory of topology opamp_sc.

Path checks: the same Circuit and the same noise files (injected noise and kT/C noise on) on ngspice and the
linear engine, compared at the clock-period samples (the readout grid, in the non-overlap gaps where every node
holds its charge), in units of the stationary sd of the clocked process. Bound at reltol 1e-4: reltol times
the signal in sd units (1 + max |mean| / sd): ngspice's local-error control keeps every step's charge error
near reltol times the node voltage and the per-period map contracts, so errors do not pile up (measured
7e-7 sd at d = 2, 5e-6 at d = 4, bounds 2.7e-4 and 9.7e-4); at reltol 1e-6 the difference must fall at least
tenfold (measured 2e-9 and 7e-9 sd: it is ngspice's error, not the engine's).

Statistics: long linear-engine runs against spu_sim.topologies.opamp_sc.discrete with the tolerances of
tests/test_opamp_sc.py (chi-square(d) quantile at 1 - 1e-4 for the time average with the exact AR sample-mean
covariance; |z| of each covariance entry below the normal quantile at 1e-4 / entries), fixed seeds.

Switch schedule: an RC charged through a switch whose PULSE control crosses VT +- VH on slow, asymmetric
ramps, against ngspice; hysteresis changes the result 400 times more than ngspice's own error at tmax 1 ns.
"""

from __future__ import annotations

import pathlib
from dataclasses import replace

import numpy as np
import pytest
import yaml
from test_opamp_sc import check_against_discrete, limits, sc_problem

from spu_sim import ideal
from spu_sim.circuit import (Capacitor, Circuit, NoiseSource, Op, PulseVoltageSource, Resistor, Switch, SwitchModel,
                             Tran, VoltageSource)
from spu_sim.cli import main
from spu_sim.engines import available, get_engine
from spu_sim.engines.linear import path_at
from spu_sim.errors import BadInputError
from spu_sim.pipeline import build_circuit, prepare, simulate
from spu_sim.topologies.opamp_sc import discrete, metrics

needs_ngspice = pytest.mark.skipif(not available(), reason="ngspice not installed")
ROOT = pathlib.Path(__file__).resolve().parents[1]
SC_PATH = {"f_clk_tau": 5, "bits": 4, "c_unit_farad": 1e-16}   # kT/C and injected noise both on (defaults)


def _clock_sample_diff_sd(prep, circuit, reltol: float, tmp: pathlib.Path) -> float:
    """rms over variables and clock-period samples of (linear - ngspice) / stationary sd."""
    ds = prep.design
    sd = np.sqrt(np.diag(discrete.stationary_cov(ds.process())))
    lin = get_engine("linear").run(circuit, None)["tran"]
    assert lin.engine == "linear" and lin.method == "switched"
    ng = get_engine("ngspice-subprocess").run(replace(circuit, options={"reltol": reltol}), tmp / f"ng{reltol:g}")
    ng = ng["tran"]
    t = np.real(ng.axis)
    nodes = [f"v(x{i})" for i in range(1, ds.d + 1)]
    v_lin = np.column_stack([lin.vectors[k] for k in nodes])
    v_ng = np.column_stack([np.interp(lin.axis, t, np.real(ng.vectors[k])) for k in nodes])
    return float(np.sqrt(np.mean((ds.to_problem_units(v_lin - v_ng) / sd) ** 2)))


@needs_ngspice
@pytest.mark.parametrize("d", [2, 4])
def test_clock_sample_paths_match_ngspice(d, tmp_path):
    prep = prepare(sc_problem(d, dict(SC_PATH), t_stop_tau=20.0, burn_in_tau=1.0))
    assert prep.design.injected and prep.design.ktc
    c = build_circuit(prep)
    # the kT/C sources carry a visible part of the variance: a mishandled one would move the path by ~1e-2 sd
    assert metrics.kappa_ktc(prep.design) > 5e-5 * prep.problem.kappa
    e4 = _clock_sample_diff_sd(prep, c, 1e-4, tmp_path)
    e6 = _clock_sample_diff_sd(prep, c, 1e-6, tmp_path)
    assert e4 < 1e-4 * signal_sd(prep.design), e4
    assert e6 < 0.1 * e4, (e4, e6)


def signal_sd(ds) -> float:
    """The largest signal in sd units, 1 + max |mean| / sd: ngspice's relative error applies to it."""
    p = ds.process()
    return 1.0 + float(np.max(np.abs(discrete.stationary_mean(p)) / np.sqrt(np.diag(discrete.stationary_cov(p)))))


@needs_ngspice
def test_crosscheck_runs_the_shipped_sc_config(tmp_path):
    """spu-sim crosscheck on configs/opamp_sc_d4.yaml (shortened): ngspice and the linear engine compared on the
    clock-period samples, within reltol x signal (measured 5.9e-5 sd at 30 tau, the signal is 9 sd)."""
    from spu_sim.analyses.crosscheck import run_crosscheck
    cfg = yaml.safe_load((ROOT / "configs" / "opamp_sc_d4.yaml").read_text())
    cfg["simulation"].update(t_stop_tau=10.0, burn_in_tau=2.0)
    m = run_crosscheck(cfg, tmp_path / "xc")
    assert m["candidate"] == "linear" and m["path_points"].startswith("readout grid")
    assert m["path_rms_diff_sd"] < 1e-4 * signal_sd(prepare(cfg).design), m
    assert (tmp_path / "xc" / "crosscheck.png").is_file()


@pytest.mark.parametrize("d", [2, 4])
def test_long_run_statistics_equal_the_discrete_theory(d):
    """d = 2: kT/C noise alone (tiny units, no bottom plate); d = 4: the shipped config (5-bit banks with
    mismatch, injected + kT/C noise), both on the linear engine over thousands of clock periods. The check has
    power: the same data reject a process with half the kT/C (d = 2) or the continuous OU of A_realized (d = 4)."""
    if d == 2:
        cfg = sc_problem(2, {"f_clk_tau": 5, "bits": 4, "injected_noise": False, "ktc_noise": True,
                             "c_unit_farad": 1e-17, "c_bottom_plate_rel": 0.0}, t_stop_tau=3000.0,
                         backend="linear")
    else:
        cfg = yaml.safe_load((ROOT / "configs" / "opamp_sc_d4.yaml").read_text())
        cfg["simulation"].update(backend="linear", t_stop_tau=2000.0)
    prep = prepare(cfg)
    r = simulate(prep)
    assert r["engine"] == "linear"
    chi2, z = check_against_discrete(prep.design, r.arrays)
    lim_chi2, lim_z = limits(d)
    assert chi2 < lim_chi2, chi2
    assert np.max(np.abs(z)) < lim_z, z
    ds = prep.design
    n = int((r["t"] >= r["burn_in_s"]).sum())
    var = ideal.sample_cov_var(ds.effective_sde(), n * ds.h)
    if d == 2:
        wrong = 0.5 * discrete.stationary_cov(ds.process())
    else:
        wrong = ideal.stationary_cov(ideal.ou_sde(ds.A_realized, ds.b_realized, ds.kappa_realized))
    assert np.max(np.abs((r["x_cov"] - wrong) / np.sqrt(var))) > lim_z


def _rc_switch(vh: float, tmax_s: float, reltol: float = 1e-4, on: bool = False) -> Circuit:
    """1 V through S1 (Ron 1 k) into 1 nF || 10 k; control PULSE(0 1.8 100n 400n 100n 200n 2u), VT = 0.9."""
    els = [VoltageSource("VS", "src", "0", 1.0), SwitchModel("swh", 0.9, vh, 1e3, 1e12),
           Switch("S1", "src", "a", "ctl", "0", "swh", on), Capacitor("C1", "a", "0", 1e-9, ic_v=0.0),
           Resistor("R1", "a", "0", 1e4),
           PulseVoltageSource("VCLK", "ctl", "0", 0.0, 1.8, 1e-7, 4e-7, 1e-7, 2e-7, 2e-6)]
    return Circuit("rc switch", els, ["a"], analyses=[Tran(1e-7, 2e-5, tmax_s)], options={"reltol": reltol},
                   saves=["v(a)", "v(ctl)"])


@needs_ngspice
def test_switch_crossings_and_hysteresis_match_ngspice(tmp_path):
    """The crossing instants of VT + VH (rising, 400 ns ramp) and VT - VH (falling, 100 ns) set how long the
    capacitor charges. ngspice places the switching within its step: error bound tmax * (1 V / Ron) / C = 1e-3 V
    per event at tmax 1 ns (measured 1.7e-4 V; 2.4e-3 V at tmax 100 ns). Hysteresis moves v(a) by 0.068 V."""
    def ng(c, tag):
        w = get_engine("ngspice-subprocess").run(c, tmp_path / tag)["tran"]
        return w

    lin = {vh: get_engine("linear").run(_rc_switch(vh, 1e-9), None)["tran"] for vh in (0.3, 0.0)}
    for vh in (0.3, 0.0):
        w = ng(_rc_switch(vh, 1e-9, 1e-6), f"h{vh}")
        v = np.interp(lin[vh].axis, np.real(w.axis), np.real(w.vectors["v(a)"]))
        assert np.abs(v - lin[vh].vectors["v(a)"]).max() < 1e-3, vh
        ctl = np.interp(lin[vh].axis, np.real(w.axis), np.real(w.vectors["v(ctl)"]))
        assert np.abs(ctl - lin[vh].vectors["v(ctl)"]).max() < 1e-9   # the PULSE itself, as an output
        if vh == 0.3:
            # a schedule without hysteresis is far outside ngspice's error
            assert np.abs(v - lin[0.0].vectors["v(a)"]).max() > 0.05
    # a control that never leaves the hysteresis band keeps the switch's initial state (ON / OFF keyword)
    for on in (True, False):
        c = _rc_switch(1.0, 1e-7, on=on)
        v_lin = get_engine("linear").run(c, None)["tran"].vectors["v(a)"]
        w = ng(c, f"band{on}")
        assert abs(v_lin[-1] - np.real(w.vectors["v(a)"])[-1]) < 1e-6
        assert (v_lin[-1] > 0.9) == on


@needs_ngspice
def test_floating_noise_source_is_in_series(tmp_path):
    """NoiseSource(n_neg != 0): V(node, n_neg) follows the samples (it was stamped to ground before). An RC
    whose resistor sees V(b) + u: C dV_b/dt = -(V_b + u) / R; the path equals ngspice's at its time points."""
    dt = 1e-5
    u = 0.3 * np.random.default_rng(5).standard_normal(501)
    u[0] = 0.0
    els = [NoiseSource("AFL", "a", "nsfl", "noise_fl.txt", u, dt, n_neg="b"), Resistor("R1", "a", "0", 1e3),
           Capacitor("C1", "b", "0", 1e-6, ic_v=0.0)]
    c = Circuit("floating source", els, ["b"], analyses=[Tran(dt, 500 * dt, dt)], saves=["v(a)", "v(b)"])
    ng = get_engine("ngspice-subprocess").run(replace(c, options={"reltol": 1e-6}), tmp_path)["tran"]
    exact = path_at(c, np.real(ng.axis), ["v(a)", "v(b)"])
    sd = 0.3 * np.sqrt(dt / 2e-3)
    for k in ("v(a)", "v(b)"):
        assert np.sqrt(np.mean((exact[k] - np.real(ng.vectors[k])) ** 2)) < 1e-2 * sd, k
    assert np.allclose(exact["v(a)"] - exact["v(b)"], np.interp(np.real(ng.axis), np.arange(501) * dt, u), atol=1e-12)


def test_unsupported_clocked_circuits_are_refused_by_name(tmp_path, capsys):
    # clock feedthrough: the PULSE drives capacitors, not only switch controls
    cfg = sc_problem(2, {"f_clk_tau": 5, "bits": 4, "c_overlap_farad": 1e-16}, t_stop_tau=2.0, burn_in_tau=1.0)
    c = build_circuit(prepare(cfg))
    with pytest.raises(BadInputError, match=r"PulseVoltageSource VPHI[12] .*CFT.*ngspice-shared"):
        get_engine("linear").run(c, None)
    cfg["simulation"]["backend"] = "linear"
    bad = tmp_path / "ft.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert main(["simulate", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "VPHI" in err[0] and "Traceback" not in err[0]
    # a switch whose control follows a state node
    base = _rc_switch(0.0, 1e-7)
    els = [replace(e, c_pos="a") if isinstance(e, Switch) else e for e in base.elements]
    with pytest.raises(BadInputError, match="switch S1: its control"):
        get_engine("linear").run(replace(base, elements=els), None)
    # no operating point / aggregated noise of a clocked circuit; a pulse longer than its period
    with pytest.raises(BadInputError, match="no operating point"):
        get_engine("linear").run(replace(base, analyses=[Op(), Tran(1e-7, 2e-6, 1e-7)]), None)
    with pytest.raises(BadInputError, match="noise_mode aggregated"):
        get_engine("linear-aggregated").run(base, None)
    els = [replace(e, width_s=3e-6) if isinstance(e, PulseVoltageSource) else e for e in base.elements]
    with pytest.raises(BadInputError, match="VCLK"):
        get_engine("linear").run(replace(base, elements=els), None)


def test_run_is_reproducible_and_propagators_are_cached():
    """Same circuit, same numbers; a clocked run reuses a handful of propagators for all its segments."""
    from spu_sim.engines.linear.switched import switched_tran
    c = build_circuit(prepare(sc_problem(2, dict(SC_PATH), t_stop_tau=20.0, burn_in_tau=1.0)))
    t1, v1, info = switched_tran(c, c.analysis(Tran))
    _, v2, _ = switched_tran(c, c.analysis(Tran))
    assert all(np.array_equal(v1[k], v2[k]) for k in v1)
    assert info["configurations"] == 3 and info["propagators"] <= 8 and info["segments"] >= 5 * (len(t1) - 1)


def test_detail_window_shows_the_transfers_in_phase_2():
    """The linear engine's .tran of a clocked circuit carries ``detail``: the last 4 clock periods at 200 points
    per period (the clock zoom of compare). It agrees with the output grid where they meet, and the integrator
    outputs move only while phase 2 is closed (the charge transfer into the virtual ground)."""
    prep = prepare(sc_problem(2, dict(SC_PATH), t_stop_tau=20.0, burn_in_tau=1.0))
    w = get_engine("linear").run(build_circuit(prep), None)["tran"]
    det = w.detail
    T = prep.design.period_s
    assert det is not None and len(det.axis) == 801 and abs(det.axis[-1] - w.axis[-1]) < 1e-9 * T
    x, phi2 = det.vectors["v(x1)"], det.vectors["v(phi2)"]
    on = (phi2[1:] > 0.9) | (phi2[:-1] > 0.9)     # steps that touch phase 2
    jumps = np.abs(np.diff(x))
    assert jumps[on].max() > 1e3 * max(jumps[~on].max(), 1e-300)
    grid = np.searchsorted(w.axis, det.axis[::200] - 1e-9 * T)
    assert np.allclose(x[::200], w.vectors["v(x1)"][grid], rtol=0, atol=1e-8 * np.abs(x).max())


@needs_ngspice
def test_held_source_without_clocks_is_zero_order_hold(tmp_path):
    """A held NoiseSource (filesource amplstep=true) in an RC (tau = dt) holds samples_v[k] on [k dt, (k+1) dt):
    the engine runs it through the switched path (before, the LTI path interpolated it linearly). Against ngspice
    on the output grid, in units of the sample rms: converging with reltol (measured 5.8e-3 at 1e-4, 1.8e-4 at
    1e-6; ngspice does not break its steps at the filesource's jumps), while a linear interpolation of the same
    samples is 0.31 away."""
    dt = 1e-5
    u = 0.3 * np.random.default_rng(5).standard_normal(501)
    u[0] = 0.0
    def circuit(held):
        els = [NoiseSource("AH", "a", "nsh", "noise_h.txt", u, dt, held=held), Resistor("R1", "a", "b", 1e3),
               Capacitor("C1", "b", "0", 1e-8, ic_v=0.0)]
        return Circuit("held", els, ["b"], analyses=[Tran(dt / 4, 500 * dt, dt / 4)], saves=["v(a)", "v(b)"])
    c = circuit(True)
    lin = get_engine("linear").run(c, None)["tran"]
    assert lin.method == "switched"
    assert np.allclose(lin.vectors["v(a)"][:-1:4], u[:500], atol=1e-12)    # the held value at k dt is samples_v[k]
    err = {}
    for rt in (1e-4, 1e-6):
        ng = get_engine("ngspice-subprocess").run(replace(c, options={"reltol": rt}), tmp_path / f"h{rt:g}")["tran"]
        v = np.interp(lin.axis, np.real(ng.axis), np.real(ng.vectors["v(b)"]))
        err[rt] = np.sqrt(np.mean((v - lin.vectors["v(b)"]) ** 2)) / 0.3
    assert err[1e-4] < 2e-2 and err[1e-6] < 0.1 * err[1e-4], err
    foh = get_engine("linear").run(circuit(False), None)["tran"]
    d_foh = np.sqrt(np.mean((foh.vectors["v(b)"] - lin.vectors["v(b)"]) ** 2)) / 0.3
    assert d_foh > 10 * err[1e-4], (d_foh, err)


def test_leak_in_the_gap_equals_the_closed_form():
    """1 V -> S1 (phase 1) -> node a (1 fF) -> S2 (phase 2) -> ground, Ron 1 k, Roff 1 G: in the non-overlap gap
    both switches are off and a relaxes to 0.5 V with tau = Roff C / 2 = 0.5 us from the value it had when S1 opened
    (the Ron / Roff divider 1 - Ron / (Ron + Roff)) at the crossing instant 490.5 ns. At t = 0.5 us the engine
    equals that closed form (ngspice's points in the 20 ns gap are sparse: interpolating them onto the clock grid
    is 4e-5 V off here, which is what a crosscheck at Roff <= 1e10 shows, docs/linear_engine.md)."""
    els = [VoltageSource("VS", "src", "0", 1.0), SwitchModel("sw", 0.9, 0.0, 1e3, 1e9),
           Switch("S1", "src", "a", "ctl", "0", "sw", False), Capacitor("C1", "a", "0", 1e-15, ic_v=0.0),
           Switch("S2", "a", "0", "ctl2", "0", "sw", False),
           PulseVoltageSource("VC", "ctl", "0", 0.0, 1.8, 1e-8, 1e-9, 1e-9, 4.79e-7, 1e-6),
           PulseVoltageSource("VC2", "ctl2", "0", 0.0, 1.8, 5.1e-7, 1e-9, 1e-9, 4.79e-7, 1e-6)]
    c = Circuit("leak", els, ["a"], analyses=[Tran(1e-7, 2e-6, 1e-7)], saves=["v(a)"])
    v = get_engine("linear").run(c, None)["tran"].vectors["v(a)"]
    v_open = 1.0 - 1e3 / (1e3 + 1e9)
    t_open = 1e-8 + 1e-9 + 4.79e-7 + 0.5e-9          # falling edge crosses VT = 0.9 V half-way
    expected = 0.5 + (v_open - 0.5) * np.exp(-(5e-7 - t_open) / (1e9 * 1e-15 / 2))
    assert abs(v[5] - expected) < 1e-12, (v[5], expected)
    assert abs(v[4] - v_open) < 1e-12          # at 0.4 us S1 is closed: the divider


@needs_ngspice
def test_unsettled_transfers_converge_to_the_engine_as_ngspice_steps_shrink(tmp_path):
    """Ron = 300 M (Ron C ~ 0.3 us, comparable to a phase): the charge moved depends on the exact switching
    instants. The engine's sensitivity to them (a VT shift of 0.4 V moves every crossing by 0.22 ns) bounds
    what ngspice's placement of the switching within a step of tmax can cost; ngspice converges to the engine
    (measured 6.9e-3 sd at tmax = T/2, 1.7e-6 at 1 ns, 1.7e-8 at 0.1 ns)."""
    prep = prepare(sc_problem(2, dict(SC_PATH, r_on_ohm=3e8), t_stop_tau=4.0, burn_in_tau=1.0))
    c, ds = build_circuit(prep), prep.design
    sd = np.sqrt(np.diag(discrete.stationary_cov(ds.process())))
    nodes = ["v(x1)", "v(x2)"]

    def lin(circuit):
        w = get_engine("linear").run(circuit, None)["tran"]
        return w.axis, ds.to_problem_units(np.column_stack([w.vectors[k] for k in nodes])) / sd

    t, x = lin(c)
    _, x_shift = lin(replace(c, elements=[replace(e, vt_v=e.vt_v - 0.4) if isinstance(e, SwitchModel) else e
                                          for e in c.elements]))
    per_ns = np.sqrt(np.mean((x_shift - x) ** 2)) / (0.4 / 1.8)
    assert per_ns > 1e-4        # the instants matter here
    err = {}
    for tmax in (1e-9, 1e-10):
        tran = replace(c.analysis(Tran), tmax_s=tmax)
        w = get_engine("ngspice-subprocess").run(replace(c, options={"reltol": 1e-6}, analyses=[tran]),
                                                 tmp_path / f"t{tmax:g}")["tran"]
        xn = ds.to_problem_units(np.column_stack([np.interp(t, np.real(w.axis), np.real(w.vectors[k])) for k in nodes]))
        err[tmax] = np.sqrt(np.mean((xn / sd - x) ** 2))
    assert err[1e-9] < per_ns * 1.0, (err, per_ns)
    assert err[1e-10] < 0.1 * err[1e-9], err
