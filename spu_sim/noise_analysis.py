"""Small-signal noise analysis of the realised circuit: ngspice ``.noise`` -> exact stationary covariance.

    metrics = run_noise("configs/noise_d4.yaml", "runs/noise")     # CLI: spu-sim noise CONFIG --out DIR

What runs (one netlist, one ngspice process, d (d + 1) / 2 ``.noise`` lines, parsed with parse_raw_list):

- the circuit of the config (same design, tolerance, quantisation, op-amp model) with the transient noise DAC
  replaced by a noise source that ``.noise`` can see. TRNOISE / filesource samples contribute nothing to
  ``.noise``; a resistor does. Each integrator gets

      RNQ<i> nq<i> 0 R_aux        a noisy resistor, shorted by
      VNQ<i> nq<i> 0 DC 0         a 0 V source that senses its thermal noise current (two-sided 2 kT / R_aux)
      FNQ<i> 0 sum<i> VNQ<i> g    a (noiseless) CCCS copying g times that current into the summing node

  so the resistor carries no signal current at all (its drift is zero by construction: both ends sit at
  0 V) and the summing node receives a pure noise current of two-sided intensity q_I = g^2 2 kT / R_aux.
  g = sqrt(q_I R_aux / (2 kT)) with q_I = 2 kappa C_f^2 / (tau_s s_x^2), the intensity that gives the OU
  noise level kappa (spu_sim.design.opamp), kT at circuit.temperature.temp_c (``.temp`` in the netlist).
  Every other resistor is written with ``noisy=0`` unless element_noise=True (then their 4 kT / R thermal
  noise is included in the run and, for the ideal op-amp, in the theory).
- the AC trick: ``.noise`` needs an input source with an AC value to refer the noise to. VNACIN (DC 0, AC 1)
  drives only its own noiseless 1 ohm load, so the circuit is unchanged; the output noise does not depend
  on the input source at all, and the input-referred noise ngspice also reports is meaningless and ignored.
- outputs v(x<i>) (variances S_ii) and differential outputs v(x<i>, x<j>), i < j:
  Var(V_i - V_j) = S_ii + S_jj - 2 S_ij, so S_ij = (S_ii + S_jj - Var_ij) / 2: the full covariance,
  from onoise_total (the rms integrated over [f_start, f_stop]) with no sampling error.

Theory (t in tau, problem units): the realised (effective) drift K, D = diag(q_I s_x^2 tau_s /
(C_i (1 + 1/A0))^2) (+ 2 kT Gsum_i s_x^2 tau_s / C_i^2 with element noise), S solves K S + S K^T = D.
One-sided voltage spectrum in V^2/Hz: G(f) = 2 tau_s (i w tau_s + K)^-1 D_V (i w tau_s + K)^-H,
w = 2 pi f, D_V = D / s_x^2; for symmetric K and isotropic D it is a sum of Lorentzians, one per mode k:
G_ii(f) = sum_k U_ik^2 2 tau_s D_V / (lambda_k^2 + (w tau_s)^2). The band [f_start, f_stop] spans
span_decades beyond the slowest and fastest mode, so the truncated tails are 2/pi 10^-span_decades each.

RLC topology (``circuit.rlc.coupling: ideal`` only): the same injection into each cell node n<i>, with
g_i = sqrt(q_i R_aux / (2 kT)), q_i = 2 kT_eff,i / R_i the current intensity the filesource gives cell i
(its realised R_i); the cell resistors RR<i> are the (noiseless unless element_noise) damping, the filesources
are removed. Theory: the 2d-dimensional SDE realized_sde() (z = (x, p)), K S + S K^T = D, and the exact
spectral density of the cell voltages, the x block of G(f) = 2 tau_s (i w tau_s + K)^-1 D_V (...)^H (a
resonance per mode; at low frequency G ~ w^2: the inductors short DC). Outputs v(n<i>), v(n<i>, n<j>). With
switched coupling ngspice 39 evaluates every S switch as OFF in small-signal analyses whatever its control
voltage (docs/rlc.md): a BadInputError that says so.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .backend import parse_raw_list
from .config import Config, load_config, save_config
from .errors import BadInputError, SimulationError
from .ideal import LinearSDE, stationary_cov

K_BOLTZMANN = 1.380649e-23
NOISE_NETLIST_NAME = "noise.cir"
NOISE_NPZ = "noise.npz"
NOISE_METRICS = "noise_metrics.json"
R_AUX_OHM = 1e3


def _noise_prep(config):
    """The validated config and the design used for .noise (analyses = op: no transient noise DAC)."""
    from .pipeline import prepare  # noqa: PLC0415
    cfg = load_config(config)
    if cfg.circuit.topology == "rlc":
        if cfg.circuit.rlc.coupling != "ideal":
            raise BadInputError(
                "circuit.rlc.coupling: switched: the noise analysis cannot see the switched banks -- ngspice 39 treats "
                "S switches as OFF in small-signal analyses (.ac/.noise) whatever their control voltage. Use "
                "circuit.rlc.coupling: ideal for .noise, or the transient (spu-sim simulate / compare) for the banks")
        prep = prepare(cfg)        # keeps tran: the rlc design needs it (the filesources are removed below)
        if prep.problem.kappa <= 0:
            raise BadInputError("problem.kappa: must be > 0 for a noise analysis (kappa sets the injected noise)")
        return cfg, prep
    data = cfg.to_dict()
    data["simulation"]["analyses"] = ["op"]
    cfg_op = load_config(data)
    cfg_op._base_dir = cfg.base_dir
    prep = prepare(cfg_op)
    if prep.design.topology != "opamp":
        raise BadInputError(f"circuit.topology: noise analysis supports opamp only (got {prep.design.topology!r})")
    if prep.problem.kappa <= 0:
        raise BadInputError("problem.kappa: must be > 0 for a noise analysis (kappa sets the injected noise)")
    return cfg, prep


def _kT(cfg: Config) -> float:
    return K_BOLTZMANN * (cfg.circuit.temperature.temp_c + 273.15)


def injection_gain(design, cfg: Config) -> float | np.ndarray:
    """CCCS gain g that turns R_AUX_OHM's thermal current into the OU noise current (module doc); rlc: (d,)
    one per cell, q_i = 2 kT_eff,i / R_i."""
    if design.topology == "rlc":
        q_cell = 2.0 * design.kt_each_joule / design.r_cells
        return np.sqrt(q_cell * R_AUX_OHM / (2.0 * _kT(cfg)))
    q_i = 2.0 * design.problem.kappa * design.c_farad ** 2 / (design.tau_s * design.s_x ** 2)
    return float(np.sqrt(q_i * R_AUX_OHM / (2.0 * _kT(cfg))))


def frequency_band(design, span_decades: float) -> tuple[float, float]:
    """[f_start, f_stop] in Hz: span_decades below the slowest and above the fastest mode (and the op-amp pole)."""
    K = design.realized_sde().K if design.topology == "rlc" else _effective(design)[0]
    lam = np.abs(np.linalg.eigvals(K))
    f_lo = lam.min() / (2 * np.pi * design.tau_s) / 10 ** span_decades
    f_hi = lam.max() / (2 * np.pi * design.tau_s) * 10 ** span_decades
    m = getattr(design, "macro", None)
    if m is not None and m.gbw_hz is not None:
        f_hi = max(f_hi, 10 * m.gbw_hz)
    return float(f_lo), float(f_hi)


def _effective(design):
    if hasattr(design, "effective_linear"):
        A, _, _ = design.effective_linear(include_noise_resistor=False)
        cf = design.c_f_farad
        a0 = design.macro.gain if design.macro is not None else np.inf
    else:
        A, cf, a0 = design.A_realized, np.full(design.d, design.c_farad), np.inf
    return A, cf, a0


def output_pairs(d: int) -> list[tuple[int, int]]:
    """(i, i) for the variances, then (i, j), i < j, for the differential outputs (0-based)."""
    return [(i, i) for i in range(d)] + [(i, j) for i in range(d) for j in range(i + 1, d)]


def format_noise_netlist(prep, cfg: Config, pairs: list[tuple[int, int]], f_start: float, f_stop: float,
                         points_per_decade: int, element_noise: bool = False) -> str:
    """The circuit netlist with the noise injection and one .noise line per output pair (module doc)."""
    from .netlist import format_netlist  # noqa: PLC0415
    design = prep.design
    rlc = design.topology == "rlc"
    if rlc:   # the same circuit without its filesources (RR<i> to ground); .ic is a transient setting
        import dataclasses  # noqa: PLC0415
        text = format_netlist(dataclasses.replace(design, noise_v_rms=0.0), prep.cfg)
    else:
        text = format_netlist(design, prep.cfg)
    lines = text.splitlines()
    cut = next(k for k, ln in enumerate(lines) if ln.startswith(".options"))
    body = [ln for ln in lines[:cut] if not ln.startswith(".ic")]
    if not element_noise:
        body = [ln + " noisy=0" if ln[:1] in ("R", "r") else ln for ln in body]
    g = np.broadcast_to(injection_gain(design, cfg), (design.d,))
    inj, node = ("n", "n") if rlc else ("sum", "x")
    out = [f"* spu-sim .noise analysis of the circuit below ({len(pairs)} outputs)"] + body
    out.append(f"* noise injection: thermal current of RNQ<i> ({R_AUX_OHM:g} ohm, shorted by VNQ<i>) times"
               f" {float(g[0]):.6g}{' (cell 1)' if rlc else ''} into {inj}<i> = the "
               + ("cell's noise current 2 kT_eff,i / R_i" if rlc else "OU noise current"))
    for i in range(1, design.d + 1):
        out += [f"RNQ{i} nq{i} 0 {R_AUX_OHM!r}", f"VNQ{i} nq{i} 0 DC 0",
                f"FNQ{i} 0 {inj}{i} VNQ{i} {float(g[i - 1])!r}"]
    out.append("* .noise needs an AC input source: VNACIN drives only its own 1 ohm load (output noise is"
               " independent of it)")
    out += ["VNACIN nacin 0 DC 0 AC 1", "RNACIN nacin 0 1 noisy=0"]
    out.append(f".temp {cfg.circuit.temperature.temp_c!r}")
    out.append(f".options reltol={cfg.simulation.reltol!r}")
    for i, j in pairs:
        v = f"v({node}{i + 1})" if i == j else f"v({node}{i + 1},{node}{j + 1})"
        out.append(f".noise {v} VNACIN dec {int(points_per_decade)} {f_start!r} {f_stop!r}")
    out.append(".end")
    return "\n".join(out) + "\n"


def run_noise_netlist(netlist: Path, n_outputs: int, timeout_s: float | None = None) -> list[tuple]:
    """ngspice -b -r on the noise netlist; [(freq, onoise_spectrum V/sqrt(Hz), onoise_total V rms)] per output."""
    exe = shutil.which("ngspice")
    if exe is None:
        raise SimulationError("ngspice is not installed (apt-get install ngspice)", run_dir=netlist.parent)
    raw = netlist.parent / "noise.raw"
    try:
        proc = subprocess.run([exe, "-b", "-r", raw.name, netlist.name], cwd=netlist.parent, capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SimulationError(f"ngspice did not finish within {timeout_s:g} s", run_dir=netlist.parent,
                              netlist_path=netlist) from None
    if proc.returncode != 0 or not raw.is_file():
        raise SimulationError("ngspice .noise failed", ngspice_message=(proc.stdout + proc.stderr)[-2000:],
                              run_dir=netlist.parent, netlist_path=netlist)
    try:
        plots = parse_raw_list(raw.read_bytes())
    finally:
        raw.unlink(missing_ok=True)
    spectra = [p for p in plots if p.kind == "noise"]
    totals = [p for p in plots if p.kind == "noise_total"]
    if len(spectra) != n_outputs or len(totals) != n_outputs:
        raise SimulationError(f"expected {n_outputs} noise results, got {len(spectra)} spectra and {len(totals)} totals",
                              run_dir=netlist.parent, netlist_path=netlist)
    # ngspice 39 runs several .noise lines of one netlist in REVERSE order (its parser prepends each analysis
    # to a list): the first result belongs to the last line (checked by tests/test_noise_analysis.py).
    return [(np.real(s.axis), np.real(s.vectors["onoise_spectrum"]), float(np.real(t.node("onoise_total"))[0]))
            for s, t in zip(spectra[::-1], totals[::-1])]


def theory(prep, cfg: Config, element_noise: bool = False) -> dict[str, Any]:
    """K, D (problem units, t in tau), S (Lyapunov) and the volt-scale spectrum function (module doc)."""
    design = prep.design
    if design.topology == "rlc":
        return _theory_rlc(design, cfg, element_noise)
    A, cf, a0 = _effective(design)
    gain_fac = 1.0 if not np.isfinite(a0) else 1.0 + 1.0 / a0
    q_i = 2.0 * design.problem.kappa * design.c_farad ** 2 / (design.tau_s * design.s_x ** 2)
    Ddiag = q_i * design.s_x ** 2 * design.tau_s / (cf * gain_fac) ** 2
    if element_noise:
        g = np.where(np.isfinite(design.r_ohm), 1.0 / design.r_ohm, 0.0).sum(axis=1)
        if np.isfinite(design.r_in_ohm):
            r_in = getattr(design, "r_in_each_ohm", None)
            g = g + 1.0 / (np.full(design.d, design.r_in_ohm) if r_in is None else r_in)
        Ddiag = Ddiag + 2.0 * _kT(cfg) * g * design.s_x ** 2 * design.tau_s / (cf * gain_fac) ** 2
    sde = LinearSDE(A, np.zeros(design.d), np.diag(Ddiag))
    return {"K": A, "D": np.diag(Ddiag), "S": stationary_cov(sde)}


def _theory_rlc(design, cfg: Config, element_noise: bool) -> dict[str, Any]:
    """The 2d SDE of the realised RLC circuit (cells' own kT_i; + the room-temperature Johnson noise of R_i
    with element_noise); S is the (d, d) voltage block of its stationary covariance."""
    from .design.rlc import rlc_cell_sde  # noqa: PLC0415
    kappa = design.kappa_each + (_kT(cfg) * design.s_x ** 2 / design.gamma if element_noise else 0.0)
    c_ref = design.gamma * design.a_ref
    sde = rlc_cell_sde(design.A_realized, kappa, design.tau_s / (design.r_cells * c_ref),
                       design.l_henry / design.l_cells, design.a_ref)
    d = design.d
    return {"K": sde.K, "D": sde.D, "S": stationary_cov(sde)[:d, :d]}


def spectrum_theory_v2(K: np.ndarray, D: np.ndarray, s_x: float, tau_s: float, f_hz: np.ndarray) -> np.ndarray:
    """One-sided cross-spectral matrix of the node voltages, (len(f), d, d) in V^2/Hz (module doc). For a
    larger state (rlc: z = (x, p), K of size 2d) it is the spectral matrix of the whole state; slice [:, :d, :d]."""
    d = K.shape[0]
    Dv = D / s_x ** 2
    out = np.empty((len(f_hz), d, d))
    for k, f in enumerate(f_hz):
        H = np.linalg.inv(1j * 2 * np.pi * f * tau_s * np.eye(d) + K)
        out[k] = 2.0 * tau_s * np.real(H @ Dv @ H.conj().T)
    return out


def mode_lorentzians(K: np.ndarray, D: np.ndarray, s_x: float, tau_s: float, f_hz: np.ndarray) -> np.ndarray | None:
    """(d_nodes, d_modes, len(f)) per-mode Lorentzian contributions to each node's spectrum (V^2/Hz), or None
    unless K is symmetric and D isotropic (then the modes decouple)."""
    Kd = np.diag(D)
    if not (np.allclose(K, K.T, rtol=1e-9, atol=1e-12 * np.abs(K).max()) and np.allclose(Kd, Kd[0], rtol=1e-9)):
        return None
    lam, U = np.linalg.eigh(0.5 * (K + K.T))
    dv = Kd[0] / s_x ** 2
    w = (2 * np.pi * f_hz * tau_s) ** 2
    lor = 2.0 * tau_s * dv / (lam[:, None] ** 2 + w[None, :])
    return (U ** 2)[:, :, None] * lor[None, :, :]


def _band_integral(K, D, s_x, tau_s, f1, f2) -> np.ndarray:
    """Theory covariance (V^2) over [f1, f2], by dense log-grid quadrature (200 points per decade)."""
    n = int(200 * np.log10(f2 / f1)) + 2
    f = np.logspace(np.log10(f1), np.log10(f2), n)
    G = spectrum_theory_v2(K, D, s_x, tau_s, f)
    return np.trapezoid(G * f[:, None, None], np.log(f), axis=0)


def run_noise(config: str | Path | dict | Config, out_dir: str | Path, *, points_per_decade: int = 20,
              span_decades: float = 4.0, element_noise: bool = False, transient: bool = True) -> dict[str, Any]:
    """The whole noise analysis (module doc); writes OUT/noise.cir, noise.npz, noise_metrics.json, *.png.

    transient: compare with the transient covariance of OUT/result.npz (from an earlier simulate run into
    OUT) or, if there is none, of a fresh simulate run (not saved). Validation happens before anything is
    written. Returns the metrics dict.
    """
    cfg, prep = _noise_prep(config)
    if points_per_decade < 2 or span_decades <= 0:
        raise BadInputError("noise: points_per_decade must be >= 2 and span_decades > 0")
    design = prep.design
    d = design.d
    out = Path(out_dir)
    existing = out / "result.npz"
    stage = io.new_stage(out)
    try:
        pairs = output_pairs(d)
        f1, f2 = frequency_band(design, span_decades)
        text = format_noise_netlist(prep, cfg, pairs, f1, f2, points_per_decade, element_noise)
        netlist = stage / NOISE_NETLIST_NAME
        io.atomic_write_text(netlist, text)
        t0 = time.perf_counter()
        res = run_noise_netlist(netlist, len(pairs), cfg.simulation.timeout_s)
        ngspice_s = time.perf_counter() - t0
        freq = res[0][0]
        spec = np.array([r[1] ** 2 for r in res])          # V^2/Hz, (n_out, n_f)
        total = np.array([r[2] ** 2 for r in res])          # V^2 over the band
        var = {p: t for p, t in zip(pairs, total)}
        S_v = np.empty((d, d))
        for (i, j), v in var.items():
            if i == j:
                S_v[i, i] = v
        for (i, j), v in var.items():
            if i != j:
                S_v[i, j] = S_v[j, i] = 0.5 * (S_v[i, i] + S_v[j, j] - v)
        S_noise = S_v * design.s_x ** 2
        th = theory(prep, cfg, element_noise)
        S_th = th["S"]
        S_band = _band_integral(th["K"], th["D"], design.s_x, design.tau_s, f1, f2)[:d, :d] * design.s_x ** 2
        G = spectrum_theory_v2(th["K"], th["D"], design.s_x, design.tau_s, freq)[:, :d, :d]
        spec_th = np.array([G[:, i, i] if i == j else G[:, i, i] + G[:, j, j] - 2 * G[:, i, j] for i, j in pairs])
        lor = mode_lorentzians(th["K"], th["D"], design.s_x, design.tau_s, freq)
        kappa_Ainv = prep.problem.kappa * np.linalg.inv(prep.problem.A)
        arrays: dict[str, Any] = dict(
            f_hz=freq, pairs=np.array(pairs), spectrum_v2_hz=spec, spectrum_theory_v2_hz=spec_th,
            total_v2=total, cov_noise=S_noise, cov_theory=S_th, cov_theory_band=S_band, kappa_A_inv=kappa_Ainv,
            K=th["K"], D=th["D"], s_x=np.array(design.s_x), tau_s=np.array(design.tau_s),
            band_hz=np.array([f1, f2]))
        if lor is not None:
            arrays["mode_lorentzians_v2_hz"] = lor
        rlc = design.topology == "rlc"
        if rlc:
            arrays["nodes"] = np.array(design.readout_nodes)
            kt_cm_inv = design.kappa_realized * np.linalg.inv(design.A_realized)   # = s_x^2 kT_eff Cm^-1
            arrays["kT_Cm_inv"] = kt_cm_inv
        cov_tran = None
        if transient:
            if existing.is_file():
                cov_tran = np.load(existing)["x_cov"]
                tran_source = str(existing)
            else:
                from .pipeline import simulate  # noqa: PLC0415
                cov_tran = simulate(cfg).arrays["x_cov"]
                tran_source = "fresh simulate run"
            arrays["cov_transient"] = cov_tran

        def rel(a, b):
            return float(np.linalg.norm(a - b) / np.linalg.norm(b))

        metrics: dict[str, Any] = {
            "d": d, "n_outputs": len(pairs), "points_per_decade": points_per_decade, "band_hz": [f1, f2],
            "element_noise": element_noise, "ngspice_s": ngspice_s,
            "var_ratio_noise_over_lyapunov": (np.diag(S_noise) / np.diag(S_th)).tolist(),
            "max_abs_var_error_relative": float(np.max(np.abs(np.diag(S_noise) / np.diag(S_th) - 1))),
            "cov_rel_error_vs_lyapunov": rel(S_noise, S_th),
            "cov_rel_error_vs_band_theory": rel(S_noise, S_band),
            "cov_rel_error_vs_kappa_A_inv": rel(S_noise, kappa_Ainv),
            "spectrum_max_rel_error": float(np.max(np.abs(spec / spec_th - 1))),
        }
        if rlc:
            metrics["topology"] = "rlc"
            metrics["cov_rel_error_vs_kT_Cm_inv_realized"] = rel(S_noise, kt_cm_inv)
        if cov_tran is not None:
            metrics["cov_rel_error_transient_vs_noise"] = rel(cov_tran, S_noise)
            metrics["transient_source"] = tran_source
        io.atomic_save_npz(stage / NOISE_NPZ, **arrays)
        io.atomic_write_json(stage / NOISE_METRICS, metrics)
        io.atomic_write_text(stage / "config.yaml", save_config(cfg))
        plot_noise(stage / NOISE_NPZ, stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    io.publish(stage, out)
    return metrics


def plot_noise(npz_path: Path, out_dir: Path) -> list[Path]:
    """noise_spectra.png (log-log spectra of every node vs theory and the per-mode Lorentzians) and
    noise_cov.png (covariance from .noise vs Lyapunov, kappa A^-1 and the transient). Reads files only."""
    from .plots import plt, save_png  # noqa: PLC0415 - matplotlib (Agg) is heavy
    z = np.load(npz_path)
    pairs = z["pairs"]
    f = z["f_hz"]
    diag = [k for k, (i, j) in enumerate(pairs) if i == j]
    n = len(diag)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    for a, k in zip(axes.flat, diag):
        i = pairs[k][0]
        name = str(z["nodes"][i]) if "nodes" in z else f"x{i + 1}"
        a.loglog(f, z["spectrum_v2_hz"][k], lw=2, label=".noise")
        a.loglog(f, z["spectrum_theory_v2_hz"][k], "k--", lw=1,
                 label="2d SDE theory" if "nodes" in z else "OU theory")
        if "mode_lorentzians_v2_hz" in z:
            for m in range(z["mode_lorentzians_v2_hz"].shape[1]):
                a.loglog(f, z["mode_lorentzians_v2_hz"][i, m], ":", lw=0.8, alpha=0.7)
        a.set_title(f"v({name})")
        a.set_xlabel("f [Hz]")
        a.set_ylabel("V^2/Hz")
    axes.flat[0].legend(fontsize=7)
    for a in list(axes.flat)[n:]:
        a.axis("off")
    p1 = save_png(fig, Path(out_dir) / "noise_spectra.png")
    fig, a = plt.subplots(figsize=(4.5, 4.2))
    S = z["cov_noise"].ravel()
    a.plot(z["cov_theory"].ravel(), S, "o", label="Lyapunov (realised)")
    a.plot(z["kappa_A_inv"].ravel(), S, "x", label="kappa A^-1 (target)")
    if "kT_Cm_inv" in z:
        a.plot(z["kT_Cm_inv"].ravel(), S, "s", mfc="none", ms=4, label="kT Cm^-1 (realised)")
    if "cov_transient" in z:
        a.plot(z["cov_transient"].ravel(), S, "^", mfc="none", label="transient estimate")
    lim = [min(S.min(), 0), S.max() * 1.05]
    a.plot(lim, lim, "k-", lw=0.6)
    a.set_xlabel("reference covariance entry")
    a.set_ylabel(".noise covariance entry")
    a.legend(fontsize=7)
    p2 = save_png(fig, Path(out_dir) / "noise_cov.png")
    return [p1, p2]
