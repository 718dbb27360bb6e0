"""The key numbers of each packaged experiment in words with units, read from the files the run saved (never from
memory, so ``spu-sim experiment`` prints what the folder holds). One function per experiment, registered with it:

    key_numbers_sampling(out)         rlc_sampling: covariance error against kT Cm^-1 and its expected size, z scores
    key_numbers_inversion(out)        rlc_inversion: per bank the error of the estimated A^-1 at the end of the run
    key_numbers_autocorrelation(out)  rlc_autocorrelation: fitted frequency and decay, measured and exact
    key_numbers_sc_clock(out)         sc_clock: error split and energy per clock over the sweeps, simulated points
    key_numbers_scaling(out)          posterior_scaling: mixing time and energy per d, the fitted growth
    key_numbers_array_limits(out)     array_limits: the largest N within the error budget

A relative error is printed in percent, a time in tau (the problem's time unit) or seconds, an energy in J.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SUMMARY_JSON = "summary.json"


def _pc(v: float) -> str:
    return f"{100.0 * float(v):.3g} %" if v is not None and math.isfinite(float(v)) else "not measured"


def _read(out: Path, name: str = SUMMARY_JSON) -> dict:
    return json.loads((Path(out) / name).read_text())


def key_numbers_sampling(out: Path) -> list[str]:
    s = _read(out)
    return [f"rlc sampling, d = {s['d']}, {s['coupling']} coupling: {s['n_samples']} samples over "
            f"{s['window_tau']:.4g} tau, run time {s['wall_s']:.3g} s",
            f"covariance error against kT Cm^-1 of the realised circuit: {_pc(s['cov_rel_err_vs_kT_Cm_inv'])} "
            f"(expected from the finite run: {_pc(s['cov_rel_err_expected'])})",
            f"covariance error against the target kappa A^-1: {_pc(s['cov_rel_err_vs_target'])}",
            f"covariance entries within 2 standard errors: {_pc(s['frac_within_2sd'])} (rms z {s['z_rms']:.3g}, "
            f"largest |z| {s['z_max_abs']:.3g})"]


def key_numbers_inversion(out: Path) -> list[str]:
    s = _read(out)
    lines = [f"rlc inversion, d = {s['d']}: ngspice runs {s['wall_ngspice_s']:.3g} s"]
    for lab, b in s["banks"].items():
        lines.append(f"{lab} bank: error of the estimated A^-1 after {b['T_ngspice_tau']:.4g} tau: "
                     f"{_pc(b['err_ngspice_at_end'])} (an ideal sampler: {_pc(b['err_ideal_sampler_at_T_ngspice'])}); "
                     f"error floor of the realised bank {_pc(b['floor_exact'])}, matrix error {_pc(b['matrix_rel_err'])}")
    return lines


def key_numbers_autocorrelation(out: Path) -> list[str]:
    s = _read(out)
    fm, fe = s["fit_measured"], s["fit_exact"]
    lines = [f"rlc autocorrelation of cell {s['cell']} (d = {s['d']}) over {s['window_tau']:.4g} tau "
             f"(tau = {s['tau_s']:.4g} s), run time {s['wall_s']:.3g} s",
             f"fitted oscillation: {fm['omega_per_tau']:.4g} rad/tau measured, {fe['omega_per_tau']:.4g} rad/tau exact",
             f"fitted decay: {fm['decay_per_tau']:.4g} /tau measured, {fe['decay_per_tau']:.4g} /tau exact",
             f"measured against exact autocovariance: rms z {s['rms_z_of_residual']:.3g}, largest |z| "
             f"{s['max_abs_z']:.3g} (standard errors)"]
    if s.get("modes_by_weight"):
        m = s["modes_by_weight"][0]
        lines.append(f"strongest mode of the realised circuit: {m['f_hz']:.4g} Hz, decay {m['decay_per_tau']:.4g} /tau")
    return lines


def key_numbers_sc_clock(out: Path) -> list[str]:
    s = _read(out)
    rows = s["rows"]
    lines = [f"sc_clock on {s['engine']} (theory: {s['theory']})"]
    for axis, unit in (("f_clk_tau", "clock periods per tau"), ("bits", "bits")):
        th = [r for r in rows if r["axis"] == axis and not r["simulated"]]
        if th:
            lo, hi = th[0], th[-1]
            lines.append(f"{axis} from {lo['value']:g} to {hi['value']:g} {unit}: covariance error of the clocked "
                         f"process (theory) {_pc(lo['total_cov_rel_err'])} to {_pc(hi['total_cov_rel_err'])}, kT/C floor "
                         f"{_pc(lo['ktc_floor_cov_rel'])} to {_pc(hi['ktc_floor_cov_rel'])}, energy per clock "
                         f"{lo['energy_per_clock_j']:.3g} J to {hi['energy_per_clock_j']:.3g} J")
    for r in rows:
        if r["simulated"]:
            lines.append(f"simulated {r['axis']} = {r['value']:g}: covariance error {_pc(r['measured_cov_rel_err'])} "
                         f"against the target, {_pc(r['measured_cov_rel_err_vs_clocked'])} against the clocked theory "
                         f"(expected from the finite run: {_pc(r['expected_sampling_cov_rel_err'])}), run time "
                         f"{r['wall_s']:.3g} s")
    return lines


def key_numbers_scaling(out: Path) -> list[str]:
    s = _read(out, "scaling.json")
    lines = []
    for m in s["means"]:
        lines.append(f"d = {m['d']} ({m['replicates']} runs on {m['engine']}): time to converge {m['t_conv_tau']:.4g} tau, "
                     f"mixing time {m['mixing_time_tau']:.4g} tau, energy to converge {m['energy_conv_j']:.3g} J, "
                     f"energy per mixing time {m['energy_mixing_j']:.3g} J")
    for q, words in (("mixing_time_tau", "mixing time"), ("energy_conv_j", "energy to converge")):
        slope = s.get("fits", {}).get(q, {}).get("loglog_slope")
        if slope is not None and math.isfinite(slope):
            lines.append(f"{words} grows as d^{slope:.3g} over the d values run (log-log slope)")
    return lines


def key_numbers_array_limits(out: Path) -> list[str]:
    s = _read(out)
    lines = [f"largest N with solution error <= {_pc(s['error_budget'])} ({s['engine']} engine):"]
    for e in s["largest_n"]:
        lines.append(f"{e['family']} family, wire {e['r_ohm_per_segment']:g} ohm per segment, {s['noise_key']} = "
                     f"{e['noise']:g}: N = {e['n_max']}" + (" (none of the N tried)" if not e["n_max"] else "")
                     + (" or more (the largest N tried is inside the budget: the limit lies beyond the grid)"
                        if e.get("at_grid_edge") else ""))
    return lines
