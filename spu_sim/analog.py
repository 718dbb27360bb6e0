"""AnalogSolver: the op-amp integrator SPU as a linear-solve primitive for optimisers (TNGD).

    solver = AnalogSolver(circuit=None, kappa=0.0, seed=0, readout=None)   # readout: {"adc": {"bits": 8}}
    x_t = solver.solve(A, b, x0, t_stop_tau)      # state after analog time t_stop_tau, read through the ADC
    x_t = solver.solve_factored(J, H, damping, b, x0, t_stop_tau)   # A = J^T H J + damping I, never formed (N x N)

Each call runs the whole chain of spu_sim.pipeline on a fresh netlist: validate (A must be SPD; the arrays go
straight into a Problem, the circuit/simulation/readout sections are validated once at construction) -> design (element values, scaling) -> netlist -> ngspice transient from the initial condition x0 for
t_stop_tau (problem time units: dx = -(A x - b) dt/tau + sqrt(2 kappa/tau) dW) -> readout of the final
state in problem units (the last ADC sample only: readout.read_final_state; no result files, no statistics).
Both solves share that run (``_final_state``). With kappa = 0 the netlist has no noise sources, so ngspice takes large
adaptive steps and a solve costs little more than loading the netlist.

A new netlist per call rather than ``alter`` on a loaded circuit: the topology itself changes between
calls (an entry changing sign moves its resistor to the inverted copy, and the scaling s_x, alpha and
R_in follow the problem), and ``alter`` is not cheaper anyway. Measured at N = 130 (17030 resistors):
loading the netlist 0.068 s, altering every resistor 0.074 s (4.4 us each), the transient 0.27 s.

``solve_factored`` programs the factors into topology ``opamp_factored`` (spu_sim.topologies.opamp_factored:
m summers for u = J x, m for z = H u, the J^T array and the damping leak into the N integrators; m (m + 2N)
resistors) with the same circuit sections (the ``topology`` key is replaced); it builds a FactoredProblem
directly, so nothing of size N x N is formed on the way.

Defaults for training problems: r_max_ohm 1e9 and prune_below_relative 1e-6 (dense circuit; the factorised circuit
derives its default from the resistor resolution, spu_sim.topologies.opamp_factored.config), because a GGN has entries
many decades below its largest one; pruned entries are counted in ``last_pruned``.

Noise (kappa > 0): the readout is one sample at t_stop_tau, so the noise DACs' step is chosen commensurate with it,
noise_dt_tau = t_stop_tau / K with K = ceil(t_stop_tau * noise_oversample * lambda_max) (lambda_max of A: the factorised
problem's m x m core, ``FactoredProblem.core_eigenvalues``, or the dense A's largest eigenvalue), never coarser than the
design's own rule 1 / (noise_oversample lambda_max). The linear engine then integrates the samples exactly on
that grid at any size (above its state threshold method lowrank on the factorised circuit with ideal op-amps, else
krylov). The noise samples of one solve (d K of them, 8 bytes each) are one array up to pipeline.STREAM_NOISE_BYTES
and above it a streamed SampleBlock that method lowrank reads chunk by chunk (spu_sim.circuit). The one array is
drawn in a background thread from the moment K is known (parts/noise_dacs.EarlyNoiseSamples), so that the draws (a
sequential stream, about 12 ns a Gaussian) run on a second core while the design is made; the build takes the same
numbers (pipeline.build_circuit), and every failing path stops and joins the thread. A solve whose
samples (or, streamed, the chunks) exceed the machine's free memory (the pipeline's share, pipeline.MEMORY_SHARE)
is refused before any work naming t_stop_tau and kappa (an optimiser has no ``simulation`` section); the design's and the engine's other refusals keep their
class (BadInputError, DesignError) with the AnalogSolver's own arguments (backend, kappa, t_stop_tau) in front.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
from pydantic import ValidationError

from . import io, pipeline
from .config import AdcConfig, format_validation_error
from .errors import BadInputError, ConfigError
from .parts.noise_dacs import EarlyNoiseSamples
from .pipeline import circuit_for_run, prepare_problem, run_engine
from .problems import FactoredProblem, Problem, validate_spd
from .readout import make_adc, read_final_state
from .run_config import load_run_config

DEFAULT_INTEGRATOR = {"r_max_ohm": 1e9, "prune_below_relative": 1e-6}
DENSE_EIGH_MAX = 400              # the dense A's lambda_max by eigvalsh up to this size, else eigsh
#: the longest transient ngspice resolves, in time constants of the circuit's fastest mode (t_stop_tau lambda_max):
#: measured noise-free at d = 2, 1e10 runs in 0.07 s, 1e12 in 7 s, 1e15 stalls for minutes or ends in
#: "Timestep too small" (its float64 time no longer resolves the steps)
NGSPICE_MAX_SPAN = 1e10


def lambda_max(problem: Problem | FactoredProblem) -> float:
    """Largest eigenvalue of the problem's A (A = J^T H J + damping I never formed for a factorised problem)."""
    if isinstance(problem, FactoredProblem):
        return float(problem.damping + max(float(problem.core_eigenvalues[-1]), 0.0))
    A = problem.A
    if A.shape[0] <= DENSE_EIGH_MAX:
        return float(np.linalg.eigvalsh(A)[-1])
    return float(spla.eigsh(A, k=1, which="LA", tol=1e-6, v0=np.ones(A.shape[0]), return_eigenvectors=False)[0])


def solver_readout(readout: dict[str, Any] | None) -> AdcConfig:
    """The ADC of a solver's ``readout`` section (a run's ``readout`` with only ``adc``: the solve reads its final
    state, so the sample period is the solve's t_stop_tau and no waveform file is kept); ConfigError naming the key."""
    if readout is None:
        return AdcConfig()
    if not isinstance(readout, dict):
        raise ConfigError(f"readout: got {type(readout).__name__}; give a mapping such as {{'adc': {{'bits': 8}}}}")
    for key in readout:
        if key != "adc":
            raise ConfigError(f"readout.{key}: not a key of a solver's readout (it reads the final state at t_stop_tau "
                              "through the ADC); remove it (valid keys here: adc)")
    try:
        return AdcConfig.model_validate(readout.get("adc") or {})
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, root="readout.adc", model=AdcConfig)) from None


def _merge(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


class AnalogSolver:
    """Programs (A, b) into the op-amp integrator netlist and runs ngspice for t_stop_tau per call.

    circuit: a dict for the config's ``circuit`` section (integrator ranges, op-amp model,
    non-idealities); kappa: noise level in problem units (0 = noise-free); seed: first noise seed
    (incremented per call so successive solves get independent noise); readout: a run's ``readout`` section with
    only ``adc`` (``{"adc": {"bits": 8}}``; None = the ideal ADC, ``solver_readout``); backend: the engine (a run's
    ``simulation.backend``: ``ngspice-shared``, ``ngspice-subprocess``, ``linear``, ...).
    """

    def __init__(self, circuit: dict[str, Any] | None = None, *, kappa: float = 0.0, seed: int = 0,
                 readout: dict[str, Any] | None = None, backend: str = "ngspice-shared") -> None:
        self.circuit = _merge({"topology": "opamp", "integrator": dict(DEFAULT_INTEGRATOR)}, circuit)
        self._circuit_given = dict(circuit or {})
        self.kappa = float(kappa)
        self.seed = int(seed)
        self.adc = solver_readout(readout)
        self.backend = backend
        self.calls = 0
        self.tau_s = float("nan")
        self.last_pruned = 0
        self.last_engine_s = 0.0
        self._cfg_factored = None   # the opamp_factored sections, validated at the first solve_factored
        # validated once: every solve reuses these sections (its problem is passed as arrays, not as a config)
        self._cfg = load_run_config({
            "problem": {"matrix": [[1.0]], "vector": [0.0], "kappa": self.kappa},
            "circuit": self.circuit,
            "simulation": {"t_stop_tau": 1.0, "burn_in_tau": 0.0, "seed": self.seed, "analyses": ["tran"],
                           "backend": self.backend},
            "readout": {"sample_dt_tau": 1.0, "adc": self.adc.model_dump(exclude_none=True)}})

    def problem(self, A: np.ndarray, b: np.ndarray, x0: np.ndarray) -> Problem:
        """The validated Problem of one solve (A symmetric positive definite, b and x0 finite of length d)."""
        A = np.asarray(A, dtype=float)
        validate_spd(A, field="AnalogSolver: A", condition=False)   # the opamp design refuses a nearly singular A
        d = A.shape[0]
        b, x0 = np.asarray(b, dtype=float), np.asarray(x0, dtype=float)
        for name, v in (("b", b), ("x0", x0)):
            if v.shape != (d,) or not np.all(np.isfinite(v)):
                raise BadInputError(f"AnalogSolver: {name} must hold {d} finite numbers (got shape {v.shape})")
        return Problem(A=A, b=b, kappa=self.kappa, x0=x0)

    def solve(self, A: np.ndarray, b: np.ndarray, x0: np.ndarray, t_stop_tau: float) -> np.ndarray:
        """x(t_stop_tau) of the circuit started at x0, in problem units, shape (d,)."""
        if t_stop_tau <= 0:
            return np.asarray(x0, float).copy()
        problem = self.problem(A, b, x0)
        return self._final_state(self._prepare(self._cfg, t_stop_tau, problem, early=True), t_stop_tau)

    def noise_steps(self, problem: Problem | FactoredProblem, t_stop_tau: float) -> int:
        """K noise steps per solve of t_stop_tau (module doc); 0 without noise."""
        if self.kappa <= 0:
            return 0
        return max(int(np.ceil(t_stop_tau * self._cfg.simulation.noise_oversample * lambda_max(problem) - 1e-9)), 1)

    def _prepare(self, base, t_stop_tau: float, problem, key: str = "t_stop_tau", early: bool = False):
        """The prepared run of one solve: the validated sections with this call's run length, seed (one per call),
        readout period (t_stop_tau) and, with noise, the commensurate noise step (module doc). key: the caller's name of
        the run length in its errors (t_stop_tau, or delay_tau for TNGD's delay phase). early (a solve that runs):
        the noise samples (one array, not streamed) are drawn in a background thread from here on, while the design
        is made and the circuit built (prep.early_noise, taken by pipeline.build_circuit; the same numbers)."""
        sim = {"t_stop_tau": float(t_stop_tau), "seed": self.seed + self.calls}
        k = self.noise_steps(problem, t_stop_tau)
        draw = None
        if k:
            need_mb, free_mb = 8.0 * k * problem.d / 1e6, pipeline.free_memory_mb()
            streamed = pipeline.noise_streamed(problem.d, k)   # read in chunks: the pipeline's estimate
            if not streamed and need_mb > pipeline.MEMORY_SHARE * free_mb:   # before the pipeline's own check
                raise BadInputError(f"AnalogSolver: a noisy solve of t_stop_tau = {t_stop_tau:g} at N = {problem.d} needs {k} noise"
                                    f" steps x {problem.d} sources = {need_mb:.4g} MB of samples in memory, {free_mb:.4g}"
                                    f" MB are free; shorten t_stop_tau, set kappa = 0 or free memory")
            sim["noise_dt_tau"] = float(t_stop_tau) / k
            if early and not streamed:
                draw = EarlyNoiseSamples(problem.d, k, sim["seed"])
        try:
            prep = self._prepared(base, sim, t_stop_tau, problem, key)
        except BaseException:
            if draw is not None:
                draw.close()
            raise
        if draw is not None:
            if prep.design.has_noise and draw.matches(prep.design.d, prep.n_noise_steps, prep.cfg.simulation.seed):
                prep.early_noise = draw
            else:
                draw.close()
        return prep

    def _prepared(self, base, sim: dict, t_stop_tau: float, problem, key: str):
        """_prepare's design and checks."""
        cfg = base.model_copy(update={"simulation": base.simulation.model_copy(update=sim),
                                      "readout": base.readout.model_copy(update={"sample_dt_tau": float(t_stop_tau)})})
        try:
            prep = prepare_problem(cfg, problem, result=False)   # a final-state readout: no result matrices
        except BadInputError as err:
            raise type(err)(f"AnalogSolver(backend={self.backend}, kappa={self.kappa:g}) at {key} = {t_stop_tau:g}: {err}")\
                from None
        self._check_span(prep, t_stop_tau, key)
        return prep

    def _check_span(self, prep, t_stop_tau: float, key: str) -> None:
        """ConfigError naming ``key`` when an ngspice transient of t_stop_tau would span more than NGSPICE_MAX_SPAN time
        constants of the circuit's fastest mode (the design's noise step is 1 / (noise_oversample lambda_max), or
        t_stop_tau / K with noise): the point estimate of the run, before the engine stalls on it."""
        if not self.backend.startswith("ngspice"):
            return      # the linear engine steps exactly: any span is one matrix exponential
        span = t_stop_tau / (prep.design.noise_dt_tau * prep.cfg.simulation.noise_oversample)
        if span > NGSPICE_MAX_SPAN:
            slowest = prep.design.slowest_rate_tau
            raise ConfigError(
                f"{key}: {t_stop_tau:.4g} tau spans {span:.3g} time constants of the circuit's fastest mode on "
                f"{self.backend}, beyond the {NGSPICE_MAX_SPAN:.0e} ngspice resolves (its time step stalls, "
                f"'Timestep too small'); lower {key} (the slowest mode settles within 10 / {slowest:.3g} = "
                f"{10.0 / slowest:.3g} tau) or use the linear backend")

    def _final_state(self, prep, t_stop_tau: float) -> np.ndarray:
        """Build the circuit, run the engine in a temporary folder and read the final state through the ADC (no
        result files, no statistics of the two samples); records the call's bookkeeping. The engine's refusals
        carry the AnalogSolver's arguments in front (module doc)."""
        try:
            with io.temp_folder() as tmp:
                try:
                    circuit = circuit_for_run(prep, Path(tmp), keep=False)
                    plots, self.last_engine_s = run_engine(prep, circuit, Path(tmp))
                except BadInputError as err:
                    raise type(err)(f"AnalogSolver(backend={self.backend}, kappa={self.kappa:g}) at t_stop_tau = "
                                    f"{t_stop_tau:g}: {err}") from None
        finally:        # an early draw the build did not take (it failed before): stopped, its thread joined
            if prep.early_noise is not None:
                prep.early_noise.close()
                prep.early_noise = None
        d = prep.design
        x = read_final_state(plots["tran"], d, make_adc(prep.cfg, d), prep.sample_dt_tau * d.tau_s, prep.t_stop_s)
        self.calls += 1
        self.tau_s = float(d.tau_s)
        self.last_pruned = len(d.pruned)
        return x

    def _factored_circuit(self) -> dict[str, Any]:
        """The circuit section without the dense default prune threshold unless the caller set one."""
        integrator = dict(self.circuit["integrator"])
        if "prune_below_relative" not in (self._circuit_given.get("integrator") or {}):
            integrator.pop("prune_below_relative", None)
        return {**self.circuit, "integrator": integrator}

    def _factored_cfg(self):
        if self._cfg_factored is None:
            self._cfg_factored = load_run_config({
                "problem": {"factors": {"J": [[1.0]], "H": [[1.0]], "damping": 1.0}, "vector": [0.0], "kappa": self.kappa},
                "circuit": {**self._factored_circuit(), "topology": "opamp_factored"},
                "simulation": self._cfg.simulation.model_dump(), "readout": self._cfg.readout.model_dump()})
        return self._cfg_factored

    def solve_factored(self, J: np.ndarray, H: np.ndarray, damping: float, b: np.ndarray, x0: np.ndarray,
                       t_stop_tau: float) -> np.ndarray:
        """x(t_stop_tau) of the factorised circuit (A = J^T H J + damping I; J (m, N), H (m, m) symmetric PSD)
        started at x0, in problem units, shape (N,)."""
        problem = FactoredProblem.create(J, H, damping, b, self.kappa, x0, field="AnalogSolver")
        if t_stop_tau <= 0:
            return problem.x0.copy()
        return self._final_state(self._prepare(self._factored_cfg(), t_stop_tau, problem, early=True), t_stop_tau)

    def design(self, A: np.ndarray, b: np.ndarray, x0: np.ndarray, t_stop_tau: float, key: str = "t_stop_tau"):
        """The design of ``solve(A, b, x0, t_stop_tau)`` without running it (validation, element values, the run's
        limits): the check a caller makes before a long run. Raises what ``solve`` would raise before the engine;
        key: the caller's name of t_stop_tau in the errors."""
        return self._prepare(self._cfg, t_stop_tau, self.problem(A, b, x0), key)

    def design_factored(self, J: np.ndarray, H: np.ndarray, damping: float, b: np.ndarray, x0: np.ndarray,
                        t_stop_tau: float, key: str = "t_stop_tau"):
        """The design of ``solve_factored(J, H, damping, b, x0, t_stop_tau)`` without running it (see ``design``)."""
        problem = FactoredProblem.create(J, H, damping, b, self.kappa, x0, field="AnalogSolver")
        return self._prepare(self._factored_cfg(), t_stop_tau, problem, key)
