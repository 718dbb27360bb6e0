"""Small-signal noise analysis of the realised circuit: ngspice ``.noise`` -> exact stationary covariance.

    metrics = run_noise("configs/noise_d4.yaml", "runs/noise")     # CLI: spu-sim noise CONFIG --out DIR

What runs: one circuit through the configured engine (simulation.backend; the ngspice engines), with
d (d + 1) / 2 ``.noise`` analyses. The topology's ``noise`` hooks (spu_sim.topologies.<name>.noise) say where
the noise enters, the small-signal design and the exact theory; this module does the rest:

- the circuit of the config (same design, tolerance, quantisation, op-amp model) without its transient noise
  DACs (filesource samples contribute nothing to ``.noise``; a resistor does), plus per variable i

      RNQ<i> nq<i> 0 R_aux        a noisy resistor, shorted by
      VNQ<i> nq<i> 0 DC 0         a 0 V source that senses its thermal noise current (two-sided 2 kT / R_aux)
      FNQ<i> 0 <node_i> VNQ<i> g  a (noiseless) CCCS copying g_i times that current into the topology's node

  so the resistor carries no signal current at all and the node receives a pure noise current of two-sided
  intensity q_i = g_i^2 2 kT / R_aux, kT at circuit.temperature.temp_c (``.temp`` in the netlist). Every other
  resistor is noiseless (``noisy=0``) unless element_noise=True.
- the AC trick: ``.noise`` needs an input source with an AC value to refer the noise to. VNACIN (DC 0, AC 1)
  drives only its own noiseless 1 ohm load, so the circuit is unchanged; the output noise does not depend
  on the input source at all, and the input-referred noise ngspice also reports is meaningless and ignored.
- the intrinsic sources of the config (circuit.thermal_noise, circuit.opamp.en_v_per_rthz / in_a_per_rthz /
  flicker_corner_hz), in the small-signal form of spu_sim.parts.intrinsic_noise: the same spectra as the
  transient's seeded samples (thermal noise of R_noise, absent from the .noise design, is the one difference:
  2 kT / R_noise against the injected v_n^2 h / R_noise^2, a relative 1e-8 at the shipped values).
- outputs v(o<i>) (variances S_ii) and differential outputs v(o<i>, o<j>), i < j, of the readout nodes:
  Var(V_i - V_j) = S_ii + S_jj - 2 S_ij, so S_ij = (S_ii + S_jj - Var_ij) / 2: the full covariance,
  from onoise_total (the rms integrated over [f_start, f_stop]) with no sampling error.

Theory (t in tau, problem units, from the topology): drift K and diffusion D, S solves K S + S K^T = D.
One-sided voltage spectrum in V^2/Hz: G(f) = 2 tau_s (i w tau_s + K)^-1 D_V (i w tau_s + K)^-H,
w = 2 pi f, D_V = D / s_x^2; for symmetric K and isotropic D it is a sum of Lorentzians, one per mode k:
G_ii(f) = sum_k U_ik^2 2 tau_s D_V / (lambda_k^2 + (w tau_s)^2). The band [f_start, f_stop] spans
span_decades beyond the slowest and fastest mode, so the truncated tails are 2/pi 10^-span_decades each.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..circuit import CCCS, Circuit, Comment, Noise, NoiseSource, Resistor, ResistorArray, VoltageSource
from ..config import save_config
from ..run_config import Config, load_run_config
from ..engines import ENGINES, get_engine
from ..engines.progress import elapsed_line
from ..engines.waveform_files import write_waveforms
from ..errors import BadInputError
from ..parts.element_table import applied_text, write_element_table
from ..parts.opamp import is_subckt
from ..parts.intrinsic_noise import intrinsic_from_config, with_intrinsic_noise
from ..pipeline import prepare, simulate, staged
from ..plotting import pyplot, save_png
from ..spice import write_circuit
from ..topologies import TOPOLOGIES, CircuitRequest

K_BOLTZMANN = 1.380649e-23
NOISE_NETLIST_NAME = "noise.cir"
NOISE_ELEMENTS_NAME = "noise_elements.csv"   # elements.csv of noise.cir (the folder may hold a run's elements.csv)
NOISE_NPZ = "noise.npz"
NOISE_METRICS = "noise_metrics.json"
NOISE_CONFIG = "noise_config.yaml"   # not config.yaml: the folder may hold a simulate run's files too
NOISE_WAVEFORMS_STEM = "noise_waveforms"   # noise_waveforms.raw (readout.waveforms): every spectrum and total
R_AUX_OHM = 1e3


def _kT(cfg: Config) -> float:
    return K_BOLTZMANN * (cfg.circuit.temperature.temp_c + 273.15)


def _noise_prep(config):
    """(the validated config, the prepared design used for .noise, its topology)."""
    cfg = load_run_config(config)
    topo = TOPOLOGIES.get(cfg.circuit.topology)
    if topo.noise is None:
        have = [n for n in TOPOLOGIES.names() if TOPOLOGIES.get(n).noise is not None]
        raise BadInputError(f"circuit.topology: {topo.name} has no small-signal noise analysis; use one of: "
                            f"{', '.join(have)}")
    engine = get_engine(cfg.simulation.backend)
    if not engine.sign_off:   # .noise is an ngspice analysis; the linear engines integrate transients only
        runs_noise = [n for n in ENGINES.names() if get_engine(n).sign_off]
        raise BadInputError(f"simulation.backend: {engine.name} runs no .noise analysis (it integrates transients); "
                            f"spu-sim noise needs an ngspice engine: set simulation.backend to one of "
                            f"{', '.join(runs_noise)}")
    prep = prepare(topo.noise.design_config(cfg))
    if prep.problem.kappa <= 0:
        raise BadInputError("problem.kappa: must be > 0 for a noise analysis (kappa sets the injected noise)")
    return cfg, prep, topo


def frequency_band(topo, design, span_decades: float) -> tuple[float, float]:
    """[f_start, f_stop] in Hz: span_decades below the slowest and above the fastest mode of the realised
    drift (and above the topology's own fastest element, e.g. the op-amp pole)."""
    K = topo.noise.theory(design, 0.0, False)["K"]
    lam = np.abs(np.linalg.eigvals(K))
    f_lo = lam.min() / (2 * np.pi * design.tau_s) / 10 ** span_decades
    f_hi = lam.max() / (2 * np.pi * design.tau_s) * 10 ** span_decades
    return float(f_lo), float(max(f_hi, topo.noise.f_min_stop_hz(design)))


def noise_circuit(topo, design, cfg: Config, pairs: list[tuple[int, int]], f_start: float, f_stop: float,
                  points_per_decade: int, element_noise: bool = False) -> Circuit:
    """The circuit of the design without its transient noise DACs, every resistor noiseless unless
    element_noise, plus the injection (module doc) and one Noise analysis per output pair."""
    base = topo.build_circuit(topo.noise.small_signal_design(design),
                              CircuitRequest(analyses=(), t_stop_s=0.0, step_s=0.0, reltol=cfg.simulation.reltol))
    elements = [dataclasses.replace(e, noisy=False) if isinstance(e, (Resistor, ResistorArray)) and not element_noise else e
                for e in base.elements if not isinstance(e, NoiseSource)]
    spec = intrinsic_from_config(cfg.circuit)
    if spec is not None:     # the transient's intrinsic sources in their small-signal form (same spectra)
        dt_s = design.noise_dt_tau * design.tau_s
        elements = with_intrinsic_noise(elements, spec, dt_s, int(np.ceil(cfg.simulation.t_stop_tau / design.noise_dt_tau)),
                                        cfg.simulation.seed, small_signal=R_AUX_OHM)
    nodes, gains = topo.noise.injection(design, _kT(cfg), R_AUX_OHM)
    elements.append(Comment(f"noise injection: thermal current of RNQ<i> ({R_AUX_OHM:g} ohm, shorted by VNQ<i>) "
                            f"times g_i = {float(gains[0]):.6g} (i = 1) into {nodes[0]} ... = the process's noise current"))
    for i, (node, g) in enumerate(zip(nodes, gains), start=1):
        elements += [Resistor(f"RNQ{i}", f"nq{i}", "0", R_AUX_OHM), VoltageSource(f"VNQ{i}", f"nq{i}", "0", 0.0),
                     CCCS(f"FNQ{i}", "0", node, f"VNQ{i}", float(g))]
    elements.append(Comment(".noise needs an AC input source: VNACIN drives only its own 1 ohm load (output noise "
                            "is independent of it)"))
    elements += [VoltageSource("VNACIN", "nacin", "0", 0.0, ac_v=1.0), Resistor("RNACIN", "nacin", "0", 1.0, noisy=False)]
    out = base.readout_nodes
    analyses = [Noise(out[i], None if i == j else out[j], "VNACIN", points_per_decade, f_start, f_stop)
                for i, j in pairs]
    return Circuit(title=f"spu-sim .noise analysis of the circuit below ({len(pairs)} outputs): {base.title}",
                   header=base.header, elements=elements, readout_nodes=out, analyses=analyses,
                   options=dict(base.options), temp_c=float(cfg.circuit.temperature.temp_c))


def output_pairs(d: int) -> list[tuple[int, int]]:
    """(i, i) for the variances, then (i, j), i < j, for the differential outputs (0-based)."""
    return [(i, i) for i in range(d)] + [(i, j) for i in range(d) for j in range(i + 1, d)]


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
    """The whole noise analysis (module doc); writes OUT/noise.cir (standalone: ``ngspice -b noise.cir`` writes
    noise.raw), noise.npz, noise_metrics.json, the engine's plots (readout.waveforms: noise_waveforms.raw or
    noise_waveforms_<plot>.csv), *.png.

    transient: compare with the transient covariance of OUT/result.npz (from an earlier simulate run into
    OUT) or, if there is none, of a fresh simulate run (not saved). Validation happens before anything is
    written. Returns the metrics dict.
    """
    cfg, prep, topo = _noise_prep(config)
    if points_per_decade < 2 or span_decades <= 0:
        raise BadInputError("noise: points_per_decade must be >= 2 and span_decades > 0")
    if element_noise and cfg.circuit.thermal_noise:
        raise BadInputError("noise: --element-noise and circuit.thermal_noise both add the resistors' thermal noise; "
                            "use one of them")
    design = prep.design
    d = design.d
    out = Path(out_dir)
    existing = out / "result.npz"

    def work(stage: Path) -> dict[str, Any]:
        pairs = output_pairs(d)
        f1, f2 = frequency_band(topo, design, span_decades)
        circuit = noise_circuit(topo, design, cfg, pairs, f1, f2, points_per_decade, element_noise)
        write_circuit(circuit, stage, NOISE_NETLIST_NAME)   # the artifact (the run folder may hold netlist.cir)
        write_element_table(stage / NOISE_ELEMENTS_NAME, circuit, *topo.element_info(design),
                            applied=applied_text(getattr(design, "notes", {})))
        run_dir = stage / "noise_run"
        t0 = time.perf_counter()
        try:
            with elapsed_line(f"engine {cfg.simulation.backend}: {len(pairs)} .noise analyses"):
                plots = get_engine(cfg.simulation.backend).run(circuit, run_dir, timeout_s=cfg.simulation.timeout_s)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        ngspice_s = time.perf_counter() - t0   # the engine run (an ngspice engine: .noise)
        write_waveforms(stage, plots, cfg.readout.waveforms, circuit.title, stem=NOISE_WAVEFORMS_STEM)
        freq = np.real(plots["noise_0"].axis)
        spec = np.array([np.real(plots[f"noise_{k}"].vectors["onoise_spectrum"]) ** 2 for k in range(len(pairs))])
        total = np.array([float(np.real(plots[f"noise_total_{k}"].node("onoise_total"))[0]) ** 2
                          for k in range(len(pairs))])          # V^2 over the band
        var = {p: t for p, t in zip(pairs, total)}
        S_v = np.empty((d, d))
        for (i, j), v in var.items():
            if i == j:
                S_v[i, i] = v
        for (i, j), v in var.items():
            if i != j:
                S_v[i, j] = S_v[j, i] = 0.5 * (S_v[i, i] + S_v[j, j] - v)
        S_noise = S_v * design.s_x ** 2
        th = topo.noise.theory(design, _kT(cfg), element_noise)
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
        extra_arrays, extra_refs = topo.noise.extra_references(design)
        arrays.update(extra_arrays)
        cov_tran = None
        if transient:
            if existing.is_file():
                cov_tran = np.load(existing)["x_cov"]
                tran_source = str(existing)
            else:
                cov_tran = simulate(cfg).arrays["x_cov"]
                tran_source = "fresh simulate run"
            arrays["cov_transient"] = cov_tran

        def rel(a, b):
            return float(np.linalg.norm(a - b) / np.linalg.norm(b))

        metrics: dict[str, Any] = {
            "topology": topo.name, "engine": get_engine(cfg.simulation.backend).name, "d": d, "n_outputs": len(pairs), "points_per_decade": points_per_decade, "band_hz": [f1, f2],
            "element_noise": element_noise, "engine_s": ngspice_s,
            "var_ratio_noise_over_lyapunov": (np.diag(S_noise) / np.diag(S_th)).tolist(),
            "max_abs_var_error_relative": float(np.max(np.abs(np.diag(S_noise) / np.diag(S_th) - 1))),
            "cov_rel_error_vs_lyapunov": rel(S_noise, S_th),
            "cov_rel_error_vs_band_theory": rel(S_noise, S_band),
            "cov_rel_error_vs_kappa_A_inv": rel(S_noise, kappa_Ainv),
            "spectrum_max_rel_error": float(np.max(np.abs(spec / spec_th - 1))),
        }
        # the OU theory has no op-amp pole: above a macromodel's GBW the circuit rolls off faster (error -> 100 %);
        # below GBW / 10 the spectra are comparable
        gbw_hz = getattr(getattr(design, "macro", None), "gbw_hz", None)
        below = freq <= gbw_hz / 10.0 if gbw_hz else np.zeros(0, dtype=bool)
        if below.any():
            metrics["gbw_hz"] = float(gbw_hz)
            metrics["spectrum_max_rel_error_below_gbw"] = float(np.max(np.abs(spec[:, below] / spec_th[:, below] - 1)))
        for key, ref in extra_refs.items():
            metrics[f"cov_rel_error_vs_{key}"] = rel(S_noise, ref)
        if is_subckt(getattr(design, "macro", None)):
            metrics["theory_note"] = ("the theory is the element values' with ideal op-amps: a subcircuit op-amp "
                                      f"(circuit.opamp.model {design.macro.cell.label}) is not modelled, so its effect "
                                      "is in the errors against theory")
        if cov_tran is not None:
            metrics["cov_rel_error_transient_vs_noise"] = rel(cov_tran, S_noise)
            metrics["transient_source"] = tran_source
        io.atomic_save_npz(stage / NOISE_NPZ, **arrays)
        io.atomic_write_json(stage / NOISE_METRICS, metrics)
        io.atomic_write_text(stage / NOISE_CONFIG, save_config(cfg))
        plot_noise(stage / NOISE_NPZ, stage)
        return metrics
    return staged(out, work, family="noise")[0]


def plot_noise(npz_path: Path, out_dir: Path) -> list[Path]:
    """noise_spectra.png (log-log spectra of every node vs theory and the per-mode Lorentzians) and
    noise_cov.png (covariance from .noise vs Lyapunov, kappa A^-1 and the transient). Reads files only."""
    plt = pyplot()
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
