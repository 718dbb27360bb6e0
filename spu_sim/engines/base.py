"""The engine contract and registry (spu_sim.engines imports this, then the built-in engines).

Engines: a circuit description (spu_sim.circuit) -> waveforms per analysis. One file per engine.

    engine = get_engine("ngspice-shared")        # the one instance per process of ENGINES.get("ngspice-shared")
    plots = engine.run(circuit, run_dir, timeout_s=None, progress=None)   # {"op": Waveforms, "tran": ...}

The protocol (``Engine``) is small: a ``name``, and ``run`` of every analysis of the circuit in a run
folder, returning ``spu_sim.engines.raw.Waveforms`` keyed as described there. The folder holds the circuit
as written by ``spu_sim.spice.write_circuit`` (the pipeline writes it once as the run's artifact; an
engine that reads files writes it itself when it is missing). Failures raise ``SimulationError``.

Engines register once, where they are defined, with ``@ENGINES.add`` above the class (its ``name`` is the
key); a test or a plug-in can register another the same way. Nothing else compares engine names.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import signal
import time
from pathlib import Path
from typing import Callable, NamedTuple, Protocol

import numpy as np

from ..circuit import Circuit
from ..errors import ResultError, SimulationError
from ..registry import Registry
from .raw import Waveforms

Progress = Callable[[float], None]


class Workload(NamedTuple):
    """What a run asks of an engine, known from the config and design before anything is built (the pipeline's
    ``workload``): noise sources x steps, readout points x outputs, circuit elements, and what is kept."""

    n_sources: int          # noise sources (0: no noise)
    n_noise_steps: int      # noise samples per source
    noise_dt_tau: float
    step_tau: float         # the transient's output step
    n_out_points: int       # output points of the transient (0: no transient)
    n_outputs: int          # saved outputs (the readout nodes)
    n_elements: int         # circuit elements (netlist lines)
    keep_files: bool        # the run's files are kept (an out folder): netlist, noise files, result.npz
    n_vectors: int = 0      # vectors of the kept waveform file (time, readout nodes, save_nodes, op-amp currents)
    waveform_bytes_per_value: int = 0   # readout.waveforms: raw 8, csv 25, none 0 (waveform_files.BYTES_PER_VALUE)
    result_matrices: bool = True   # the run assembles result.npz's d x d matrices (False: a readout only, AnalogSolver)
    noise_streamed: bool = False   # the noise DACs' samples are a streamed SampleBlock (pipeline.STREAM_NOISE_BYTES)


class Cost(NamedTuple):
    """An engine's estimate of a run: peak memory and disk in MB (upper estimates of what it will allocate and
    write), before any work; checked by the pipeline against the machine's free memory and disk."""

    memory_mb: float
    disk_mb: float


#: bytes of one noise-file line, "%.10e %.10e\n" with a sign and a three-digit exponent at most
BYTES_PER_NOISE_LINE = 37
#: bytes of a netlist line, on average over the topologies (an upper estimate)
BYTES_PER_ELEMENT = 60
#: bytes of an elements.csv row (one per element, spu_sim.parts.element_table): measured 144 on opamp_factored
ELEMENT_TABLE_BYTES_PER_ELEMENT = 150
#: config.yaml, design.json and the npz container around the arrays
METADATA_BYTES = 200_000
#: ngspice's adaptive time points per readout or noise step (the larger count): measured 6.9 (opamp d4), 5.3
#: (opamp macro d8), 13.4 (rlc d8); the clock of a switched-capacitor circuit adds more. The linear engines
#: return the readout grid itself (one point per step).
NGSPICE_POINTS_PER_STEP = 10


def waveform_file_bytes(w: Workload, points_per_step: float) -> float:
    """The kept waveform file (readout.waveforms): time points x vectors x bytes per value; 0 when not kept."""
    if not w.keep_files:
        return 0.0
    steps = max(w.n_out_points, w.n_noise_steps if w.n_sources else 0) * points_per_step
    return steps * w.n_vectors * w.waveform_bytes_per_value


#: d x d float64 matrices result.npz holds (A, A_realized, x_cov) and the peak number of them in memory while the
#: result is assembled (the three, plus a temporary of the realised drift's product): measured on opamp_factored
#: N = 20,000 (m = 16): result.npz 9.6 GB (three 3.2 GB matrices), peak RSS 13.3 GB
RESULT_MATRICES_ON_DISK = 3
RESULT_MATRICES_IN_MEMORY = 4


def _common(w: Workload) -> tuple[float, float]:
    """(memory, disk) in bytes every engine needs: the noise samples the pipeline draws (float64), the readout
    arrays (a few float64 copies of points x outputs), the result's d x d matrices (RESULT_MATRICES_*: they
    dominate a factorised run of large N; none when the run only reads its final state, Workload.result_matrices),
    and with kept files the netlist, noise files and result.npz."""
    samples = w.n_sources * (w.n_noise_steps + 1)
    out_values = w.n_out_points * (w.n_outputs + 1)
    matrix = 8.0 * w.n_outputs ** 2 if w.result_matrices or w.keep_files else 0.0
    memory = 8.0 * samples + 4 * 8.0 * out_values + RESULT_MATRICES_IN_MEMORY * matrix
    disk = 0.0
    if w.keep_files:
        disk = (BYTES_PER_NOISE_LINE * samples + (BYTES_PER_ELEMENT + ELEMENT_TABLE_BYTES_PER_ELEMENT) * w.n_elements
                + 8.0 * out_values + METADATA_BYTES + RESULT_MATRICES_ON_DISK * matrix)
    return memory, disk


def file_engine_cost(w: Workload) -> Cost:
    """An engine that runs the netlist and noise files (ngspice): they are written for every run; ngspice holds
    each noise table (time and value) and every saved vector in memory."""
    memory, disk = _common(w)
    samples = w.n_sources * (w.n_noise_steps + 1)
    if not w.keep_files:
        disk = BYTES_PER_NOISE_LINE * samples + BYTES_PER_ELEMENT * w.n_elements
    memory += 16.0 * samples + 8.0 * w.n_out_points * (w.n_outputs + 1)
    return Cost(memory / 1e6, (disk + waveform_file_bytes(w, NGSPICE_POINTS_PER_STEP)) / 1e6)


#: memory of streamed noise in an engine that reads it chunk by chunk (engines.linear.lowrank.CHUNK_BYTES and the
#: generator's block): what memory_engine_cost counts instead of the whole samples
STREAMED_NOISE_BYTES = 6e8


def memory_engine_cost(w: Workload) -> Cost:
    """An engine that works on the Circuit object (linear): files only when the run keeps them. Streamed noise
    (Workload.noise_streamed) counts STREAMED_NOISE_BYTES instead of the samples: the linear engine's method lowrank
    reads it chunk by chunk, and any other method refuses by name to materialise samples that do not fit
    (circuit.SampleBlock)."""
    memory, disk = _common(w)
    if w.noise_streamed:
        memory += STREAMED_NOISE_BYTES - 8.0 * w.n_sources * (w.n_noise_steps + 1)
    return Cost(memory / 1e6, (disk + waveform_file_bytes(w, 1)) / 1e6)


def free_memory_mb() -> float:
    """The memory the machine can give without swapping (MemAvailable), in MB; inf when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError, IndexError):
        pass
    return float("inf")


class Engine(Protocol):
    name: str
    #: True when run() honours ``progress`` (a bar is only shown for engines that feed it)
    reports_progress: bool
    #: True for the sign-off reference (ngspice); cross-checks judge the others against it
    sign_off: bool
    #: True when run() reads the netlist and noise files from the run folder (else they are written only as
    #: artifacts of runs that keep an out folder)
    reads_files: bool

    def run(self, circuit: Circuit, run_dir: Path, *, timeout_s: float | None = None,
            progress: Progress | None = None) -> dict[str, Waveforms]: ...

    def check(self, circuit: Circuit) -> None:
        """BadInputError for a circuit this engine cannot run, in one cheap pass (before any engine runs)."""
        ...

    def estimate(self, work: Workload) -> Cost:
        """Memory and disk this engine will need for the run (before anything is built); BadInputError for a
        run it would refuse anyway (e.g. steps it cannot integrate), so nothing is done first."""
        ...


def check_finite_waveforms(engine_name: str, plots: dict[str, Waveforms]) -> dict[str, Waveforms]:
    """``plots`` if every number the engine returned (axes and vectors) is finite, else ResultError naming the
    engine, the analysis and the vector: a NaN or inf waveform never becomes an estimate. Called on every engine
    run whose numbers are read (spu_sim.pipeline.run_engine, spu_sim.analyses.crosscheck).

    Vectors that are views of one array (the linear engine's columns of its (times, saves) result: 1e5 of them at
    N = 1e5) are checked through that array, once: a view of an all-finite array is all finite; when the array
    holds a non-finite number anywhere, each of its views is checked on its own (the error names the vector)."""
    base_finite: dict[int, bool] = {}
    for name, w in plots.items():
        arrays = ([("axis", w.axis)] if w.axis is not None else []) + list(w.vectors.items())
        for key, a in arrays:
            a = np.asarray(a)
            if a.dtype.kind not in "fc" or _finite_base(a, base_finite) or np.all(np.isfinite(a)):
                continue
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ResultError(f"engine {engine_name}: {w.kind} vector {key} holds {bad} of {a.size} values that are "
                              "not finite numbers (NaN or inf), so no estimate is made from it; the circuit's "
                              "values or time scales leave floating-point range on this engine: check the "
                              "config's scales or try another simulation.backend")
    return plots


def _finite_base(a: np.ndarray, seen: dict[int, bool]) -> bool:
    """True when ``a`` is a view of an array of its dtype whose every number is finite (each such array checked
    once, the answer kept in ``seen`` by id: the arrays stay alive as the views' bases while the check runs)."""
    b = a.base
    if not isinstance(b, np.ndarray) or b.dtype != a.dtype:
        return False
    k = id(b)
    if k not in seen:
        seen[k] = bool(np.isfinite(b).all())
    return seen[k]


#: engine classes by name (``@ENGINES.add`` above the class)
ENGINES: Registry[type] = Registry("an engine", "simulation.backend")
_INSTANCES: dict[type, Engine] = {}


def get_engine(name: str) -> Engine:
    """The one instance per process of the engine class registered under ``name`` (ConfigError naming
    simulation.backend and the choices for an unknown name)."""
    cls = ENGINES.get(name)
    if cls not in _INSTANCES:
        _INSTANCES[cls] = cls()
    return _INSTANCES[cls]


def run_in_child(work: Callable[[Progress], object], timeout_s: float, progress: Progress | None, *,
                 what: str = "the engine", run_dir: Path | None = None, child_setup: Callable[[], None] | None = None):
    """work(progress) in a forked child (os.fork: allowed in daemonic pool workers too) that is killed at
    timeout_s: the way every engine honours ``timeout_s`` for work it cannot interrupt itself (a netlist load, an
    operating point, a BLAS call). Progress and the result (or the error) come back pickled through a pipe; the
    child exits with os._exit (no interpreter teardown with native libraries loaded)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # the child
        os.close(r)
        conn = os.fdopen(w, "wb")

        def send(obj) -> None:
            pickle.dump(obj, conn, protocol=pickle.HIGHEST_PROTOCOL)
            conn.flush()
        try:
            if child_setup is not None:
                child_setup()
            send(("ok", work(lambda f: send(("progress", f)))))
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
            with contextlib.suppress(Exception):
                send(("error", e if isinstance(e, Exception) and _picklable(e) else
                      SimulationError(f"{what} failed: {type(e).__name__}: {e}")))
        finally:
            with contextlib.suppress(Exception):
                conn.close()
            os._exit(0)
    os.close(w)
    reader = os.fdopen(r, "rb")
    deadline = time.monotonic() + timeout_s
    done = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimulationError(f"{what} did not finish within {timeout_s:g} s (run stopped)", run_dir=run_dir)
            ready, _, _ = select.select([reader], [], [], min(left, 0.1))
            if not ready:
                continue
            try:
                kind, value = pickle.load(reader)
            except EOFError:
                raise SimulationError(f"{what} died without a result (crash)", run_dir=run_dir) from None
            if kind == "progress":
                if progress is not None:
                    progress(value)
                continue
            done = True
            if kind == "ok":
                return value
            raise value
    finally:
        if not done:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        reader.close()


def _picklable(e: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(e))
        return True
    except Exception:  # noqa: BLE001
        return False


def available() -> bool:
    """True when the ngspice executable is on PATH (the shared library is probed on first use)."""
    return shutil.which("ngspice") is not None
