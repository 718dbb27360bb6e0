"""TNGD-Adam: the SPU's natural-gradient estimate g (see ``tngd``) fed to Adam's rule.

    g_k = SPU readout (tngd.spu_step),  theta <- theta - lr * adam_direction(g_k)

The paper uses b1 = b2 = 0 (the default), i.e. theta <- theta - lr * g / (|g| + eps) elementwise.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Callable, NamedTuple

import numpy as np

import spu_sim.optim.adam as adam
import spu_sim.optim.tngd as tngd
from spu_sim.optim.base import OPTIMIZERS, LearningRate, LocalProblem, Transform, lr_at


class TNGDAdamState(NamedTuple):
    count: int
    spu: tngd.SPUState
    adam: adam.AdamState
    tau_s: float
    pruned: int = 0  # as tngd.TNGDState.pruned


def init(params: np.ndarray, *, tau_s: float) -> TNGDAdamState:
    return TNGDAdamState(count=0, spu=tngd.SPUState(None, None, None), adam=adam.init(params), tau_s=tau_s)


def update(problem: LocalProblem, state: TNGDAdamState, *, lr: LearningRate, damping: float, t_stop_tau: float,
           delay_tau: float, warm_start: bool, b1: float, b2: float, eps: float, evolve: tngd.Evolve,
           circuit_tau_s: Callable[[], float | None]) -> tuple[np.ndarray, TNGDAdamState]:
    g, spu = tngd.spu_step(problem, state.spu, state.count, evolve, damping=damping, t_stop_tau=t_stop_tau,
                           delay_tau=delay_tau, warm_start=warm_start)
    direction, adam_state = adam.adam_direction(g, state.adam, b1=b1, b2=b2, eps=eps)
    tau_s = circuit_tau_s() or state.tau_s
    new = TNGDAdamState(count=state.count + 1, spu=spu, adam=adam_state, tau_s=tau_s,
                        pruned=tngd.pruned_entries(evolve))
    return -lr_at(lr, state.count) * direction, new


def build(lr: LearningRate = 1e-3, damping: float = 1e-2, t_stop_tau: float = 50.0, delay_tau: float = 0.0,
          warm_start: bool = True, backend: str = "ideal", kappa: float = 0.0, seed: int = 0,
          circuit: dict[str, Any] | None = None, readout: dict[str, Any] | None = None, factored: bool = True,
          tau_s: float = tngd.DEFAULT_TAU_S, b1: float = 0.0, b2: float = 0.0, eps: float = 1e-8) -> Transform:
    """TNGD-Adam: the knobs of ``tngd.build`` plus Adam's ``b1, b2`` (default 0, 0) and ``eps``."""
    tngd.check_hyper(damping, t_stop_tau, delay_tau)
    evolve, circuit_tau_s = tngd.make_evolve(backend, kappa=kappa, seed=seed, circuit=circuit, readout=readout,
                                        factored=factored)
    return Transform(partial(init, tau_s=tau_s),
                     partial(update, lr=lr, damping=damping, t_stop_tau=t_stop_tau, delay_tau=delay_tau,
                             warm_start=warm_start, b1=b1, b2=b2, eps=eps, evolve=evolve,
                             circuit_tau_s=circuit_tau_s),
                     partial(tngd.check_first_step, evolve=evolve, damping=damping, t_stop_tau=t_stop_tau, delay_tau=delay_tau,
                             warm_start=warm_start))


#: the curvature this optimiser reads from the LocalProblem (None, "factor", "matvec" or "layers"): checked
#: against the model before a run trains (spu_sim.train.loop)
CURVATURE_NEEDED: str | None = "factor"

OPTIMIZERS.register("tngd_adam", sys.modules[__name__])
