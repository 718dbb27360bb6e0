"""The chain, step by step: config -> problem -> design -> circuit -> engine -> waveforms -> readout.

    prep = prepare("configs/opamp_d8.yaml")                           # config, problem, topology, design
    circuit = build_circuit(prep)                                     # spu_sim.circuit.Circuit
    result = simulate("configs/opamp_d8.yaml", out_dir="runs/x")      # the configured engine, result.npz
    metrics = spu_sim.compare.compare("configs/opamp_d8.yaml", "runs/x")  # + ideal OU + plots

Each public function validates everything before it touches ``out_dir``; results are staged in a
private folder and published atomically at the end (spu_sim.io).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from . import io
from .circuit import Circuit, check_physical, saved_vectors
from .config import save_config
from .run_config import Config, load_run_config
from .engines import Engine, Waveforms, Workload, check_finite_waveforms, free_memory_mb, get_engine
from .errors import BadInputError, SimulationError, numbers_checked
from .engines.progress import elapsed_line
from .engines.waveform_files import BYTES_PER_VALUE, write_waveforms
from .problems import Problem, build_problem
from .readout import make_adc, read_op, read_transient, sample_dt_tau
from .spice import NETLIST_NAME, format_spice, write_circuit
from .parts.intrinsic_noise import add_intrinsic_noise, intrinsic_from_config
from .parts.element_table import ELEMENTS_NAME, applied_text, write_element_table
from .parts.noise_dacs import EarlyNoiseSamples, noise_sample_block, noise_samples
from .parts.opamp import is_subckt
from .parts.characterised import read_characterised
from .topologies import TOPOLOGIES, CircuitRequest, Design, Topology

T = TypeVar("T")
RESULT_NAME = "result.npz"
CONFIG_NAME = "config.yaml"
DESIGN_NAME = "design.json"


@dataclass
class Prepared:
    """A validated config with its problem, topology and design: everything needed to build the circuit."""

    cfg: Config
    problem: Problem
    topology: Topology
    design: Design
    #: the noise samples of this run drawn ahead in a background thread (parts/noise_dacs.EarlyNoiseSamples; set by
    #: AnalogSolver, which knows them before the design), taken by build_circuit; None: drawn there
    early_noise: EarlyNoiseSamples | None = None

    @property
    def t_stop_s(self) -> float:
        return self.cfg.simulation.t_stop_tau * self.design.tau_s

    @property
    def sample_dt_tau(self) -> float:
        return sample_dt_tau(self.design, self.cfg)

    @property
    def burn_in_tau(self) -> float:
        sim = self.cfg.simulation
        if sim.burn_in_tau is not None:
            return sim.burn_in_tau
        return min(10.0 / self.design.slowest_rate_tau, 0.5 * sim.t_stop_tau)

    @property
    def n_noise_steps(self) -> int:
        return int(np.ceil(self.cfg.simulation.t_stop_tau / self.design.noise_dt_tau))


@dataclass
class Timings:
    """Wall times of the steps of one simulate call, in seconds (NaN: the step was not timed by this call, e.g.
    design_s when the caller prepared the config itself). result.npz holds them as ``timings_s``, in this order."""

    design_s: float = np.nan
    netlist_s: float = np.nan
    engine_s: float = np.nan
    readout_s: float = np.nan

    def as_array(self) -> np.ndarray:
        """(4,) design_s, netlist_s, engine_s, readout_s (the result.npz array ``timings_s``)."""
        return np.array([getattr(self, k) for k in TIMING_NAMES])


TIMING_NAMES = tuple(f.name for f in fields(Timings))


@dataclass
class SimulationResult:
    """What ``simulate`` produced. ``arrays`` is exactly what result.npz holds: a dict, since a topology adds
    its own arrays (``Topology.circuit_arrays``) to the common ones of ``read_results``; ``result["x"]`` reads
    one of them. ``waveforms``: the engine's plots (op, tran, ...: every saved vector, simulation.save_nodes
    included, at the engine's own points), what the run folder's waveform file holds."""

    out_dir: Path | None
    arrays: dict[str, np.ndarray]
    timings_s: Timings = field(default_factory=Timings)
    files: list[Path] = field(default_factory=list)
    waveforms: dict[str, Waveforms] = field(default_factory=dict)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]


def prepare(config: str | Path | dict | Config | Prepared) -> Prepared:
    """load -> validate -> problem -> design; raises BadInputError subclasses on bad input.

    A Prepared passes through unchanged, so callers that already hold one do not design twice.
    """
    if isinstance(config, Prepared):
        return config
    cfg = load_run_config(config)
    with numbers_checked("problem", "bring the matrix, vector and factors into a range where their products stay "
                                    "finite (e.g. rescale them)"):
        problem = build_problem(cfg.problem, cfg.base_dir)
    return prepare_problem(cfg, problem)


def prepare_problem(cfg: Config, problem: Problem, result: bool = True) -> Prepared:
    """Design an already built Problem with a validated config's circuit/simulation/readout sections (the
    config's own problem section is not read: callers such as AnalogSolver pass arrays straight through).
    result=False: the caller reads the final state only (AnalogSolver), so the limits leave out result.npz's
    d x d matrices (engines.base.Workload.result_matrices)."""
    topology = TOPOLOGIES.get(cfg.circuit.topology)
    oc = getattr(cfg.circuit, "opamp", None)
    if oc is not None and oc.characterised is not None:        # its characterisation: read and checked before any run
        read_characterised(oc, cfg.circuit.temperature.temp_c)
    with numbers_checked(f"circuit (topology {topology.name}) for this problem",
                         "bring the problem's entries (problem.matrix or problem.factors, problem.vector) or the "
                         "circuit's values into a realistic range (e.g. rescale the problem)"):
        design = topology.design(problem, cfg.circuit, cfg.simulation)
    prep = Prepared(cfg, problem, topology, design)
    check_limits(prep, result=result)
    return prep


#: the share of the machine's free memory a run may plan to use
MEMORY_SHARE = 0.8
#: the injected noise's samples are a streamed SampleBlock (generated when read, spu_sim.circuit) above this many bytes
#: (d sources x noise steps x 8): the linear engine's method lowrank reads them chunk by chunk, any other method or
#: engine materialises them (refused by name when they do not fit); below it they are one array, as always
STREAM_NOISE_BYTES = 1e9


def noise_streamed(n_sources: int, n_noise_steps: int) -> bool:
    """Whether n_sources noise DACs of n_noise_steps steps (n_noise_steps + 2 samples each) are a streamed
    SampleBlock (STREAM_NOISE_BYTES)."""
    return 8.0 * n_sources * (n_noise_steps + 2) > STREAM_NOISE_BYTES


def workload(prep: Prepared, keep_files: bool = False, result: bool = True) -> Workload:
    """What the run asks of its engine, from the config and design alone (spu_sim.engines.Workload; result: the
    run assembles the result arrays, False for a final-state readout)."""
    sim, design = prep.cfg.simulation, prep.design
    tran = "tran" in sim.analyses
    n_sources = design.d if tran and design.has_noise else 0
    spec = intrinsic_from_config(prep.cfg.circuit) if tran else None
    if spec is not None:   # about one source per summing node (thermal, i_n) and two op-amps per variable (e_n)
        n_sources += design.d * ((spec.thermal or spec.in_a_per_rthz > 0) + 2 * (spec.en_v_per_rthz > 0))
    points = int(np.floor(sim.t_stop_tau / prep.sample_dt_tau)) + 1 if tran else 0
    n_vectors = 1 + design.d + len(sim.save_nodes) + (2 * design.d if getattr(design, "macro", None) is not None else 0)
    streamed = tran and design.has_noise and noise_streamed(design.d, prep.n_noise_steps)
    return Workload(n_sources=n_sources, n_noise_steps=prep.n_noise_steps, noise_streamed=bool(streamed),
                    noise_dt_tau=design.noise_dt_tau, step_tau=prep.sample_dt_tau, n_out_points=points,
                    n_outputs=design.d, n_elements=prep.topology.n_elements(design), keep_files=keep_files,
                    n_vectors=n_vectors, waveform_bytes_per_value=BYTES_PER_VALUE[prep.cfg.readout.waveforms],
                    result_matrices=result)


def estimates(prep: Prepared, keep_files: bool = False, engine: Engine | None = None,
              result: bool = True) -> dict[str, float]:
    """What the run will need, from the config and design alone: noise samples (all sources), readout values,
    and the configured engine's estimate of memory and disk in MB (Engine.estimate; keep_files: with an out
    folder, whose netlist, noise and result files count on disk; engine: another engine than the configured one)."""
    w = workload(prep, keep_files, result)
    cost = (engine or get_engine(prep.cfg.simulation.backend)).estimate(w)
    return {"noise_samples": w.n_sources * w.n_noise_steps, "readout_values": w.n_out_points * w.n_outputs,
            "disk_mb": cost.disk_mb, "memory_mb": cost.memory_mb}


def check_subckt_engine(design, engine: Engine) -> None:
    """A subcircuit op-amp (circuit.opamp.model: subckt or a shipped cell) runs only in ngspice: BadInputError naming
    the ngspice engines for any other engine, before any work."""
    m = getattr(design, "macro", None)
    if is_subckt(m) and not engine.sign_off:
        raise BadInputError(f"simulation.backend: {engine.name} cannot run circuit.opamp.model: {m.cell.label} (a SPICE "
                            "subcircuit that only ngspice reads, and whose gain spu-sim does not model); use "
                            "simulation.backend: ngspice-shared or ngspice-subprocess (a command that needs the "
                            "linear engine, such as crosscheck, cannot run it)")


def check_limits(prep: Prepared, out_dir: Path | None = None, engine: Engine | None = None,
                 result: bool = True) -> None:
    """Refuse (BadInputError naming the cost and the fix) a run whose engine's estimate exceeds the machine's free
    memory, max_disk_mb or (with out_dir) the free space of its disk, or beyond the configured counts -- before
    any work is done."""
    sim = prep.cfg.simulation
    check_subckt_engine(prep.design, engine or get_engine(sim.backend))
    if "tran" in sim.analyses:   # the mean and covariance need two readout samples after the burn-in
        dt, burn = prep.sample_dt_tau, prep.burn_in_tau
        n_after = int(np.floor(sim.t_stop_tau / dt + 1e-9)) - int(np.ceil(burn / dt - 1e-9)) + 1
        if n_after < 2:
            raise BadInputError(
                f"simulation.t_stop_tau: {sim.t_stop_tau:g} tau leaves {max(n_after, 0)} readout samples after the "
                f"burn-in of {burn:.4g} tau (readout step {dt:.4g} tau; the slowest mode relaxes at "
                f"{prep.design.slowest_rate_tau:.3g} per tau), and the estimates need two; lengthen t_stop_tau "
                "(or set readout.sample_dt_tau / simulation.burn_in_tau)")
    est = estimates(prep, keep_files=out_dir is not None, engine=engine, result=result)
    if sim.max_noise_samples is not None and est["noise_samples"] > sim.max_noise_samples:
        raise BadInputError(
            f"simulation.t_stop_tau: {sim.t_stop_tau:g} tau needs {est['noise_samples']:.3g} noise samples "
            f"({prep.n_noise_steps} steps of {prep.design.noise_dt_tau:.3g} tau x {est['noise_samples'] // max(prep.n_noise_steps, 1)} sources; limit "
            f"simulation.max_noise_samples = {sim.max_noise_samples}); shorten the run, raise noise_dt_tau or the limit")
    if est["readout_values"] > sim.max_readout_values:
        raise BadInputError(
            f"readout.sample_dt_tau: {prep.sample_dt_tau:.3g} tau over {sim.t_stop_tau:g} tau gives "
            f"{est['readout_values']:.3g} readout values (limit simulation.max_readout_values = "
            f"{sim.max_readout_values}); raise readout.sample_dt_tau, shorten the run or raise the limit")
    free_mem = free_memory_mb()
    if est["memory_mb"] > MEMORY_SHARE * free_mem:
        raise BadInputError(
            f"simulation: the run on {(engine.name if engine else sim.backend)} needs about {est['memory_mb']:.4g} MB of memory (noise samples and "
            f"readout arrays) but {free_mem:.4g} MB are free; shorten simulation.t_stop_tau, raise noise_dt_tau or "
            "readout.sample_dt_tau, or free memory")
    if est["disk_mb"] > sim.max_disk_mb:
        raise BadInputError(
            f"simulation: the run would write about {est['disk_mb']:.4g} MB of netlist, noise, result and waveform files "
            f"(limit simulation.max_disk_mb = {sim.max_disk_mb:g}); shorten the run, raise noise_dt_tau, set readout.waveforms: none or raise the limit")
    probe = Path(out_dir if out_dir is not None else tempfile.gettempdir()).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_mb = shutil.disk_usage(probe).free / 1e6
    if est["disk_mb"] > 0.9 * free_mb:
        where = f"--out {out_dir}" if out_dir is not None else f"the temporary folder {probe}"
        raise BadInputError(f"{where}: the run needs about {est['disk_mb']:.4g} MB but the disk has "
                            f"{free_mb:.4g} MB free; free space or choose another folder")


def build_circuit(prep: Prepared) -> Circuit:
    """The circuit of the prepared design for the configured analyses, with its seeded noise samples (those of
    prep.early_noise when it holds them: taken, or closed when it does not match)."""
    sim, design = prep.cfg.simulation, prep.design
    tran = "tran" in sim.analyses
    noise_u = None
    if tran and design.has_noise:
        streamed = noise_streamed(design.d, prep.n_noise_steps)
        early, prep.early_noise = prep.early_noise, None
        if early is not None and not streamed and early.matches(design.d, prep.n_noise_steps, sim.seed):
            noise_u = early.take()       # the same numbers as noise_samples (drawn while the design ran)
        else:
            if early is not None:
                early.close()
            noise_u = (noise_sample_block if streamed else noise_samples)(design.d, prep.n_noise_steps, sim.seed)
    request = CircuitRequest(analyses=tuple(sim.analyses), t_stop_s=prep.t_stop_s,
                             step_s=prep.sample_dt_tau * design.tau_s, reltol=sim.reltol, noise_u=noise_u)
    circuit = prep.topology.build_circuit(design, request)
    if is_subckt(getattr(design, "macro", None)) and circuit.temp_c is None:   # the transistor models' temperature
        circuit = dataclasses.replace(circuit, temp_c=float(prep.cfg.circuit.temperature.temp_c))
    circuit = add_intrinsic_noise(circuit, intrinsic_from_config(prep.cfg.circuit), design.noise_dt_tau * design.tau_s,
                                  prep.n_noise_steps, sim.seed)
    check_physical(circuit)
    if sim.save_nodes and circuit.saves:   # no .save line: ngspice and the linear engine keep every vector anyway
        extra = saved_vectors(circuit, sim.save_nodes)
        have = {s.lower() for s in circuit.saves}
        circuit.saves = circuit.saves + [v for v in dict.fromkeys(extra) if v.lower() not in have]
        asked = {v.lower() for v in extra}   # a vector asked for is no longer optional
        circuit.optional_saves = [v for v in circuit.optional_saves if v.lower() not in asked]
    elif sim.save_nodes:
        saved_vectors(circuit, sim.save_nodes)   # checked all the same
    return circuit


def netlist_text(prep: Prepared) -> str:
    """The netlist of the prepared design as text (what write_run_files writes)."""
    return format_spice(build_circuit(prep))


def write_run_files(prep: Prepared, folder: Path, metadata: bool = True) -> Circuit:
    """netlist.cir (+ noise_<i>.txt when the design injects noise) in folder; returns the circuit.

    metadata: also config.yaml, design.json and elements.csv (skipped for throw-away runs: dumping a 130 x 130 inline
    matrix as YAML costs more than loading the netlist into ngspice).
    """
    circuit = build_circuit(prep)
    write_circuit(circuit, folder)
    if metadata:
        io.atomic_write_text(folder / CONFIG_NAME, save_config(prep.cfg))
        io.atomic_write_json(folder / DESIGN_NAME, prep.design.describe())
        write_element_table(folder / ELEMENTS_NAME, circuit, *prep.topology.element_info(prep.design),
                            applied=applied_text(getattr(prep.design, "notes", {})))
    return circuit


def circuit_for_run(prep: Prepared, folder: Path, keep: bool) -> Circuit:
    """The run's circuit; its files are written into folder when they are kept (keep: config and design too) or
    when the engine reads them -- a throw-away run on the linear engine writes no netlist text at all."""
    if not keep and not get_engine(prep.cfg.simulation.backend).reads_files:
        return build_circuit(prep)
    return write_run_files(prep, folder, metadata=keep)


def write_netlist(config: str | Path | dict | Config, out_dir: str | Path) -> list[Path]:
    """Write OUT/netlist.cir (and its noise file and resolved config); run nothing."""
    prep = prepare(config)
    return staged(out_dir, lambda stage: write_run_files(prep, stage), prep=prep)[1]


def staged(out_dir: str | Path, work: Callable[[Path], T], family: str = "run",
           prep: Prepared | None = None, backend: str | None = None) -> tuple[T, list[Path]]:
    """Run ``work(stage)`` in a private stage of out_dir (locked for this run) and publish the stage whole
    (spu_sim.io.publish); returns work's value and the published files. A SimulationError of a run on an engine
    that reads the run's files (ngspice) whose folder is in the stage keeps the stage as out_dir/failed-<time> (its
    netlist reruns by hand); any other failure -- a failed run on an engine that never reads them, whose noise files
    would only fill the disk, or one that ran in a throw-away folder outside the stage (an experiment's point), whose
    stage holds no netlist -- leaves out_dir as it was (stage removed, lock released). backend: the engine of the
    runs in the stage when ``prep`` is not given (an experiment's)."""
    out = Path(out_dir)
    if prep is not None:
        check_limits(prep, out)
        backend = prep.cfg.simulation.backend
    keep_failed = backend is None or get_engine(backend).reads_files
    stage = io.new_stage(out)
    try:
        value = work(stage)
    except SimulationError as e:
        inside = e.run_dir is not None and Path(e.run_dir).resolve().is_relative_to(stage.resolve())
        if not (keep_failed and inside):
            io.discard(stage)
            if inside:   # its folder is gone with the stage: not named as one to look into
                raise SimulationError(e.message, ngspice_message=e.ngspice_message) from None
            raise
        failed = io.keep_failed_stage(stage, out)
        raise SimulationError(e.message, ngspice_message=e.ngspice_message, run_dir=failed,
                              netlist_path=failed / NETLIST_NAME) from None
    except BaseException:
        io.discard(stage)
        raise
    return value, io.publish(stage, out, family)


def run_engine(prep: Prepared, circuit: Circuit, folder: Path,
               progress: bool = False) -> tuple[dict[str, Waveforms], float]:
    """Run the circuit on the configured engine (simulation.backend) in folder; returns plots and wall time.

    progress: on a terminal, a tqdm bar (stderr) for transients on an engine that reports its progress, else a
    line with the elapsed time once the run takes longer than a few seconds (spu_sim.engines.progress).
    """
    engine = get_engine(prep.cfg.simulation.backend)
    t0 = time.perf_counter()
    if progress and not ("tran" in prep.cfg.simulation.analyses and engine.reports_progress):
        with elapsed_line(f"engine {engine.name}"):
            plots = engine.run(circuit, folder, timeout_s=prep.cfg.simulation.timeout_s)
    elif progress:
        from tqdm import tqdm  # noqa: PLC0415
        with tqdm(total=100, desc="ngspice transient", unit="%", leave=False, mininterval=0.5, disable=None,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}") as bar:
            def update(frac: float) -> None:
                step = int(100 * min(frac, 1.0)) - bar.n
                if step > 0:
                    bar.update(step)
            plots = engine.run(circuit, folder, timeout_s=prep.cfg.simulation.timeout_s, progress=update)
    else:
        plots = engine.run(circuit, folder, timeout_s=prep.cfg.simulation.timeout_s)
    return check_finite_waveforms(engine.name, plots), time.perf_counter() - t0


def read_results(prep: Prepared, plots: dict[str, Waveforms]) -> dict[str, np.ndarray]:
    """Readout of every analysis that ran, into the result.npz arrays (problem units)."""
    d, design = prep.design.d, prep.design
    arrays: dict[str, np.ndarray] = {
        "A": prep.problem.A, "b": prep.problem.b, "x0": prep.problem.x0, "x_star": prep.problem.x_star,
        "A_realized": design.A_realized, "b_realized": design.b_realized,
        "kappa": np.array(design.kappa_realized), "kappa_target": np.array(prep.problem.kappa),
        "tau_s": np.array(design.tau_s), "engine": np.array(prep.cfg.simulation.backend),
    }
    nan_vec = np.full(d, np.nan)
    arrays["x_op"] = read_op(plots["op"], design) if "op" in plots else nan_vec
    # no mean (rlc: inductors short DC): x_op stays NaN and x_mean is stored but flagged by has_mean = False
    arrays["has_mean"] = np.array(bool(prep.topology.has_mean))
    if not arrays["has_mean"]:
        arrays["x_star"] = np.zeros(d)  # the target mean of such a topology is 0: b cannot be realised
    if "tran" in plots:
        tr = read_transient(plots["tran"], design, make_adc(prep.cfg, design), prep.sample_dt_tau * design.tau_s,
                            prep.t_stop_s, prep.burn_in_tau * design.tau_s)
        arrays.update(t=tr.t_s, x=tr.x, x_mean=tr.x_mean, x_cov=tr.x_cov, burn_in_s=np.array(tr.burn_in_s),
                      adc_clipped=np.array(tr.n_clipped), n_ngspice_points=np.array(len(plots["tran"].axis)))
    else:
        arrays.update(t=np.zeros(0), x=np.zeros((0, d)), x_mean=nan_vec, x_cov=np.full((d, d), np.nan))
    # the topology's own arrays (opamp, non-ideal designs only: A_effective, b_effective, supply power/energy)
    arrays.update(prep.topology.circuit_arrays(design, prep.problem, plots, arrays))
    return arrays


def simulate(config: str | Path | dict | Config | Prepared, out_dir: str | Path | None = None, *,
             progress: bool = False) -> SimulationResult:
    """Run the configured analyses in ngspice and read them out (the main entry point from Python).

    With out_dir, publishes netlist.cir, noise_<i>.txt, config.yaml, design.json, result.npz and the waveform
    file (readout.waveforms: waveforms.raw, waveforms_<analysis>.csv or none) there;
    without, runs in a temporary folder and returns the arrays only. progress: a bar for the transient.
    """
    timings = Timings()
    t0 = time.perf_counter()
    prep = prepare(config)
    timings.design_s = time.perf_counter() - t0
    if out_dir is None:
        with io.temp_folder() as tmp:     # removed on exit; a killed run's is removed by the next run
            return simulate_in(prep, tmp, None, timings, progress)
    result, result.files = staged(out_dir, lambda stage: simulate_in(prep, stage, Path(out_dir), timings, progress),
                                  prep=prep)
    return result


def simulate_in(prep: Prepared, folder: Path, out: Path | None, timings: Timings | None = None,
                progress: bool = False) -> SimulationResult:
    """simulate's work in a given folder (a stage or a temporary folder): run files, engine, readout,
    result.npz. out: where the folder will be published (None: a throw-away run: no config, design or result.npz)."""
    timings = Timings() if timings is None else timings
    t0 = time.perf_counter()
    circuit = circuit_for_run(prep, folder, keep=out is not None)
    timings.netlist_s = time.perf_counter() - t0
    plots, timings.engine_s = run_engine(prep, circuit, folder, progress)
    t0 = time.perf_counter()
    arrays = read_results(prep, plots)
    timings.readout_s = time.perf_counter() - t0
    arrays["timings_s"] = timings.as_array()
    if out is not None:   # a throw-away run (a temporary folder) returns the arrays without writing them
        write_waveforms(folder, plots, prep.cfg.readout.waveforms, circuit.title)
        io.atomic_save_npz(folder / RESULT_NAME, **arrays)
    return SimulationResult(out, arrays, timings, waveforms=plots)
