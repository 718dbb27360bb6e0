"""Thermodynamic natural gradient descent (TNGD, Donatella et al. 2024) with an SPU in the loop.

At step k the SPU holds the damped curvature and the gradient of the current mini-batch,

    A_k = C_k + lambda I  (C = U^T U, the GGN or empirical Fisher),   b_k = grad_k,

and runs the Ornstein-Uhlenbeck dynamics  dx = -(A x - b) dt / tau + sqrt(2 kappa / tau) dW  whose mean is

    E[x(t)] = x* + expm(-A t) (x0 - x*),   x* = A^-1 b   (t in units of tau).

The readout g_k = x(t) is the update direction: theta <- theta - lr * g_k.

Convention for warm start and delay (what ``spu_step`` implements):
  * warm start on (default): x0 is the previous step's final SPU state (at step 0: the gradient);
    warm start off: x0 = grad_k at every step (t = 0 is then exactly an SGD step, t -> inf an NGD step).
  * delay t_d = ``delay_tau`` (only meaningful with warm start): between reading theta and uploading
    (A_k, b_k) the SPU keeps evolving under the previous (A_{k-1}, b_{k-1}) for t_d, then under
    (A_k, b_k) for t = ``t_stop_tau``; the readout is the final state. At step 0 there is no previous problem
    and no delay. With warm start off the state is reset at upload, so the delay has no effect.

Backends (``backend``, spu_sim.optim.backend): ``ideal`` or the name of a registered engine.
  * ``ideal``: the exact OU transient by an eigendecomposition of the symmetric A (O(N^3)), mean only for
    kappa = 0, else mean plus an exact Gaussian sample with covariance kappa A^-1 (I - expm(-2 A t)),
    drawn from a generator seeded by (seed, step, phase) so runs are reproducible.
  * an engine (``ngspice-shared``, ``ngspice-subprocess``, ``linear``, ...: ``spu_sim.engines.ENGINES``):
    ``spu_sim.analog.AnalogSolver(circuit, kappa=, seed=, readout=, backend=engine)``: every step programs the
    problem into a netlist and runs it on that engine. When the curvature factor U (rows m, C = U^T U) has m < N rows the
    factorised circuit is used (``solve_factored(U, I_m, lambda, b, x0, t)``, topology ``opamp_factored``:
    m (m + 2N) resistors, A never formed); otherwise the dense ``opamp`` network (``solve(A, b, x0, t)``, N^2).
The SPU sees the damped curvature as a ``Curvature(U, damping)``; ``dense()`` forms A where a backend needs it.
``tngd_adam`` reuses ``spu_step`` and feeds the estimate to Adam's rule.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Callable, NamedTuple

import numpy as np

from spu_sim.analog import AnalogSolver
from spu_sim.errors import BadInputError
from spu_sim.optim import backend as spu_backend
from spu_sim.optim.base import OPTIMIZERS, LearningRate, LocalProblem, Transform, lr_at

DEFAULT_TAU_S = 1e3 * 1e-9  # R = 1 kOhm, C = 1 nF
#: the physical range of an analog time or delay per step (t_stop_tau, delay_tau), in tau: 1e6 tau is a second of analog
#: time per step at tau = 1 us, long after any SPU of a training problem has settled (spu_sim.train.config checks it)
MAX_T_TAU = 1e6

Evolve = Callable[[np.ndarray, np.ndarray, np.ndarray, float, int, int], np.ndarray]


class Curvature(NamedTuple):
    """A = U^T U + damping I in factored form: U (m, N) the curvature factor (GGN or empirical Fisher)."""

    factor: np.ndarray
    damping: float

    @property
    def factored(self) -> bool:
        """True when the factorised circuit is smaller than the dense one (m < N)."""
        return self.factor.shape[0] < self.factor.shape[1]

    def dense(self) -> np.ndarray:
        """Dense (N, N) A, cost O(m N^2)."""
        u = self.factor
        return u.T @ u + self.damping * np.eye(u.shape[1])


def _dense(a) -> np.ndarray:
    return a.dense() if isinstance(a, Curvature) else np.asarray(a, dtype=float)


class SPUState(NamedTuple):
    """The analog state carried between steps: x (SPU readout) and the last uploaded (A, b)."""

    x: np.ndarray | None
    a_prev: np.ndarray | None
    b_prev: np.ndarray | None


class TNGDState(NamedTuple):
    count: int
    spu: SPUState
    tau_s: float  # seconds per tau of the (last programmed) circuit, for the timing model
    pruned: int = 0  # circuit backends: entries the last programmed circuit pruned (spu_sim.analog.AnalogSolver)


def pruned_entries(evolve: Evolve) -> int:
    """Entries pruned by the last circuit an evolve programmed (0 for the ideal backend)."""
    solver = getattr(evolve, "solver", None)
    return int(solver.last_pruned) if solver is not None else 0


def check_first_step(problem: LocalProblem, *, evolve: Evolve, damping: float, t_stop_tau: float,
                     delay_tau: float = 0.0, warm_start: bool = False) -> None:
    """Design (never run) the circuit of the first SPU use on ``problem``: A = Curvature(U, damping), b = x0 = grad,
    the dense or factorised circuit by the rule of ``evolve`` (circuit backends only; the ideal backend needs none),
    for the run of t_stop_tau and (with warm start) the delay's run of delay_tau: each one's limits (memory, the
    transient's span) are checked under its own key."""
    solver = getattr(evolve, "solver", None)
    if solver is None:
        return
    a, g = Curvature(problem.factor, float(damping)), problem.grad
    runs = [("t_stop_tau", t_stop_tau)] + ([("delay_tau", delay_tau)] if warm_start else [])
    for key, t in runs:
        if t <= 0:
            continue
        if evolve.factored and a.factored:
            solver.design_factored(a.factor, np.eye(a.factor.shape[0]), a.damping, g, g, t, key)
        else:
            solver.design(a.dense(), g, g, t, key)


def ou_transient(a: np.ndarray, b: np.ndarray, x0: np.ndarray, t_stop_tau: float, *, kappa: float = 0.0,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Exact OU state after t_stop_tau for symmetric positive-definite ``a`` (N, N); returns (N,).

    Mean x* + Q exp(-w t) Q^T (x0 - x*) with a = Q diag(w) Q^T, x* = a^-1 b. For kappa > 0 adds a sample
    of covariance kappa Q diag((1 - exp(-2 w t)) / w) Q^T (the exact transient covariance of a symmetric
    drift, physics.md section 1, started from the deterministic x0).
    """
    if t_stop_tau == 0.0:
        return np.array(x0, dtype=float, copy=True)
    w, q = np.linalg.eigh(a)
    x_star = q @ ((q.T @ b) / w)
    x = x_star + q @ (np.exp(-w * t_stop_tau) * (q.T @ (x0 - x_star)))
    if kappa > 0.0:
        if rng is None:
            raise BadInputError("ou_transient: kappa > 0 needs a random generator")
        std = np.sqrt(kappa * -np.expm1(-2.0 * w * t_stop_tau) / w)
        x = x + q @ (std * rng.standard_normal(w.shape[0]))
    return x


def make_evolve(backend: str, *, kappa: float = 0.0, seed: int = 0, circuit: dict | None = None,
                readout: dict | None = None, factored: bool = True) -> tuple[Evolve, Callable[[], float | None]]:
    """The SPU of a backend as ``evolve(A, b, x0, t_stop_tau, step, phase) -> x`` plus ``tau_s() -> float|None``;
    A is a dense matrix or a ``Curvature``. factored=False: the circuit backend always uses the dense network.

    The circuit backends build one ``AnalogSolver``. An unknown backend: ConfigError listing ideal and the engines.
    """
    engine = spu_backend.engine(backend)      # ConfigError naming backend for any other value
    if engine is None:
        return _ideal_spu(kappa=kappa, seed=seed)
    return _circuit_spu(engine, kappa=kappa, seed=seed, circuit=circuit, readout=readout, factored=factored)


def _ideal_spu(*, kappa, seed) -> tuple[Evolve, Callable[[], float | None]]:
    """The exact OU transient (eigendecomposition), seeded by (seed, step, phase)."""
    def evolve_ideal(a, b, x0, t_stop_tau, step, phase):
        rng = np.random.default_rng([seed, step, phase]) if kappa > 0 else None
        return ou_transient(_dense(a), b, x0, t_stop_tau, kappa=kappa, rng=rng)
    return evolve_ideal, lambda: None


def _circuit_spu(engine: str, *, kappa, seed, circuit, readout, factored) -> tuple[Evolve, Callable[[], float | None]]:
    """The op-amp integrator circuit through AnalogSolver on an engine (ngspice, or the exact linear engine)."""
    solver = AnalogSolver(circuit, kappa=kappa, seed=seed, readout=readout, backend=engine)

    def evolve_circuit(a, b, x0, t_stop_tau, step, phase):
        if t_stop_tau == 0.0:
            return np.array(x0, dtype=float, copy=True)
        if factored and isinstance(a, Curvature) and a.factored:
            u = a.factor
            return np.asarray(solver.solve_factored(u, np.eye(u.shape[0]), a.damping, b, x0, t_stop_tau), dtype=float)
        return np.asarray(solver.solve(_dense(a), b, x0, t_stop_tau), dtype=float)

    evolve_circuit.solver, evolve_circuit.factored = solver, factored   # for check_first_step and the pruned count
    return evolve_circuit, lambda: float(solver.tau_s)


def spu_step(problem: LocalProblem, spu: SPUState, step: int, evolve: Evolve, *, damping: float,
             t_stop_tau: float, delay_tau: float, warm_start: bool) -> tuple[np.ndarray, SPUState]:
    """One SPU use (see the module docstring): returns the natural-gradient estimate and the new SPU state."""
    a = Curvature(problem.factor, float(damping))
    b = problem.grad
    if warm_start and spu.x is not None:
        x0 = spu.x
        if delay_tau > 0.0 and spu.a_prev is not None:
            x0 = evolve(spu.a_prev, spu.b_prev, x0, delay_tau, step, 0)
    else:
        x0 = b
    x = evolve(a, b, x0, t_stop_tau, step, 1)
    keep = delay_tau > 0.0 and warm_start
    return x, SPUState(x=x, a_prev=a if keep else None, b_prev=b if keep else None)


def init(params: np.ndarray, *, tau_s: float) -> TNGDState:
    return TNGDState(count=0, spu=SPUState(None, None, None), tau_s=tau_s)


def update(problem: LocalProblem, state: TNGDState, *, lr: LearningRate, damping: float, t_stop_tau: float,
           delay_tau: float, warm_start: bool, evolve: Evolve,
           circuit_tau_s: Callable[[], float | None]) -> tuple[np.ndarray, TNGDState]:
    g, spu = spu_step(problem, state.spu, state.count, evolve, damping=damping, t_stop_tau=t_stop_tau,
                      delay_tau=delay_tau, warm_start=warm_start)
    tau_s = circuit_tau_s() or state.tau_s
    return -lr_at(lr, state.count) * g, TNGDState(count=state.count + 1, spu=spu, tau_s=tau_s,
                                                   pruned=pruned_entries(evolve))


def check_time_tau(key: str, t: float) -> None:
    """BadInputError naming ``key`` for an analog time or delay per step outside 0 .. MAX_T_TAU (tngd, tngd_adam,
    tkfac)."""
    if not 0 <= t <= MAX_T_TAU:
        raise BadInputError(f"{key} = {t:.4g} is outside 0 .. {MAX_T_TAU:.0e} tau (the physical range of an analog "
                            f"time per step); give a time in it")


def check_hyper(damping: float, t_stop_tau: float, delay_tau: float) -> None:
    if damping <= 0:
        raise BadInputError(f"damping must be > 0 (got {damping}); A = C + damping I must be positive definite")
    check_time_tau("t_stop_tau", t_stop_tau)
    check_time_tau("delay_tau", delay_tau)


def build(lr: LearningRate = 0.1, damping: float = 1e-2, t_stop_tau: float = 50.0, delay_tau: float = 0.0,
          warm_start: bool = True, backend: str = "ideal", kappa: float = 0.0, seed: int = 0,
          circuit: dict[str, Any] | None = None, readout: dict[str, Any] | None = None, factored: bool = True,
          tau_s: float = DEFAULT_TAU_S) -> Transform:
    """TNGD with analog time ``t_stop_tau`` and delay ``delay_tau`` (units of tau), warm start, damping, a
    backend (``ideal`` or an engine name, spu_sim.optim.backend), noise ``kappa`` and ``seed``; ``tau_s`` is the seconds per tau
    reported by the ideal backend (an engine backend reports ``AnalogSolver.tau_s``); ``factored``: the circuit
    backend uses the factorised circuit when the factor has fewer rows than parameters (False: always dense)."""
    check_hyper(damping, t_stop_tau, delay_tau)
    evolve, circuit_tau_s = make_evolve(backend, kappa=kappa, seed=seed, circuit=circuit, readout=readout,
                                        factored=factored)
    return Transform(partial(init, tau_s=tau_s),
                     partial(update, lr=lr, damping=damping, t_stop_tau=t_stop_tau, delay_tau=delay_tau,
                             warm_start=warm_start, evolve=evolve, circuit_tau_s=circuit_tau_s),
                     partial(check_first_step, evolve=evolve, damping=damping, t_stop_tau=t_stop_tau, delay_tau=delay_tau,
                             warm_start=warm_start))


#: the curvature this optimiser reads from the LocalProblem (None, "factor", "matvec" or "layers"): checked
#: against the model before a run trains (spu_sim.train.loop)
CURVATURE_NEEDED: str | None = "factor"

OPTIMIZERS.register("tngd", sys.modules[__name__])
