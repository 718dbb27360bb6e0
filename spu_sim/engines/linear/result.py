"""What every method of the linear engine is asked (``RunOptions``) and returns (``LinearWaveforms``).

    w = tran_dense(circuit, tran, RunOptions("linear", "samples"))   # a TranMethod; also tran_krylov, tran_switched
    w.method, w.noise_mode, w.krylov, w.lowrank, w.dc, w.detail      # how it was made

Every method (dense modal / loop, krylov, switched, the adjoint .noise, the DC .op) returns one
``LinearWaveforms``: a ``spu_sim.engines.raw.Waveforms`` (kind, axis, vectors keyed like ngspice's) marked with
the engine, the noise mode and the method, plus what that method alone can state (``krylov``: the structured
transient's run, ``lowrank``: the low-rank transient's run, ``dc``: the structured .op's GMRES, ``detail``: a clocked circuit's finely sampled last
periods); the fields a method does not fill stay None.

The output grid is shared by every transient: t_k = k step_s for k = 0 .. n_out (``output_count``).
``NGSPICE_HINT`` ends every refusal of the engine: the way out is the ngspice engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ...circuit import Circuit, Tran
from ...errors import BadInputError
from ..raw import Waveforms

NGSPICE_HINT = "use simulation.backend: ngspice-shared"


def check_start(circuit: Circuit, tran: Tran) -> None:
    """Every method's rule for the start of a transient: uic (the initial conditions) or, without uic, the DC
    operating point, never both: BadInputError for .tran without uic but with .ic."""
    if not tran.uic and circuit.ic_v:
        raise BadInputError(".tran without uic and with .ic: the linear engine takes either uic or the DC"
                            f" operating point as the start; {NGSPICE_HINT}")
NOISE_MODES = ("samples", "aggregated")


@dataclass(frozen=True)
class RunOptions:
    """The options of one run, as every method takes them.

    engine: the engine's name (stamped on the result); noise_mode: ``samples`` (path-identical) or
    ``aggregated`` (white noise of the samples' low-frequency intensity); seed: of the aggregated noise (None:
    derived from the samples); noise_intensity_v2_s: {source name: two-sided intensity} overriding the
    estimate; method: ``auto``, ``modal``, ``loop``, ``krylov`` or ``lowrank`` (the engine's choice, see engine.py);
    chunk_knots: noise knots held at once by method lowrank (None: about CHUNK_BYTES of samples)."""

    engine: str = "linear"
    noise_mode: str = "samples"
    seed: int | None = None
    noise_intensity_v2_s: dict[str, float] | None = None
    method: str = "auto"
    chunk_knots: int | None = None


class KrylovInfo(NamedTuple):
    """What one Arnoldi exponential did (expmv.affine_expmv)."""

    applications: int      # products M v
    substeps: int          # Krylov bases built
    max_dim: int           # largest basis
    error_estimate: float  # sum of the substeps' a-posteriori estimates, relative to |w|


@dataclass
class KrylovRun:
    """What one structured transient did (stated in the result)."""

    info: KrylovInfo
    rtol: float
    n_states: int
    peel_rounds: int
    core_size: int
    nnz_per_solve: int
    dense_blocks: int = 0    # crossbar blocks applied by GEMV (stamp.Block)


@dataclass
class LowRankRun:
    """What one transient by method lowrank did (lowrank.py; stated in the result).

    mismatch: relative difference between the stated factors and the circuit's own operator on random probes (the
    check that admitted the method; rounding level); error_estimate: a bound on the relative error of the outputs
    from that mismatch and the rounding of the core's exponentials (the method is otherwise exact); knots, chunk_knots:
    noise samples per source integrated, and at most how many were held at once; modal_condition: cond of the core's
    eigenvectors; weight_rank, weight_residual: the compressed knot weights (lowrank.compress_weights)."""

    n_states: int
    rank: int
    d_per_s: float
    mismatch: float
    error_estimate: float
    applications: int              # operator applications (probes, inputs, outputs)
    exponentials: int              # (2 m + 1)-sized exponentials of the noise-free part
    knots: int = 0
    chunk_knots: int = 0
    modal_condition: float | None = None
    weight_rank: int = 0           # rank of the compressed knot weights (0: every knot projected, or no noise)
    weight_residual: float = 0.0   # their largest relative column residual (WEIGHT_RTOL at most)


@dataclass
class DcRun:
    """How the structured .op was solved."""

    solver: str
    rtol: float
    residual: float
    iterations: int


@dataclass
class LinearWaveforms(Waveforms):
    """Waveforms of the linear engine, marked with how they were made (module doc)."""

    engine: str = "linear"
    noise_mode: str = "samples"
    method: str = ""
    detail: Waveforms | None = None   # clocked circuits: the last DETAIL_PERIODS clock periods, finely sampled
    krylov: KrylovRun | None = None   # method krylov's .tran: applications, substeps, error estimate
    lowrank: LowRankRun | None = None  # method lowrank's .tran: the factor check, exponentials, noise chunks
    dc: DcRun | None = None           # method krylov's .op: the GMRES residual reached


TranMethod = Callable[[Circuit, Tran, RunOptions], LinearWaveforms]   # dense, krylov, switched: the .tran
OpMethod = Callable[[Circuit, RunOptions], LinearWaveforms]            # dense, krylov: the .op


def output_count(tran: Tran) -> int:
    """n_out: the transient's output steps t_k = k step_s up to stop_s (a ratio within 1e-9 of an integer is
    that integer, else rounded down)."""
    if not (tran.step_s > 0 and tran.stop_s > 0):
        raise BadInputError(f".tran step {tran.step_s!r} s and stop {tran.stop_s!r} s must be positive")
    ratio = tran.stop_s / tran.step_s
    return int(round(ratio)) if abs(ratio - round(ratio)) < 1e-9 * max(ratio, 1) else int(np.floor(ratio))


def tran_waveforms(t: np.ndarray, saves: list[str], Y: np.ndarray, opts: RunOptions, method: str,
                   **extra) -> LinearWaveforms:
    """The ``.tran`` result: {"time": t, save_i: Y[:, i]} (Y: (len(t), len(saves)))."""
    vectors = {"time": t}
    vectors.update({k: Y[:, i] for i, k in enumerate(saves)})
    return LinearWaveforms("tran", t, vectors, engine=opts.engine, noise_mode=opts.noise_mode, method=method, **extra)


def op_waveforms(names: list[str], y: np.ndarray, opts: RunOptions, method: str, **extra) -> LinearWaveforms:
    """The ``.op`` result: {name_i: [y_i]}."""
    return LinearWaveforms("op", None, {k: np.array([v]) for k, v in zip(names, y)}, engine=opts.engine,
                           noise_mode="none", method=method, **extra)
