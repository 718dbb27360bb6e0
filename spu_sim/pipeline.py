"""The chain, step by step: config -> problem -> design -> circuit -> engine -> waveforms -> readout.

    prep = prepare("configs/opamp_d8.yaml")                           # config, problem, topology, design
    circuit = build_circuit(prep)                                     # spu_sim.circuit.Circuit
    result = simulate("configs/opamp_d8.yaml", out_dir="runs/x")      # the configured engine, result.npz
    metrics = spu_sim.compare.compare("configs/opamp_d8.yaml", "runs/x")  # + ideal OU + plots

Each public function validates everything before it touches ``out_dir``; results are staged in a
private folder and published atomically at the end (spu_sim.io).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from . import io
from .circuit import Circuit, check_physical
from .config import save_config
from .run_config import Config, load_run_config
from .engines import Waveforms, get_engine
from .errors import BadInputError, SimulationError
from .problems import Problem, build_problem
from .readout import make_adc, read_op, read_transient, sample_dt_tau
from .spice import NETLIST_NAME, format_spice, write_circuit
from .parts.element_table import ELEMENTS_NAME, applied_text, write_element_table
from .parts.noise_dacs import noise_samples
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
    one of them."""

    out_dir: Path | None
    arrays: dict[str, np.ndarray]
    timings_s: Timings = field(default_factory=Timings)
    files: list[Path] = field(default_factory=list)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]


def prepare(config: str | Path | dict | Config | Prepared) -> Prepared:
    """load -> validate -> problem -> design; raises BadInputError subclasses on bad input.

    A Prepared passes through unchanged, so callers that already hold one do not design twice.
    """
    if isinstance(config, Prepared):
        return config
    cfg = load_run_config(config)
    return prepare_problem(cfg, build_problem(cfg.problem, cfg.base_dir))


def prepare_problem(cfg: Config, problem: Problem) -> Prepared:
    """Design an already built Problem with a validated config's circuit/simulation/readout sections (the
    config's own problem section is not read: callers such as AnalogSolver pass arrays straight through)."""
    topology = TOPOLOGIES.get(cfg.circuit.topology)
    design = topology.design(problem, cfg.circuit, cfg.simulation)
    prep = Prepared(cfg, problem, topology, design)
    check_limits(prep)
    return prep


BYTES_PER_NOISE_SAMPLE = 34    # "%.10e %.10e\n" of a noise file
BYTES_PER_ELEMENT = 40         # a netlist line, on average


def estimates(prep: Prepared) -> dict[str, float]:
    """What the run will need, from the config and design alone: noise samples (all sources), readout values,
    disk (netlist + noise files) in MB."""
    sim, design = prep.cfg.simulation, prep.design
    tran = "tran" in sim.analyses
    noise = prep.n_noise_steps * design.d if tran and design.has_noise else 0
    points = int(np.floor(sim.t_stop_tau / prep.sample_dt_tau)) + 1 if tran else 0
    disk = (noise * BYTES_PER_NOISE_SAMPLE + prep.topology.n_elements(design) * BYTES_PER_ELEMENT) / 1e6
    return {"noise_samples": noise, "readout_values": points * design.d, "disk_mb": disk}


def check_limits(prep: Prepared, out_dir: Path | None = None) -> None:
    """Refuse (BadInputError naming the knob and the estimate) a run beyond the configured limits, and, with
    out_dir, one whose files would not fit on its disk -- before any work is done."""
    sim = prep.cfg.simulation
    est = estimates(prep)
    if est["noise_samples"] > sim.max_noise_samples:
        raise BadInputError(
            f"simulation.t_stop_tau: {sim.t_stop_tau:g} tau needs {est['noise_samples']:.3g} noise samples "
            f"({prep.n_noise_steps} steps of {prep.design.noise_dt_tau:.3g} tau x {prep.design.d} sources; limit "
            f"simulation.max_noise_samples = {sim.max_noise_samples}); shorten the run, raise noise_dt_tau or the limit")
    if est["readout_values"] > sim.max_readout_values:
        raise BadInputError(
            f"readout.sample_dt_tau: {prep.sample_dt_tau:.3g} tau over {sim.t_stop_tau:g} tau gives "
            f"{est['readout_values']:.3g} readout values (limit simulation.max_readout_values = "
            f"{sim.max_readout_values}); raise readout.sample_dt_tau, shorten the run or raise the limit")
    writes = out_dir is not None or get_engine(sim.backend).reads_files   # an in-memory linear run writes nothing
    if writes and est["disk_mb"] > sim.max_disk_mb:
        raise BadInputError(
            f"simulation: the run would write about {est['disk_mb']:.4g} MB of netlist and noise files (limit "
            f"simulation.max_disk_mb = {sim.max_disk_mb:g}); shorten the run, raise noise_dt_tau or the limit")
    if out_dir is not None:
        probe = Path(out_dir).resolve()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free_mb = shutil.disk_usage(probe).free / 1e6
        if est["disk_mb"] > 0.9 * free_mb:
            raise BadInputError(f"--out {out_dir}: the run needs about {est['disk_mb']:.4g} MB but the disk has "
                                f"{free_mb:.4g} MB free; free space or choose another --out")


def build_circuit(prep: Prepared) -> Circuit:
    """The circuit of the prepared design for the configured analyses, with its seeded noise samples."""
    sim, design = prep.cfg.simulation, prep.design
    tran = "tran" in sim.analyses
    noise_u = noise_samples(design.d, prep.n_noise_steps, sim.seed) if tran and design.has_noise else None
    request = CircuitRequest(analyses=tuple(sim.analyses), t_stop_s=prep.t_stop_s,
                             step_s=prep.sample_dt_tau * design.tau_s, reltol=sim.reltol, noise_u=noise_u)
    circuit = prep.topology.build_circuit(design, request)
    check_physical(circuit)
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
           prep: Prepared | None = None) -> tuple[T, list[Path]]:
    """Run ``work(stage)`` in a private stage of out_dir (locked for this run) and publish the stage whole
    (spu_sim.io.publish); returns work's value and the published files. A SimulationError keeps the stage
    as out_dir/failed-<time> (rerun it by hand); any other failure leaves out_dir as it was."""
    out = Path(out_dir)
    if prep is not None:
        check_limits(prep, out)
    stage = io.new_stage(out)
    try:
        value = work(stage)
    except SimulationError as e:
        failed = io.keep_failed_stage(stage, out)
        raise SimulationError(str(e).split(" [run folder")[0].split(" (ngspice:")[0],
                              ngspice_message=e.ngspice_message, run_dir=failed,
                              netlist_path=failed / NETLIST_NAME) from None
    except BaseException:
        io.discard(stage)
        raise
    return value, io.publish(stage, out, family)


def run_engine(prep: Prepared, circuit: Circuit, folder: Path,
               progress: bool = False) -> tuple[dict[str, Waveforms], float]:
    """Run the circuit on the configured engine (simulation.backend) in folder; returns plots and wall time.

    progress: show a tqdm bar (stderr) for transients, fed by the engine where it reports progress.
    """
    engine = get_engine(prep.cfg.simulation.backend)
    t0 = time.perf_counter()
    if progress and "tran" in prep.cfg.simulation.analyses and engine.reports_progress:
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
    return plots, time.perf_counter() - t0


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

    With out_dir, publishes netlist.cir, noise_<i>.txt, config.yaml, design.json and result.npz there;
    without, runs in a temporary folder and returns the arrays only. progress: a bar for the transient.
    """
    timings = Timings()
    t0 = time.perf_counter()
    prep = prepare(config)
    timings.design_s = time.perf_counter() - t0
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="spu-sim-") as tmp:
            return simulate_in(prep, Path(tmp), None, timings, progress)
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
        io.atomic_save_npz(folder / RESULT_NAME, **arrays)
    return SimulationResult(out, arrays, timings)
