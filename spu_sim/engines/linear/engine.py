"""Engines ``linear`` and ``linear-aggregated``: exact solution of a linear Circuit (no ngspice).

    plots = get_engine("linear").run(circuit, run_dir)     # {"op", "tran", "noise_0", ...} like the ngspice engines
    plots["tran"].noise_mode                               # "samples" (path-identical to ngspice's noise files)

The circuit is reduced to x' = M x + N u, y = Cx x + Du u (model.py) and stepped exactly by one of the methods
below, each ``(circuit, tran, RunOptions) -> LinearWaveforms`` (result.py); the maths, cost and measured numbers
are in docs/linear_engine.md. The choice (``method="auto"``): clocked switches or held sources -> switched
(switched.py); more than krylov.KRYLOV_MIN_STATES states (and noise_mode samples if there are noise sources) ->
lowrank when the circuit states its state matrix as d I + U W V^T (Circuit.drift_factors; lowrank.py: exact through
the m x m core, krylov when its check fails), else krylov (krylov.py; noise samples by a Chebyshev expansion,
chebyshev.py); else the dense model, modal when its eigenbasis is well conditioned, else loop (dense.py). method
``modal``, ``loop``, ``krylov`` or ``lowrank`` forces one (krylov and lowrank refuse noise_mode aggregated and clocked
circuits).

- ``.op``: G_m z = B u(0) (capacitors open, inductors short, noise sources at their t = 0 sample).
- ``.tran`` (uic): the initial state is each capacitor's IC, else the difference of the ``.ic`` node voltages
  (0 where unset), each inductor's ic_a (0 where unset), as ngspice's uic takes them; without uic the
  transient starts from the DC operating point. Outputs on t_k = k step_s up to stop_s (the grid itself, not
  ngspice's adaptive time points). The piecewise-linear noise samples are integrated exactly (dense.fine_grid).
- noise_mode ``aggregated`` (engine ``linear-aggregated``, or ``LinearEngine(noise_mode="aggregated")``):
  each NoiseSource is replaced by white noise of its samples' low-frequency intensity (noise.py;
  ``noise_intensity_v2_s`` ({source name: q}) overrides the estimate). The exact transition over each readout
  step is drawn from a seeded generator (``seed``; default: derived from the samples' bytes, so the same
  config and seed give the same numbers). Statistically exact at the readout times, not path-identical.
  Saved vectors that feed the white noise through directly (a capacitor current) have no value there: refused.
- ``.noise``: exact small-signal spectra and totals (noise.py), keyed ``noise_<k>`` and
  ``noise_total_<k>`` like the ngspice engines. Switches keep their programmed state (ngspice 39 evaluates
  every S switch as OFF in .ac/.noise: measured, tests/test_engine_linear.py).
- Clocked switches (PulseVoltageSource controls) and held (ZOH) noise sources: ``.tran`` goes through
  switched.py (exact threshold crossings, one model per switch configuration, exact steps
  between switching instants and sample changes; method ``switched``); ``.op`` / ``.noise`` of a clocked
  circuit and noise_mode aggregated are refused.
- Refused with BadInputError: nonlinear elements (ClippedVCVS), programmed switches whose constant control
  contradicts their state, controls that are not one PULSE or a constant, PULSE sources that drive anything
  but switch controls, a dense model of more than MAX_DENSE_STATES states (noise_mode samples takes the structured
  method); each message names the element or the size and points to the fix.

Results are ``LinearWaveforms`` (result.py: a Waveforms with ``engine``, ``noise_mode`` and ``method`` fields; a
clocked circuit's ``.tran`` also carries ``detail``: its last DETAIL_PERIODS clock periods at 200 points per period,
the waveform inside the phases that the output grid cannot show; method krylov's ``krylov`` and ``dc``).
"""

from __future__ import annotations

from pathlib import Path

from ...circuit import Circuit, Noise, Op, Tran
from ...errors import BadInputError
from ..base import ENGINES, Cost, Workload, memory_engine_cost, run_in_child
from ..raw import Waveforms
from .dense import MAX_DENOMINATOR, op_dense, step_ratio, tran_dense
from .krylov import op_krylov, prefers_krylov, tran_krylov
from .lowrank import prefers_lowrank, tran_lowrank
from .model import assemble, check_linear
from .noise import noise_analysis
from .result import NGSPICE_HINT, NOISE_MODES, LinearWaveforms, OpMethod, RunOptions, TranMethod
from .switched import is_clocked, needs_switched, tran_switched

METHODS = ("auto", "modal", "loop", "krylov", "lowrank")


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

    def estimate(self, work: Workload) -> Cost:
        """Memory of the noise samples and readout arrays (files only when kept: base.memory_engine_cost). A
        readout step that is no p/q multiple of the noise step (dense.step_ratio) is refused here,
        before the circuit and its files are built (the exact integration needs a common fine grid)."""
        if work.n_sources and work.n_out_points:
            r = work.step_tau / work.noise_dt_tau
            if step_ratio(r) is None:
                raise BadInputError(
                    f"readout.sample_dt_tau: {work.step_tau:.6g} tau and the noise step {work.noise_dt_tau:.6g} tau "
                    f"are not commensurate (ratio {r:.9g} is no p/q with q <= {MAX_DENOMINATOR}); choose a simple "
                    f"multiple or fraction of the noise step, or {NGSPICE_HINT}")
        return memory_engine_cost(work)

    def check(self, circuit: Circuit, noise_mode: str | None = None, method: str | None = None) -> None:
        """Refuse (BadInputError) a circuit this engine cannot run -- an analysis other than .op / .tran / .noise,
        a nonlinear element (a clipped op-amp), a clocked circuit with .op or .noise, a clocked or held-source
        transient with another noise_mode than samples (linear-aggregated) or method krylov -- in one pass over it,
        before any engine runs (a cross-check calls it before its reference run)."""
        mode, method = noise_mode or self.noise_mode, method or self.method
        if circuit.analysis(Tran) is not None and needs_switched(circuit) and (mode != "samples" or method in ("krylov", "lowrank")):
            how = f"noise_mode {mode}" if mode != "samples" else f"method {method}"
            raise BadInputError(f"engine {self.name} ({how}): clocked switches and held sources are stepped exactly "
                                "with their noise samples only; run this circuit on the engine linear "
                                "(simulation.backend: linear, or crosscheck --candidate linear) or on ngspice")
        for a in circuit.analyses:
            if not isinstance(a, (Op, Tran, Noise)):
                raise BadInputError(f"analysis {type(a).__name__}: the linear engine runs .op, .tran and .noise only;"
                                    f" {NGSPICE_HINT}")
        noises = [a for a in circuit.analyses if isinstance(a, Noise)]
        if is_clocked(circuit):
            if noises or circuit.analysis(Op) is not None:
                raise BadInputError("a clocked circuit (PULSE-driven switches) has no operating point and no small-"
                                    "signal .op / .noise; run .tran only (the linear engine steps its switch phases "
                                    "exactly)")
        else:
            check_linear(circuit)   # refuses a nonlinear or unknown element

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
        self.check(circuit, mode, method)
        opts = RunOptions(self.name, mode, self.seed if seed is None else seed,
                          noise_intensity_v2_s or self.noise_intensity, method or self.method)
        out: dict[str, Waveforms] = {}
        noises = [a for a in circuit.analyses if isinstance(a, Noise)]
        if noises:
            mna = assemble(circuit)
            for k, a in enumerate(noises):
                out[f"noise_{k}"], out[f"noise_total_{k}"] = noise_analysis(circuit, a, mna, opts)
        if circuit.analysis(Op) is not None:
            out["op"] = self.op(circuit, opts)
        tran = circuit.analysis(Tran)
        if tran is not None:
            out["tran"] = self.tran(circuit, tran, opts)
        return out

    def op(self, circuit: Circuit, opts: RunOptions) -> LinearWaveforms:
        """The ``.op`` by the method ``op_method`` picks."""
        return op_method(circuit, opts.method)(circuit, opts)

    def tran(self, circuit: Circuit, tran: Tran, opts: RunOptions) -> LinearWaveforms:
        """The ``.tran`` by the method ``tran_method`` picks."""
        return tran_method(circuit, opts.method, opts.noise_mode)(circuit, tran, opts)


def tran_method(circuit: Circuit, method: str, noise_mode: str = "samples") -> TranMethod:
    """The rule of the module doc: clocked switches or held sources -> switched (exact per segment; it refuses
    method krylov itself); lowrank when asked or, under auto, when the circuit states its state matrix in factors
    (Circuit.drift_factors), noise_mode is samples and it has many states (lowrank.prefers_lowrank; it runs krylov
    itself when its check fails); krylov when asked or, under auto, for many states without noise; else dense (modal or
    loop, decided inside by the eigenbasis' condition)."""
    if needs_switched(circuit):
        return tran_switched
    if method == "lowrank" or (method == "auto" and prefers_lowrank(circuit, noise_mode)):
        return tran_lowrank
    if method == "krylov" or (method == "auto" and prefers_krylov(circuit, noise_ok=noise_mode == "samples")):
        return tran_krylov
    return tran_dense


def op_method(circuit: Circuit, method: str) -> OpMethod:
    """krylov (GMRES on the reduced operator) when asked or when auto (or lowrank, which has no .op of its own)
    prefers it for a large unclocked circuit, else one sparse LU of the MNA (dense.op_dense)."""
    if method == "krylov" or (method in ("auto", "lowrank") and prefers_krylov(circuit) and not needs_switched(circuit)):
        return op_krylov
    return op_dense


@ENGINES.add
class LinearAggregatedEngine(LinearEngine):
    """``linear`` with the exact noise aggregated over each readout step (statistically exact, large d)."""

    name = "linear-aggregated"
    default_noise_mode = "aggregated"
