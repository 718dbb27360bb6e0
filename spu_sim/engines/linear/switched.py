"""The switched method of the linear engine: clocked switches (PULSE controls) and held sources, exactly.

    w = tran_switched(circuit, tran, opts)            # LinearWaveforms, method "switched" (with .detail)
    t, vectors, info = switched_tran(circuit, tran)   # the stepping itself (info: segments, configurations, ...)

LinearEngine.tran dispatches here whenever ``needs_switched(circuit)``.

A circuit whose switches are driven by PulseVoltageSource clocks is linear time-invariant between switching
instants. The path is stepped segment by segment, exactly (physics.md section 6):

- Clock schedule. Each Switch's control V(c_pos, c_neg) must be k0 + g * pulse(t) (one PULSE source, scaled and
  offset by ideal sources: read off the model's output row of the control, which must not depend on the state
  or the noise) or a constant k0. ngspice's S switch (model SW, VT, VH) is ON while the control is above
  VT + VH and OFF below VT - VH, keeping its state in between (hysteresis; the initial state is the switch's
  ``on`` flag when the control starts inside the band), and switches abruptly when the control crosses the
  threshold. On the PULSE's linear ramps the crossing instants are exact: t = t_ramp + (level - v_a) / (v_b - v_a)
  * ramp, computed from the PULSE parameters for the first period (from the initial state) and for every
  later one (periodic from the second period on; rise or fall 0 is the .tran step, as in ngspice).
  A PULSE source that drives anything but switch controls (a clock-feedthrough capacitor, a signal input),
  a control that is not one pulse or a constant, and a pulse whose rise + width + fall exceeds its period
  are refused with the element's name (BadInputError, pointing to the ngspice engine).
- Segments. Boundaries are the union of the switching instants, the instants where a sample changes (k dt of
  every NoiseSource: held sources (ZOH, filesource amplstep=true: samples_v[k] on [k dt, (k+1) dt)) jump
  there, piecewise-linear ones (FOH) change slope there) and the output times k step_s; boundaries closer
  than 1e-12 of the run are merged. Inside a segment every switch state is fixed and every input constant or
  linear, so one FOH step x_b = Phi x_a + G0 u_a + G1 u_b is exact (one block exponential on the input space
  per propagator, _propagator; held inputs only: G1 = 0).
- Configurations. Each distinct tuple of switch states gets its LinearModel once (model.build_model on a copy of the circuit with every Switch's ``on`` set, each PULSE replaced by a stand-in
  voltage source whose input column is checked to reach no state). Switches are resistors Ron / Roff, so the
  capacitor graph, hence the state (capacitor node voltages, island differences, inductor currents), is the
  same in every configuration: the state labels are compared and a mismatch is refused; the state carries
  across a switching instant unchanged (capacitor voltages are continuous through finite resistances).
- Propagators are cached per (configuration, segment length): a clocked run repeats a few lengths every
  period, so a few block exponentials serve the whole run; the forcing of a chunk of segments is a few GEMMs
  and the recursion x <- Phi x + f a Python loop over segments (a few us each, one BLAS thread). Cost:
  O(segments * n^2) plus one expm of size n + nu (n + 2 nu with piecewise-linear inputs) per distinct
  (configuration, length); topology opamp_sc (6 segments per clock period, n = d + 2 per branch): d = 4,
  3000 periods in about 0.13 s (docs/linear_engine.md, scripts/bench_linear_sc).

Outputs on t_k = k step_s (the configuration and held values of the segment that starts at t_k, right-continuous
like the held sources; the last point takes the last segment's); optionally a detail window (the last periods of
the slowest clock, finely sampled, exact). .op and .noise of a clocked circuit have no meaning (no operating
point) and are refused by LinearEngine; so is a transient without uic.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.linalg as sla
from threadpoolctl import threadpool_limits

from ...circuit import (Circuit, NoiseSource, PulseVoltageSource, Switch, SwitchModel, Tran, element_types, has_type,
                        stated_elements)
from ...errors import BadInputError
from .model import GROUND, NODE_ATTRS, LinearModel, build_model
from .result import NGSPICE_HINT, LinearWaveforms, RunOptions, output_count

MERGE_REL = 1e-12     # boundaries closer than this fraction of the run are one instant
CHUNK_SEGMENTS = 20000   # segments whose inputs and forcing are held in memory at once
DETAIL_POINTS = 200      # points per clock period of the optional detail window
DETAIL_PERIODS = 4       # the window LinearEngine asks for (the clock zoom of topology opamp_sc)
STAND_IN = "clock_stand_in"


def needs_switched(circuit: Circuit) -> bool:
    """Clocks (PULSE sources) or held (ZOH) noise sources: the transient goes through this module."""
    types = element_types(stated_elements(circuit))    # one C-level pass (a bank: its kinds); noise sources when present
    return has_type(types, PulseVoltageSource) or (has_type(types, NoiseSource)
                                                   and any(e.held for e in circuit.of_type(NoiseSource)))


def is_clocked(circuit: Circuit) -> bool:
    return has_type(element_types(stated_elements(circuit)), PulseVoltageSource)


def _edges(p: PulseVoltageSource, step_s: float) -> tuple[float, float]:
    """(rise, fall) as ngspice takes them: 0 means the .tran step."""
    return (p.rise_s if p.rise_s > 0 else step_s), (p.fall_s if p.fall_s > 0 else step_s)


def pulse_value(p: PulseVoltageSource, t: np.ndarray, step_s: float) -> np.ndarray:
    """SPICE PULSE(v1 v2 td tr tf pw per) at times t."""
    tr, tf = _edges(p, step_s)
    t = np.asarray(t, dtype=float)
    s = np.mod(t - p.delay_s, p.period_s) if p.period_s > 0 else t - p.delay_s
    dv = p.v2_v - p.v1_v
    v = np.full(t.shape, p.v1_v)
    up = s < tr
    v = np.where(up, p.v1_v + dv * s / tr, v)
    v = np.where((s >= tr) & (s < tr + p.width_s), p.v2_v, v)
    dn = (s >= tr + p.width_s) & (s < tr + p.width_s + tf)
    v = np.where(dn, p.v2_v - dv * (s - tr - p.width_s) / tf, v)
    return np.where(t < p.delay_s, p.v1_v, v)


def _check_fanout(circuit: Circuit, pulses: list[PulseVoltageSource]) -> None:
    """A clock may feed switch controls only (its N column must reach no state); refuse anything else."""
    clock_nodes = {n: p for p in pulses for n in (p.n_pos, p.n_neg) if n != GROUND}
    for e in circuit.elements:
        if isinstance(e, PulseVoltageSource):
            continue
        attrs = NODE_ATTRS.get(type(e), ())
        if isinstance(e, Switch):
            attrs = ("n_pos", "n_neg")
        for a in attrs:
            n = getattr(e, a)
            if n in clock_nodes:
                p = clock_nodes[n]
                raise BadInputError(f"PulseVoltageSource {p.name} drives node {n}, which {type(e).__name__} {e.name}"
                                    " uses as a circuit terminal: the linear engine runs clocks that drive switch"
                                    f" controls only (no clock feedthrough, no pulsed inputs); {NGSPICE_HINT}")
    for p in pulses:
        tr, tf = p.rise_s, p.fall_s
        if not (p.period_s > 0 and tr >= 0 and tf >= 0 and p.width_s >= 0 and tr + tf + p.width_s <= p.period_s):
            raise BadInputError(f"PulseVoltageSource {p.name}: rise + width + fall must fit in a positive period;"
                                f" {NGSPICE_HINT}")


def _stand_in_circuit(circuit: Circuit, states: dict[str, bool] | None = None) -> Circuit:
    """The circuit with every PULSE source a stand-in voltage source (an input column) and switches set."""
    els = []
    for e in circuit.elements:
        if isinstance(e, PulseVoltageSource):
            els.append(NoiseSource(e.name, e.n_pos, STAND_IN, "", np.zeros(2), 1.0, held=True, n_neg=e.n_neg))
        elif isinstance(e, Switch) and states is not None:
            els.append(replace(e, on=states[e.name]))
        else:
            els.append(e)
    return replace(circuit, elements=els)


def _crossings(k0: float, g: float, p: PulseVoltageSource, m: SwitchModel, on0: bool, step_s: float):
    """Switching events of one control k0 + g pulse(t): (state at t = 0, events of period 0, events of every
    later period), events as lists of (offset after the period start delay + k period, new state)."""
    tr, tf = _edges(p, step_s)
    lo, hi = k0 + g * p.v1_v, k0 + g * p.v2_v
    v_on, v_off = m.vt_v + m.vh_v, m.vt_v - m.vh_v
    s0 = True if lo > v_on else False if lo < v_off else bool(on0)
    corners = [(0.0, lo), (tr, hi), (tr + p.width_s, hi), (tr + p.width_s + tf, lo)]

    def period(s):
        ev = []
        for (ta, va), (tb, vb) in zip(corners[:-1], corners[1:]):
            if vb > va and not s and vb > v_on:
                ev.append((ta + max(v_on - va, 0.0) / (vb - va) * (tb - ta), True))
                s = True
            elif vb < va and s and vb < v_off:
                ev.append((ta + max(va - v_off, 0.0) / (va - vb) * (tb - ta), False))
                s = False
        return ev, s

    ev0, s1 = period(s0)
    ev1, s2 = period(s1)
    if s2 != s1:  # cannot happen (the last crossing of a period fixes its end state); kept as a guard
        raise BadInputError(f"clock {p.name}: the switch schedule is not periodic; {NGSPICE_HINT}")
    return s0, ev0, ev1


def _control_of(model: LinearModel, row: int, sw: Switch, cols: dict[str, int], pulses: dict[str, PulseVoltageSource]):
    """(k0, g, pulse or None): the control V(c_pos, c_neg) = k0 + g pulse(t), else refused naming the switch."""
    cx, du = model.Cx[row], model.Du[row]
    scale = max(np.abs(du).max(initial=0.0), 1e-30)
    pulse_cols = {cols[n]: n for n in pulses}
    other = [j for j in range(1, len(du)) if j not in pulse_cols]
    live = [j for j in pulse_cols if abs(du[j]) > 1e-12 * scale]
    if (np.abs(cx).max(initial=0.0) > 1e-9 * max(scale, 1.0) or np.abs(du[other]).max(initial=0.0) > 1e-12 * scale
            or len(live) > 1):
        raise BadInputError(f"switch {sw.name}: its control V({sw.c_pos},{sw.c_neg}) is not one PULSE clock or a"
                            f" constant (it follows the circuit's state, a noise source or several clocks); the"
                            f" linear engine runs clocked and programmed switches only; {NGSPICE_HINT}")
    if not live:
        return float(du[0]), 0.0, None
    j = live[0]
    return float(du[0]), float(du[j]), pulses[pulse_cols[j]]


def _schedules(circuit: Circuit, tran: Tran, t_end: float):
    """Per switch group (same control and model): the event times and the state after each; the group of
    every switch; and the initial model (all switches at their initial state) with the column map."""
    pulses = {p.name: p for p in circuit.of_type(PulseVoltageSource)}
    _check_fanout(circuit, list(pulses.values()))
    switches = circuit.of_type(Switch)
    models = {m.name: m for m in circuit.of_type(SwitchModel)}
    for sw in switches:
        if sw.model not in models:
            raise BadInputError(f"switch {sw.name}: model {sw.model} is not defined in the circuit")
    ctl = [f"v({sw.c_pos},{sw.c_neg})" for sw in switches]
    base = build_model(_stand_in_circuit(circuit), extra=ctl)
    cols = {s.name: 1 + k for k, s in enumerate(base.noise)}
    n_saved = len(base.outputs) - len(ctl)
    groups: dict[tuple, int] = {}
    sched: list[tuple[np.ndarray, np.ndarray, bool]] = []
    group_of = {}
    for k, sw in enumerate(switches):
        m = models[sw.model]
        k0, g, p = _control_of(base, n_saved + k, sw, cols, pulses)
        key = (k0, g, None if p is None else p.name, m.vt_v, m.vh_v, sw.on)
        if key not in groups:
            groups[key] = len(sched)
            if p is None:
                s0 = True if k0 > m.vt_v + m.vh_v else False if k0 < m.vt_v - m.vh_v else bool(sw.on)
                sched.append((np.zeros(0), np.zeros(0, bool), s0))
            else:
                s0, ev0, ev1 = _crossings(k0, g, p, m, sw.on, tran.step_s)
                n_per = int(np.ceil(max(t_end - p.delay_s, 0.0) / p.period_s)) + 1
                times = [p.delay_s + o for o, _ in ev0]
                states = [s for _, s in ev0]
                if ev1:
                    off = np.array([o for o, _ in ev1])
                    k_per = np.arange(1, n_per + 1)[:, None]
                    times = np.r_[times, (p.delay_s + k_per * p.period_s + off[None, :]).ravel()]
                    states = np.r_[states, np.tile([s for _, s in ev1], n_per)].astype(bool)
                times, states = np.asarray(times, float), np.asarray(states, bool)
                keep = times < t_end
                sched.append((times[keep], states[keep], s0))
        group_of[sw.name] = groups[key]
    return sched, group_of, base, cols, pulses


def _propagator(m: LinearModel, h: float, foh: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phi, G0, G1 of one step of length h, from one block exponential on the input space:
    expm([[M h, N h, 0], [0, 0, I], [0, 0, 0]]) has Phi, P1 N = int_0^h e^{M (h - s)} ds N and
    G1 = int_0^h e^{M (h - s)} s ds N / h in its first block row; G0 = P1 N - G1. Without piecewise-linear
    inputs (foh False: held and DC sources only) the smaller [[M h, N h], [0, 0]] gives Phi and G0 = P1 N.
    Not the modal form: the switch time constants (Ron C down to 1e-14 s) next to the Roff leak (1e-3 s) give
    eigenvalue spreads of 1e26, where the eigenbasis of the slow cluster loses 1e-4 of the input integrals
    (measured against ngspice: modal 5e-5 sd off, the exponential 5e-8 sd at reltol 1e-6)."""
    n, nu = m.N.shape
    k = 3 if foh else 2
    F = np.zeros((n + (k - 1) * nu, n + (k - 1) * nu))
    F[:n, :n] = m.M * h
    F[:n, n:n + nu] = m.N * h
    if foh:
        F[n:n + nu, n + nu:] = np.eye(nu)
    E = sla.expm(F)
    Phi, P1N = E[:n, :n], E[:n, n:n + nu]
    G1 = E[:n, n + nu:] if foh else np.zeros_like(P1N)
    return Phi, P1N - G1, G1


def _source_columns(srcs: list[NoiseSource], t_end: float, ta: np.ndarray, tb: np.ndarray, mid: np.ndarray):
    """(U_a, U_b): each source's value at every segment's start and end (held: the value on the segment)."""
    Ua = np.zeros((len(ta), len(srcs)))
    Ub = np.zeros_like(Ua)
    for i, s in enumerate(srcs):
        v = np.asarray(s.samples_v, dtype=float)
        if s.held:
            if int(np.floor(t_end / s.dt_s * (1 - 1e-12))) > len(v) - 1:
                raise BadInputError(f"noise source {s.name} has samples up to {len(v) * s.dt_s:g} s but the"
                                    f" transient runs to {t_end:g} s")
            Ua[:, i] = Ub[:, i] = v[np.minimum(np.floor(mid / s.dt_s).astype(np.int64), len(v) - 1)]
        else:
            if (len(v) - 1) * s.dt_s < t_end * (1 - 1e-12):
                raise BadInputError(f"noise source {s.name} has samples up to {(len(v) - 1) * s.dt_s:g} s but the"
                                    f" transient runs to {t_end:g} s")
            knots = np.arange(len(v)) * s.dt_s
            Ua[:, i], Ub[:, i] = np.interp(ta, knots, v), np.interp(tb, knots, v)
    return Ua, Ub


def switched_tran(circuit: Circuit, tran: Tran, detail_periods: int = 0,
                  detail_points: int = DETAIL_POINTS) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """(t, {saved vector: values}, info) on t_k = k step_s; info: segments, configurations, propagators and,
    with detail_periods > 0, "detail": (t, vectors) on detail_points per period of the slowest clock over the
    last detail_periods whole periods (the waveform inside the phases, exact; the fine grid repeats every period,
    so it costs a few more propagators). Small matrices in a Python loop: multithreaded BLAS only adds contention
    (measured 8x slower at n = 52 on a loaded 2-core machine), so one BLAS thread while stepping."""
    with threadpool_limits(limits=1):
        return _switched_tran(circuit, tran, detail_periods, detail_points)


def tran_switched(circuit: Circuit, tran: Tran, opts: RunOptions) -> LinearWaveforms:
    """The ``.tran`` by the switched method: a LinearWaveforms with method "switched" and ``detail`` (the last
    DETAIL_PERIODS periods of the slowest clock, DETAIL_POINTS per period; None without a clock). noise_mode
    samples only (the held and piecewise-linear samples are stepped exactly); method krylov is refused."""
    if opts.method == "krylov":
        raise BadInputError("method krylov runs circuits without clocked switches or held sources; use"
                            " method auto (exact per-segment stepping) for this circuit")
    if opts.noise_mode != "samples":
        raise BadInputError(f"noise_mode {opts.noise_mode}: clocked circuits and held sources run with noise_mode"
                            " samples only (engine linear)")
    t, vectors, info = switched_tran(circuit, tran, detail_periods=DETAIL_PERIODS)
    detail = None
    if "detail" in info:
        td, vd = info["detail"]
        detail = LinearWaveforms("tran", td, vd, engine=opts.engine, noise_mode=opts.noise_mode, method="switched")
    return LinearWaveforms("tran", t, vectors, engine=opts.engine, noise_mode=opts.noise_mode, method="switched",
                           detail=detail)


def _merged(t: np.ndarray, tol: float) -> np.ndarray:
    t = np.sort(t)
    return t[np.r_[True, np.diff(t) > tol]]


def _switched_tran(circuit: Circuit, tran: Tran, detail_periods: int,
                   detail_points: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    if not tran.uic:
        raise BadInputError(".tran without uic on a clocked circuit: a switched-capacitor circuit has no DC"
                            f" operating point to start from; use uic, or {NGSPICE_HINT}")
    n_out = output_count(tran)
    t_grid = np.arange(n_out + 1) * tran.step_s
    t_end = float(t_grid[-1])
    tol = MERGE_REL * t_end
    t_det = np.zeros(0)
    periods = [p.period_s for p in circuit.of_type(PulseVoltageSource)]
    if detail_periods > 0 and periods:
        P = max(periods)
        t0 = max(0.0, (np.floor(t_end / P * (1 + 1e-12)) - detail_periods) * P)
        t_det = t0 + np.arange(detail_periods * detail_points + 1) * (P / detail_points)
        t_det = t_det[t_det <= t_end + tol]
    t_out = _merged(np.r_[t_grid, t_det], tol)      # every time an output is needed at
    sched, group_of, base, cols, pulses = _schedules(circuit, tran, t_end)
    srcs = [s for s in base.noise if s.name not in pulses]
    pts = [t_out] + [times for times, _, _ in sched]
    for dt in {s.dt_s for s in srcs}:
        pts.append(np.arange(1, int(np.floor(t_end / dt)) + 1) * dt)
    bp = np.sort(np.concatenate(pts))
    bp = bp[(bp >= 0) & (bp <= t_end + tol)]
    bp = bp[np.r_[True, np.diff(bp) > tol]]
    bp[-1] = max(bp[-1], t_end)
    ta, tb = bp[:-1], bp[1:]
    mid = 0.5 * (ta + tb)
    n_seg = len(ta)
    # switch states per segment (per group), then the distinct configurations
    Sg = np.zeros((n_seg, len(sched)), dtype=bool)
    for g, (times, states, s0) in enumerate(sched):
        i = np.searchsorted(times, mid, side="right") - 1
        Sg[:, g] = np.where(i >= 0, states[np.maximum(i, 0)] if len(states) else s0, s0)
    configs, cfg = np.unique(Sg, axis=0, return_inverse=True)
    cfg = np.asarray(cfg).ravel()
    names = [sw.name for sw in circuit.of_type(Switch)]
    model_of: list[LinearModel] = []
    for row in configs:
        model = build_model(_stand_in_circuit(circuit, {n: bool(row[group_of[n]]) for n in names}))
        if model.state_labels != base.state_labels:
            raise BadInputError("switch states change the circuit's state variables (a capacitor island merges or"
                                f" splits): the linear engine cannot map the state across them; {NGSPICE_HINT}")
        pc = [cols[n] for n in pulses]
        scale = max(np.abs(model.N).max(initial=0.0), 1e-300)
        if pc and np.abs(model.N[:, pc]).max() > 1e-12 * scale:
            raise BadInputError(f"a clock ({', '.join(pulses)}) reaches the circuit's state; {NGSPICE_HINT}")
        model_of.append(model)
    # inputs of any segments: [1, sources...] with the stand-ins' columns 0 (they reach no state)
    nu = 1 + len(base.noise)
    real_cols = [cols[s.name] for s in srcs]

    def inputs(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Ua, Ub = np.zeros((len(idx), nu)), np.zeros((len(idx), nu))
        Ua[:, 0] = Ub[:, 0] = 1.0
        Ua[:, real_cols], Ub[:, real_cols] = _source_columns(srcs, t_end, ta[idx], tb[idx], mid[idx])
        return Ua, Ub

    # propagators per (configuration, length)
    L = tb - ta
    lkey = np.rint(L / tol).astype(np.int64)
    keys, kidx = np.unique(np.column_stack([cfg, lkey]), axis=0, return_inverse=True)
    kidx = np.asarray(kidx).ravel()
    foh = any(not s.held for s in srcs)
    props = [_propagator(model_of[c], float(L[np.argmax(kidx == k)]), foh) for k, (c, _) in enumerate(keys)]
    Phis = np.stack([P[0] for P in props])
    # the recursion, in chunks of segments (forcing of a chunk: one GEMM pair per key); keep the output states
    i_out = np.minimum(np.searchsorted(bp, t_out - tol), len(bp) - 1)
    slot = np.full(n_seg + 1, -1)
    slot[i_out] = np.arange(len(t_out))
    Xo = np.empty((len(t_out), base.M.shape[0]))
    x = base.x0
    if slot[0] >= 0:
        Xo[slot[0]] = x
    for c0 in range(0, n_seg, CHUNK_SEGMENTS):
        idx = np.arange(c0, min(c0 + CHUNK_SEGMENTS, n_seg))
        Ua, Ub = inputs(idx)
        kk = kidx[idx]
        F = np.empty((len(idx), Xo.shape[1]))
        for k in np.unique(kk):
            sel = np.flatnonzero(kk == k)
            F[sel] = Ua[sel] @ props[k][1].T + Ub[sel] @ props[k][2].T
        sl = slot[idx + 1]
        for j in range(len(idx)):
            x = Phis[kk[j]] @ x + F[j]
            if sl[j] >= 0:
                Xo[sl[j]] = x
    # outputs at the output times: the segment starting there (the last point: the last segment's end)
    seg = np.minimum(i_out, n_seg - 1)
    Ua, Ub = inputs(seg)
    U = np.where((i_out < n_seg)[:, None], Ua, Ub)
    for name, p in pulses.items():
        U[:, cols[name]] = pulse_value(p, t_out, tran.step_s)
    names_out = model_of[0].outputs
    Y = np.empty((len(t_out), len(names_out)))
    for c, m in enumerate(model_of):
        r = np.flatnonzero(cfg[seg] == c)
        Y[r] = Xo[r] @ m.Cx.T + U[r] @ m.Du.T
    def pick(t: np.ndarray) -> dict[str, np.ndarray]:
        r = np.minimum(np.searchsorted(t_out, t - tol), len(t_out) - 1)
        return {"time": t, **{k: Y[r, i] for i, k in enumerate(names_out)}}

    info = {"segments": n_seg, "configurations": len(configs), "propagators": len(keys)}
    if len(t_det):
        info["detail"] = (t_det, pick(t_det))
    return t_grid, pick(t_grid), info
