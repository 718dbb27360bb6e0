"""Engines ``linear`` and ``linear-aggregated``: exact solution of a linear Circuit (no ngspice).

    plots = get_engine("linear").run(circuit, run_dir)     # {"op", "tran", "noise_0", ...} like the ngspice engines
    plots["tran"].noise_mode                               # "samples" (path-identical to ngspice's noise files)

The circuit is reduced to x' = M x + N u, y = Cx x + Du u (spu_sim.engines.linear_mna) and stepped exactly
(spu_sim.engines.linear_step); the maths, cost and measured numbers are in docs/linear_engine.md.

- ``.op``: G_m z = B u(0) (capacitors open, inductors short, noise sources at their t = 0 sample).
- ``.tran`` (uic): the initial state is each capacitor's IC, else the difference of the ``.ic`` node voltages
  (0 where unset), each inductor's ic_a (0 where unset), as ngspice's uic takes them; without uic the
  transient starts from the DC operating point. Outputs on t_k = k step_s up to stop_s (the grid itself, not
  ngspice's adaptive time points). The piecewise-linear noise samples are integrated exactly: the engine
  steps a common fine grid h = step_s / p = dt_s / q where step_s / dt_s = p / q (p, q <= 1000); output
  and noise steps that are not commensurate that way are refused.
- noise_mode ``aggregated`` (engine ``linear-aggregated``, or ``LinearEngine(noise_mode="aggregated")``):
  each NoiseSource is replaced by white noise of two-sided intensity q = dt_s * sum_{|l|<=2} r_l (r_l: the
  samples' autocovariance at lag l, zero mean assumed), the low-frequency intensity of the piecewise-linear
  signal: exact for white samples and for the project's pre-emphasised samples u_k = w_k + (w_k - w_{k-1})/3
  (r_0 = 17/9 v^2, r_1 = -4/9 v^2: q = v_rms^2 dt, while the samples' rms^2 dt would be 17/9 too large).
  ``noise_intensity_v2_s`` ({source name: q}) overrides the estimate. The exact transition over each readout
  step is drawn from a seeded generator (``seed``; default: derived from the samples' bytes, so the same
  config and seed give the same numbers). Statistically exact at the readout times, not path-identical.
  Saved vectors that feed the white noise through directly (a capacitor current) have no value there: refused.
- ``.noise``: exact small-signal spectra and totals (spu_sim.engines.linear_noise), keyed ``noise_<k>`` and
  ``noise_total_<k>`` like the ngspice engines. Switches keep their programmed state (ngspice 39 evaluates
  every S switch as OFF in .ac/.noise: measured, tests/test_engine_linear.py).
- Clocked switches (PulseVoltageSource controls) and held (ZOH) noise sources: ``.tran`` goes through
  spu_sim.engines.linear_switched (exact threshold crossings, one model per switch configuration, exact steps
  between switching instants and sample changes; method ``switched``); ``.op`` / ``.noise`` of a clocked
  circuit and noise_mode aggregated are refused.
- Refused with BadInputError: nonlinear elements (ClippedVCVS), programmed switches whose constant control
  contradicts their state, controls that are not one PULSE or a constant, PULSE sources that drive anything
  but switch controls, a dense model of more than MAX_DENSE_STATES states (noise-free runs take the structured
  method); each message names the element or the size and points to the fix.

Results are ``LinearWaveforms`` (a Waveforms with ``engine``, ``noise_mode`` and ``method`` fields; a clocked
circuit's ``.tran`` also carries ``detail``: its last DETAIL_PERIODS clock periods at 200 points per period, the
waveform inside the phases that the output grid cannot show).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..circuit import Circuit, Noise, NoiseSource, Op, Switch, Tran
from ..errors import BadInputError
from .base import ENGINES, run_in_child
from .linear_mna import NGSPICE_HINT, LinearModel, assemble, build_model, dc_solution, output_rows
from .linear_noise import noise_analysis
from .linear_operator import op_krylov, prefers_krylov, tran_krylov
from .linear_switched import DETAIL_PERIODS, is_clocked, needs_switched, switched_tran
from .linear_step import (COND_MAX, modal_form, modal_noise_factor, phi1, phi2, q_dense, run_loop, run_modal,
                          sqrt_psd)
from .raw import Waveforms

NOISE_MODES = ("samples", "aggregated")
METHODS = ("auto", "modal", "loop", "krylov")   # krylov: engines/linear_operator.py
MAX_DENOMINATOR = 1000


@dataclass
class LinearWaveforms(Waveforms):
    """Waveforms of the linear engine, marked with how they were made."""

    engine: str = "linear"
    noise_mode: str = "samples"
    method: str = ""
    detail: Waveforms | None = None   # clocked circuits: the last DETAIL_PERIODS clock periods, finely sampled


def noise_intensity_v2_s(samples_v: np.ndarray, dt_s: float) -> float:
    """Low-frequency two-sided intensity (V^2 s) of a piecewise-linear noise signal: dt * sum_{|l|<=2} r_l."""
    u = np.asarray(samples_v, dtype=float)[1:]
    n = len(u)
    r = [float(u[: n - l] @ u[l:]) / n for l in range(3)]
    return dt_s * max(r[0] + 2 * r[1] + 2 * r[2], 0.0)


def _seed_of(srcs: list[NoiseSource]) -> int:
    h = hashlib.blake2b(digest_size=8)
    for src in srcs:
        h.update(np.ascontiguousarray(src.samples_v, dtype=float).tobytes())
    return int.from_bytes(h.digest(), "little")


def _grid(tran: Tran, srcs: list[NoiseSource], samples: bool = True) -> tuple[int, int, int, float]:
    """n_out (output steps), p, q, fine step h: step = p h, noise dt = q h (samples=False: the output grid)."""
    if not (tran.step_s > 0 and tran.stop_s > 0):
        raise BadInputError(f".tran step {tran.step_s!r} s and stop {tran.stop_s!r} s must be positive")
    ratio = tran.stop_s / tran.step_s
    n_out = int(round(ratio)) if abs(ratio - round(ratio)) < 1e-9 * max(ratio, 1) else int(np.floor(ratio))
    if not srcs or not samples:
        return n_out, 1, 1, tran.step_s
    dts = {s.dt_s for s in srcs}
    if len(dts) > 1:
        raise BadInputError(f"noise sources with different sample steps {sorted(dts)} s: the linear engine needs one;"
                            f" {NGSPICE_HINT}")
    dt = dts.pop()
    r = tran.step_s / dt
    f = Fraction(r).limit_denominator(MAX_DENOMINATOR)
    if abs(float(f) - r) > 1e-9 * r or f.numerator > MAX_DENOMINATOR:
        raise BadInputError(f"output step {tran.step_s:g} s and noise step {dt:g} s are not commensurate (ratio"
                            f" {r:.12g} is no p/q with p, q <= {MAX_DENOMINATOR}); choose readout.sample_dt_tau as a"
                            f" simple multiple or fraction of the noise step, or {NGSPICE_HINT}")
    p, q = f.numerator, f.denominator
    for s in srcs:
        if (len(s.samples_v) - 1) * q < n_out * p:
            raise BadInputError(f"noise source {s.name} has samples up to {(len(s.samples_v) - 1) * dt:g} s but the"
                                f" transient runs to {n_out * tran.step_s:g} s")
    return n_out, p, q, tran.step_s / p


def _inputs(srcs: list[NoiseSource], q: int, dc_only: bool = False):
    """(j0, j1) -> u at fine steps j0..j1: [1, samples linearly interpolated at j / q] (dc_only: [1])."""
    if not srcs or dc_only:
        return lambda j0, j1: np.ones((j1 - j0 + 1, 1))
    n_s = min(len(s.samples_v) for s in srcs)
    S = np.column_stack([np.asarray(s.samples_v[:n_s], dtype=float) for s in srcs])

    def block(j0: int, j1: int) -> np.ndarray:
        j = np.arange(j0, j1 + 1)
        idx = np.minimum(j // q, n_s - 2)
        frac = ((j - idx * q) / q)[:, None]
        return np.hstack([np.ones((len(j), 1)), S[idx] * (1 - frac) + S[idx + 1] * frac])

    return block


def _check_switches(model_full: LinearModel, n_saved: int) -> None:
    """Every switch's control must be a constant on the right side of its threshold (a programmed switch)."""
    mna = model_full.mna
    for k, (sw, m) in enumerate(mna.switches):
        r = n_saved + k
        cx, du = model_full.Cx[r], model_full.Du[r]
        v = float(du[0])
        scale = max(abs(v), abs(m.vt_v), 1e-30)
        if np.abs(cx).max(initial=0) > 1e-9 * max(scale, 1.0) or np.abs(du[1:]).max(initial=0) > 1e-12 * scale:
            raise BadInputError(f"switch {sw.name}: its control V({sw.c_pos},{sw.c_neg}) varies in time (a clocked"
                                f" switch); the linear engine runs programmed switches only; {NGSPICE_HINT}")
        if (sw.on and v < m.vt_v - m.vh_v) or (not sw.on and v > m.vt_v + m.vh_v):
            raise BadInputError(f"switch {sw.name}: programmed {'ON' if sw.on else 'OFF'} but its control is"
                                f" {v:g} V against VT = {m.vt_v:g} V: ngspice would toggle it; fix the control")


def _start_state(circuit: Circuit, tran: Tran, model: LinearModel) -> np.ndarray:
    """uic: the model's initial state; otherwise the state of the DC operating point."""
    if tran.uic:
        return model.x0
    if circuit.ic_v:
        raise BadInputError(".tran without uic and with .ic: the linear engine takes either uic or the DC"
                            f" operating point as the start; {NGSPICE_HINT}")
    mna = model.mna
    return model.state_of(dc_solution(mna, np.array([1.0] + [float(s.samples_v[0]) for s in mna.noise])))


@ENGINES.add
class LinearEngine:
    """The exact linear engine (see the module docstring). Options may be given here or per run()."""

    name = "linear"
    reads_files = False  # works on the Circuit object alone
    reports_progress = False
    sign_off = False     # exact for linear circuits, judged against ngspice (spu-sim crosscheck)
    default_noise_mode = "samples"

    def __init__(self, *, noise_mode: str | None = None, seed: int | None = None,
                 noise_intensity_v2_s: dict[str, float] | None = None, method: str = "auto") -> None:
        self.noise_mode = noise_mode or self.default_noise_mode
        self.seed = seed
        self.noise_intensity = noise_intensity_v2_s
        self.method = method
        if self.noise_mode not in NOISE_MODES:
            raise BadInputError(f"noise_mode {self.noise_mode!r}: choose one of {', '.join(NOISE_MODES)}")
        if method not in METHODS:
            raise BadInputError(f"method {method!r}: choose one of {', '.join(METHODS)}")

    def run(self, circuit: Circuit, run_dir: Path | None = None, *, timeout_s: float | None = None, progress=None,
            noise_mode: str | None = None, seed: int | None = None,
            noise_intensity_v2_s: dict[str, float] | None = None, method: str | None = None) -> dict[str, Waveforms]:
        """Every analysis of the circuit. run_dir is not written (nothing to write); progress is not reported.
        With timeout_s the work runs in a forked child killed at the limit (engines.base.run_in_child)."""
        if timeout_s is not None:
            return run_in_child(lambda _report: self.run(circuit, run_dir, noise_mode=noise_mode, seed=seed,
                                                         noise_intensity_v2_s=noise_intensity_v2_s, method=method),
                                timeout_s, None, what="the linear engine", run_dir=run_dir)
        mode = noise_mode or self.noise_mode
        if mode not in NOISE_MODES:
            raise BadInputError(f"noise_mode {mode!r}: choose one of {', '.join(NOISE_MODES)}")
        for a in circuit.analyses:
            if not isinstance(a, (Op, Tran, Noise)):
                raise BadInputError(f"analysis {type(a).__name__}: the linear engine runs .op, .tran and .noise only;"
                                    f" {NGSPICE_HINT}")
        out: dict[str, Waveforms] = {}
        noises = [a for a in circuit.analyses if isinstance(a, Noise)]
        if is_clocked(circuit) and (noises or circuit.analysis(Op) is not None):
            raise BadInputError("a clocked circuit (PULSE-driven switches) has no operating point and no small-signal"
                                " .op / .noise; run .tran only (the linear engine steps its switch phases exactly)")
        if noises:
            mna = assemble(circuit)
            for k, a in enumerate(noises):
                for key, w in zip((f"noise_{k}", f"noise_total_{k}"), noise_analysis(circuit, a, mna)):
                    out[key] = LinearWaveforms(w.kind, w.axis, w.vectors, engine=self.name, noise_mode="none",
                                               method="adjoint")
        if circuit.analysis(Op) is not None:
            out["op"] = self.op(circuit, method or self.method)
        tran = circuit.analysis(Tran)
        if tran is not None:
            out["tran"] = self.tran(circuit, tran, mode, self.seed if seed is None else seed,
                                    noise_intensity_v2_s or self.noise_intensity, method or self.method)
        return out

    def op(self, circuit: Circuit, method: str = "auto") -> LinearWaveforms:
        if method == "krylov" or (method == "auto" and prefers_krylov(circuit, noise_ok=True)
                                  and not needs_switched(circuit)):
            return op_krylov(circuit, self.name)
        mna = assemble(circuit)
        u0 = np.array([1.0] + [float(s.samples_v[0]) for s in mna.noise])
        z = dc_solution(mna, u0)
        names, R = output_rows(mna, circuit.saves)
        y = R @ z
        return LinearWaveforms("op", None, {k: np.array([v]) for k, v in zip(names, y)}, engine=self.name,
                               noise_mode="none", method="dc")

    def tran(self, circuit: Circuit, tran: Tran, mode: str, seed: int | None, intensity: dict[str, float] | None,
             method: str) -> LinearWaveforms:
        if needs_switched(circuit):   # clocked switches or held sources: exact per-segment stepping
            if method == "krylov":
                raise BadInputError("method krylov runs circuits without clocked switches or held sources; use"
                                    " method auto (exact per-segment stepping) for this circuit")
            if mode != "samples":
                raise BadInputError(f"noise_mode {mode}: clocked circuits and held sources run with noise_mode"
                                    " samples only (engine linear)")
            t, vectors, info = switched_tran(circuit, tran, detail_periods=DETAIL_PERIODS)
            detail = None
            if "detail" in info:
                td, vd = info["detail"]
                detail = LinearWaveforms("tran", td, vd, engine=self.name, noise_mode=mode, method="switched")
            return LinearWaveforms("tran", t, vectors, engine=self.name, noise_mode=mode, method="switched",
                                   detail=detail)
        if method == "krylov" or (method == "auto" and prefers_krylov(circuit)):
            return tran_krylov(circuit, tran, self.name, mode)
        ctl = [f"v({sw.c_pos},{sw.c_neg})" for sw in circuit.of_type(Switch)]
        model = build_model(circuit, extra=ctl)
        saves = model.outputs[:len(model.outputs) - len(ctl)]
        _check_switches(model, len(saves))
        srcs = model.noise
        n_out, p, q, h = _grid(tran, srcs, samples=mode == "samples")
        x0 = _start_state(circuit, tran, model)
        Cx, Du = model.Cx[:len(saves)], model.Du[:len(saves)]
        mf = modal_form(model.M) if method in ("auto", "modal") else None
        use_modal = mf is not None and (method == "modal" or (np.isfinite(mf.cond) and mf.cond <= COND_MAX))
        used = "modal" if use_modal else "loop"
        if mode == "samples":
            inputs = _inputs(srcs, q)
            if use_modal:
                Y = run_modal(mf, model.N, Cx, Du, x0, h, n_out * p, p, inputs)
            else:
                Y = run_loop(model.M, model.N, Cx, Du, x0, h, n_out * p, p, inputs)
        else:
            Y = self._aggregated(circuit, model, Cx, Du, x0, tran.step_s, n_out, mf if use_modal else None,
                                 seed, intensity)
        t = np.arange(n_out + 1) * tran.step_s
        vectors = {"time": t}
        vectors.update({k: Y[:, i] for i, k in enumerate(saves)})
        return LinearWaveforms("tran", t, vectors, engine=self.name, noise_mode=mode, method=used)

    def _aggregated(self, circuit, model, Cx, Du, x0, h, n_out, mf, seed, intensity) -> np.ndarray:
        srcs = model.noise
        # direct feed-through of the noise (not rounding: relative to the output's state gain)
        feed = np.abs(Du[:, 1:]).max(axis=1, initial=0) > 1e-12 * np.abs(Cx).max(axis=1, initial=0)
        if feed.any():
            names = [model.outputs[i] for i in np.flatnonzero(feed)][:5]
            raise BadInputError(f"saved vector(s) {', '.join(names)} follow the noise sources directly: white noise"
                                " has no value at a time point, so the aggregated noise mode cannot give them; save"
                                " node voltages only or use noise_mode samples")
        qs = np.array([(intensity or {}).get(s.name, None) or noise_intensity_v2_s(s.samples_v, s.dt_s)
                       for s in srcs])
        Nq = model.N[:, 1:] * np.sqrt(qs)[None, :]
        rng = np.random.default_rng(_seed_of(srcs) if seed is None else seed)
        n = model.M.shape[0]
        inputs = _inputs(srcs, 1, dc_only=True)
        N_dc, Du_dc = model.N[:, :1], Du[:, :1]
        if mf is not None:
            W = modal_noise_factor(mf, Nq, h)
            w_diag = np.diag(W).copy()
            if np.abs(W - np.diag(w_diag)).max() <= 1e-12 * np.abs(w_diag).max():
                # isotropic noise into a symmetric M: the modes' noises are independent (O(n) per step)
                def noise(rows):
                    return rng.standard_normal((rows, n)) * w_diag
            else:
                def noise(rows):
                    return rng.standard_normal((rows, n)) @ W.T
            return run_modal(mf, N_dc, Cx, Du_dc, x0, h, n_out, 1, inputs, noise=noise)
        Lq = sqrt_psd(q_dense(model.M, Nq, h))
        return run_loop(model.M, N_dc, Cx, Du_dc, x0, h, n_out, 1, inputs,
                        noise=lambda rows: rng.standard_normal((rows, n)) @ Lq.T)


@ENGINES.add
class LinearAggregatedEngine(LinearEngine):
    """``linear`` with the exact noise aggregated over each readout step (statistically exact, large d)."""

    name = "linear-aggregated"
    default_noise_mode = "aggregated"


def path_at(circuit: Circuit, times_s: np.ndarray, saves: list[str] | None = None) -> dict[str, np.ndarray]:
    """The exact transient (noise_mode samples) at arbitrary times, e.g. ngspice's adaptive time points, for
    cross-checks: the state on the fine grid j h, then one exact partial step of length tau = t - j h to each
    time (modal: x(t) = V [e^{lam tau} y_j + tau phi1(lam tau) Nt u_j + tau phi2(lam tau) Nt (u(t) - u_j)])."""
    tran = circuit.analysis(Tran)
    if needs_switched(circuit):
        raise BadInputError("path_at: clocked or held-source circuits are compared on the output grid"
                            " (LinearEngine.run), not at arbitrary times")
    model = build_model(circuit, saves)
    n_out, p, q, h = _grid(tran, model.noise)
    n = model.M.shape[0]
    inputs = _inputs(model.noise, q)
    mf = modal_form(model.M)
    if not (np.isfinite(mf.cond) and mf.cond <= COND_MAX):
        raise BadInputError(f"path_at needs a diagonalisable state matrix (cond(V) = {mf.cond:.3g})")
    X = run_modal(mf, model.N, np.eye(n), np.zeros((n, model.N.shape[1])), _start_state(circuit, tran, model), h,
                  n_out * p, 1, inputs)
    t = np.asarray(times_s, dtype=float)
    j = np.clip(np.floor(t / h + 1e-9).astype(int), 0, n_out * p)
    tau = np.clip(t - j * h, 0.0, None)
    U = inputs(0, n_out * p)
    ut = np.ones((len(t), U.shape[1]))
    for i, s in enumerate(model.noise):
        ut[:, 1 + i] = np.interp(t, np.arange(len(s.samples_v)) * s.dt_s, s.samples_v)
    Nt = mf.Vinv @ model.N
    z = tau[:, None] * mf.lam[None, :]
    u0 = U[j]
    y = (np.exp(z) * (X[j] @ mf.Vinv.T) + tau[:, None] * phi1(z) * (u0 @ Nt.T)
         + tau[:, None] * phi2(z) * ((ut - u0) @ Nt.T))
    x = (y @ mf.V.T).real
    Y = x @ model.Cx.T + ut @ model.Du.T
    return {k: Y[:, i] for i, k in enumerate(model.outputs)}
