"""Thermodynamic K-FAC: the K-FAC update of ``kfac`` with every factor inverse computed by an SPU.

Everything digital is as in ``spu_sim.optim.kfac`` (running factors, pi-heuristic damping, refresh every
``inverse_every`` steps, D_l = M_A^-1 dWbar M_G^-1). At a refresh each damped factor M (n x n) is
programmed into an SPU and inverted column by column:

    s = max_ij |M_ij|,   Mq = Q_bits(M / s)      programmed matrix: largest entry 1, ``factor_bits``
    x_j = x(t) of  dx = -(Mq x - e_j) dt/tau + sqrt(2 kappa/tau) dW,   x(0) = s Minv_prev e_j (warm start;
          e_j at the first refresh),  j = 1..n, read out through the ADC ``readout.adc``
    Minv ~ sym([x_1 ... x_n]) / s               sym(X) = (X + X^T) / 2 (the exact inverse is symmetric)

Normalising by s makes the largest entry the circuit's fastest conductance, so tau = r_min C whatever the
factor's magnitude and ``t_stop_tau`` means the same on every backend (the slowest mode decays as
exp(-lambda_min(M) t / s)). Q_bits is the resistor quantisation of the op-amp SPU (README
``circuit.quantization.r_bits``): |m| rounded to multiples of 1 / (2^bits - 1), the sign kept by the
routing, None = exact. ``kappa`` is the noise level of the normalised problem.

Why inverses, not solves with the gradient as right-hand side: an inverse costs n_in + 1 + n_out SPU runs
per layer per refresh; solving M_A X = dWbar (n_out right-hand sides) and then M_G Y^T = X^T (n_in + 1)
costs the same n_in + 1 + n_out runs but at every step, so for ``inverse_every`` = T the inverse needs T
times fewer circuit runs (equal at T = 1). It also keeps tkfac equal to kfac when the SPU is exact.
The price is the digital O(n^3) application of the inverses each step (see docs/kfac.md, timing).

Backends (``backend``, spu_sim.optim.backend): ``ideal`` = the exact OU transient
(``spu_sim.optim.tngd.ou_transient``) with the same quantisation, exact Gaussian noise and an ADC of the circuit's
range rule (1.25 x the larger of |x*| + 4 sigma and |x0|); an engine name (``ngspice-shared``, ``linear``, ...:
``spu_sim.engines.ENGINES``) = ``spu_sim.analog.AnalogSolver`` on that engine (the op-amp integrator netlist, one
transient per column).
"""

from __future__ import annotations

import sys
import time
from functools import partial
from typing import Any, NamedTuple

import numpy as np

import spu_sim.optim.kfac as kfac
from spu_sim.analog import AnalogSolver, solver_readout
from spu_sim.errors import BadInputError, ConfigError, DesignError
from spu_sim.optim import backend as spu_backend
from spu_sim.optim.base import OPTIMIZERS, LearningRate, LocalProblem, Transform, lr_at
from spu_sim.optim.tngd import DEFAULT_TAU_S, check_time_tau, ou_transient
from spu_sim.problems import validate_spd
from spu_sim.readout import Adc

SIGMA_HEADROOM = 4.0  # as spu_sim.topologies.opamp.design: the range covers mean + 4 sigma


class TKFACState(NamedTuple):
    kfac: kfac.KFACState
    damped: tuple  # (M_A, M_G) per layer at the last refresh (exact damped factors, for diagnostics)
    spu_wall_s: float  # wall time spent in the SPU backend during the last update (simulation, not hardware)
    solves: int  # SPU runs (columns) in the last update
    tau_s: float  # seconds per tau of the SPU


def quantize_factor(m: np.ndarray, bits: int | None) -> np.ndarray:
    """Q_bits of the module docstring for a matrix with max |m| = 1 (None: unchanged)."""
    if bits is None:
        return m
    levels = 2 ** int(bits) - 1
    return np.sign(m) * np.round(np.abs(m) * levels) / levels


class IdealSPU:
    """The exact OU transient as a solver with AnalogSolver's call ``solve(A, b, x0, t_stop_tau)``."""

    def __init__(self, *, kappa: float = 0.0, seed: int = 0, readout: dict[str, Any] | None = None,
                 tau_s: float = DEFAULT_TAU_S) -> None:
        self.kappa, self.seed, self.tau_s = float(kappa), int(seed), float(tau_s)
        adc = solver_readout(readout)
        if adc.range_v is not None:
            raise ConfigError(f"readout.adc.range_v: the ideal backend's ADC has the circuit's range rule (1.25 x the "
                              f"larger of |x*| + 4 sigma and |x0|, in problem units), not volts; remove range_v or "
                              f"use an engine backend (got {adc.range_v:g})")
        self.adc_bits = adc.bits
        self.calls = 0

    def solve(self, A: np.ndarray, b: np.ndarray, x0: np.ndarray, t_stop_tau: float) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.calls]) if self.kappa > 0 else None
        self.calls += 1
        x = ou_transient(A, b, x0, t_stop_tau, kappa=self.kappa, rng=rng)
        if self.adc_bits is None:
            return x
        x_star = np.linalg.solve(A, b)
        var = self.kappa * np.clip(np.diag(np.linalg.inv(A)), 0, None)
        x_range = float(max(np.max(np.abs(x_star) + SIGMA_HEADROOM * np.sqrt(var)), np.max(np.abs(x0))))
        return Adc(bits=self.adc_bits, range_v=1.25 * x_range).convert(x)[0]


def make_solver(backend: str, *, kappa: float, seed: int, readout: dict[str, Any] | None,
                circuit: dict[str, Any] | None, tau_s: float):
    """The SPU of a backend (spu_sim.optim.backend): IdealSPU, or AnalogSolver on the engine of that name; ConfigError
    naming ``backend`` for any other value."""
    engine = spu_backend.engine(backend)
    if engine is None:
        return IdealSPU(kappa=kappa, seed=seed, readout=readout, tau_s=tau_s)
    return AnalogSolver(circuit, kappa=kappa, seed=seed, readout=readout, backend=engine)


def _unrealisable(n: int, factor_bits: int | None, err: Exception) -> DesignError:
    """The circuit refuses a (numerically) singular or unstable programmed factor: the fix is the factor's."""
    return DesignError(f"tkfac: the {n} x {n} factor programmed with factor_bits = {factor_bits} cannot be realised "
                       f"({err}); raise factor_bits or the damping")


def spu_invert(m: np.ndarray, previous: np.ndarray | None, solver, *, t_stop_tau: float,
               factor_bits: int | None) -> np.ndarray:
    """Minv ~ sym([x_1 .. x_n]) / s of the module docstring, one ``solver.solve`` per column."""
    n = m.shape[0]
    s = float(np.max(np.abs(m)))
    mq = quantize_factor(m / s, factor_bits)
    cols = []
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        x0 = e if previous is None else s * previous[:, j]
        try:
            if j == 0 and not isinstance(solver, IdealSPU):   # the ideal SPU takes any symmetric factor (as before)
                validate_spd(mq, field=f"tkfac: the programmed {n} x {n} factor", condition=False)
            cols.append(np.asarray(solver.solve(mq, e, x0, t_stop_tau), dtype=float))
        except DesignError as err:
            raise _unrealisable(n, factor_bits, err) from None
        except BadInputError as err:   # the programmed factor's own check; the solver's other refusals name its args
            if j == 0 and "tkfac: the programmed" in str(err):
                raise _unrealisable(n, factor_bits, err) from None
            raise
    x = np.stack(cols, axis=1)
    return 0.5 * (x + x.T) / s


def check_first_refresh(problem: LocalProblem, *, solver, damping: float, t_stop_tau: float,
                        factor_bits: int | None) -> None:
    """Design (never run, circuit backends only) the first column's circuit of every damped factor of the first
    refresh on ``problem`` (the same programmed matrix as ``spu_invert``)."""
    if not hasattr(solver, "design") or t_stop_tau <= 0:
        return
    _, a_avg, g_avg = kfac.running_averages(problem, kfac.init(problem.grad), 0.0)
    for a, g in zip(a_avg, g_avg):
        for m in kfac.damped_factors(a, g, damping):
            s = float(np.max(np.abs(m)))
            e = np.zeros(m.shape[0])
            e[0] = 1.0
            try:
                solver.design(quantize_factor(m / s, factor_bits), e, e, t_stop_tau)
            except ConfigError:
                raise     # the run's length (t_stop_tau), not the factor
            except BadInputError as err:
                raise DesignError(f"tkfac: the {m.shape[0]} x {m.shape[0]} factor programmed with factor_bits = "
                                  f"{factor_bits} cannot be realised ({err}); raise factor_bits or the damping") from None


def init(params: np.ndarray, *, tau_s: float) -> TKFACState:
    return TKFACState(kfac=kfac.init(params), damped=(), spu_wall_s=0.0, solves=0, tau_s=tau_s)


def update(problem: LocalProblem, state: TKFACState, *, lr: LearningRate, damping: float, decay: float,
           inverse_every: int, t_stop_tau: float, factor_bits: int | None, solver) -> tuple[np.ndarray, TKFACState]:
    k = state.kfac
    layers, a_avg, g_avg = kfac.running_averages(problem, k, decay)
    refreshed = k.count % inverse_every == 0
    a_inv, g_inv, damped, wall, calls = k.a_inv, k.g_inv, state.damped, 0.0, solver.calls
    if refreshed:
        t0 = time.perf_counter()
        invert = lambda m, prev, key: spu_invert(m, prev, solver, t_stop_tau=t_stop_tau, factor_bits=factor_bits)  # noqa: E731
        a_inv, g_inv, damped = kfac.refresh(a_avg, g_avg, a_inv, g_inv, damping, invert)
        wall = time.perf_counter() - t0
    direction = kfac.precondition(problem.grad, layers, a_inv, g_inv)
    tau_s = float(solver.tau_s) if np.isfinite(solver.tau_s) else state.tau_s
    new = kfac.KFACState(k.count + 1, a_avg, g_avg, a_inv, g_inv, refreshed)
    return -lr_at(lr, k.count) * direction, TKFACState(new, damped, wall, solver.calls - calls, tau_s)


def direction_rel_error(problem: LocalProblem, state: TKFACState) -> float:
    """|D_spu - D_exact| / |D_exact| for this step's gradient, D_exact from the exact inverses of the same
    damped factors (what kfac would apply); a diagnostic, not part of the update."""
    layers = problem.layers
    a_ex = [kfac.spd_inverse(ma) for ma, _ in state.damped]
    g_ex = [kfac.spd_inverse(mg) for _, mg in state.damped]
    exact = kfac.precondition(problem.grad, layers, a_ex, g_ex)
    spu = kfac.precondition(problem.grad, layers, state.kfac.a_inv, state.kfac.g_inv)
    return float(np.linalg.norm(spu - exact) / np.linalg.norm(exact))


def build(lr: LearningRate = 0.1, damping: float = 1e-2, decay: float = 0.95, inverse_every: int = 1,
          backend: str = "ideal", t_stop_tau: float = 50.0, kappa: float = 0.0, factor_bits: int | None = None,
          readout: dict[str, Any] | None = None, seed: int = 0, circuit: dict[str, Any] | None = None,
          tau_s: float = DEFAULT_TAU_S) -> Transform:
    """Thermodynamic K-FAC: kfac's ``lr``, ``damping``, ``decay``, ``inverse_every``; the SPU's ``backend``
    (ideal or an engine name: ngspice-shared, linear, ...), analog time ``t_stop_tau`` per column, noise ``kappa``, ``factor_bits`` of the
    programmed factor, the ``readout`` section (a run's, only ``adc``: ``{"adc": {"bits": 8}}``) and noise ``seed``; ``circuit`` is AnalogSolver's circuit
    section, ``tau_s`` the seconds per tau the ideal backend reports."""
    kfac.check_hyper(damping, decay, inverse_every)
    check_time_tau("t_stop_tau", t_stop_tau)
    if not kappa >= 0:
        raise BadInputError(f"kappa must be >= 0 (got {kappa:.4g})")
    if factor_bits is not None and (int(factor_bits) != factor_bits or not 1 <= factor_bits <= 32):
        raise BadInputError(f"factor_bits must be an integer in 1..32 or null (got {factor_bits})")
    solver = make_solver(backend, kappa=kappa, seed=seed, readout=readout, circuit=circuit, tau_s=tau_s)
    return Transform(partial(init, tau_s=tau_s),
                     partial(update, lr=lr, damping=damping, decay=decay, inverse_every=int(inverse_every),
                             t_stop_tau=t_stop_tau, factor_bits=factor_bits, solver=solver),
                     partial(check_first_refresh, solver=solver, damping=damping, t_stop_tau=t_stop_tau, factor_bits=factor_bits))


#: the curvature this optimiser reads from the LocalProblem (None, "factor", "matvec" or "layers"): checked
#: against the model before a run trains (spu_sim.train.loop)
CURVATURE_NEEDED: str | None = "layers"

OPTIMIZERS.register("tkfac", sys.modules[__name__])
