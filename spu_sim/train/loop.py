"""The training loop: several optimisers on the same data, initial parameters, seeds and batches.

    run_training_from_file(config_path, out_dir)  ==  load -> validate -> build -> run -> write

Outputs in ``out_dir`` (each written atomically: temp file in the same folder, then os.replace):
    config.yaml    the resolved config (all defaults filled in; re-loadable)
    history.csv    optimizer,label,iteration,batch_loss,train_loss,train_accuracy,test_loss,test_accuracy,
                   wall_time_s,modelled_time_s,nat_grad_rel_error
                   (times cumulative from iteration 0; nat_grad_rel_error = |SPU readout - exact natural
                   gradient| / |exact natural gradient| of the step's mini-batch, TNGD only; tkfac: |SPU K-FAC
                   direction - exact K-FAC direction of the same factors| / |exact|; untimed)
    summary.json   per label: final losses/accuracies, mean wall and modelled time per step, TNGD time terms
    summary.md     the summary table (also printed by run_training_from_file)
    *.png          plots made from history.csv by spu_sim.train.plots
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from spu_sim.engines import free_memory_mb
from spu_sim.errors import BadInputError, SpuSimError, TrainingDiverged
from spu_sim.io import atomic_write_text
from spu_sim.optim import OPTIMIZERS, Transform, ngd, ngd_woodbury, tkfac, tngd
from spu_sim.optim import backend as spu_backend
from spu_sim.pipeline import staged
from spu_sim.train import data as data_mod
from spu_sim.train import models
from spu_sim.train.config import OptimizerConfig, TrainConfig, load_config, resolved_dict, validate_config
from spu_sim.train.custom import UserModel, curvature_kind
from spu_sim.train.kfac_timing import tkfac_refresh_time
from spu_sim.train.plots import plot_run
from spu_sim.train.timing import StepTime, format_step_time, tngd_step_time



@dataclass(frozen=True)
class HistoryRow:
    """One row of history.csv (the module docstring); times cumulative from iteration 0, in seconds."""

    optimizer: str
    label: str
    iteration: int
    batch_loss: float
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    wall_time_s: float
    modelled_time_s: float
    nat_grad_rel_error: float


HISTORY_COLUMNS = tuple(f.name for f in fields(HistoryRow))


@dataclass
class OptimizerSummary:
    """One optimiser's entry of summary.json. The optional fields (None: not written) are ``error`` (the SPU
    backend failed), ``spu_*`` (TNGD: backend, engine and the topology of each readout) and the time-model terms
    (TNGD and tkfac: mean seconds per step by term, tau, the printed line, the mean direction error)."""

    optimizer: str
    steps: int
    diverged: bool
    final_train_loss: float
    final_test_loss: float
    final_train_accuracy: float
    final_test_accuracy: float
    best_test_accuracy: float
    wall_time_per_step_s: float
    modelled_time_per_step_s: float
    modelled_time_kind: str
    failed: bool = False   # the optimiser stopped on an error (``error``); ``steps`` counts its completed steps
    error: str | None = None
    spu_backend: str | None = None
    spu_engine: str | None = None
    spu_topology_steps: dict[str, int] | None = None   # steps per circuit.topology (opamp_factored, opamp)
    spu_pruned_per_step: float | None = None   # circuit backends: mean entries pruned per programmed circuit
    modelled_terms_per_step_s: dict[str, float] | None = None
    tau_s: float | None = None
    timing_line: str | None = None
    mean_nat_grad_rel_error: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The summary.json entry: the fields in this order, the optional ones only when set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def make_dataset(cfg: TrainConfig) -> data_mod.Dataset:
    """The data set ``data.name`` of the config (``spu_sim.train.data.DATASETS``)."""
    return data_mod.DATASETS.get(cfg.data.name)(cfg.data)


#: bytes per history row (the HistoryRow in memory, a CSV line on disk) and per step of mini-batch indices
#: beyond the indices themselves (a numpy slice in a list)
HISTORY_ROW_BYTES = 1000
#: an optimiser whose training loss exceeds this multiple of its initial loss (at least 1) has diverged: its numbers
#: are finite but meaningless (lr 1e300 gives losses of 1e298), so it is stopped and marked like a non-finite one
DIVERGED_LOSS_FACTOR = 1e6
STEP_OVERHEAD_BYTES = 120


def check_limits(cfg: TrainConfig, out_dir: str | Path | None = None) -> None:
    """Refuse (BadInputError naming the cost and the fix) a run whose mini-batch indices and history would not fit
    in the machine's free memory, or whose history and plots would not fit on the disk of out_dir -- before the
    data set is built."""
    t = cfg.train
    rows = len(t.optimizers) * (t.steps // t.eval_every + 2)
    memory_mb = (t.steps * (8 * t.batch_size + STEP_OVERHEAD_BYTES) * 2 + rows * HISTORY_ROW_BYTES) / 1e6
    free = free_memory_mb()
    if memory_mb > 0.8 * free:
        raise BadInputError(f"train.steps: {t.steps} steps of batch {t.batch_size} need about {memory_mb:.4g} MB of "
                            f"memory (mini-batch indices and history) but {free:.4g} MB are free; lower train.steps "
                            "or train.batch_size, or raise train.eval_every")
    if out_dir is not None:
        probe = Path(out_dir).resolve()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        disk_mb = (rows * HISTORY_ROW_BYTES) / 1e6 + 5.0          # history.csv + summaries + plots
        free_disk = shutil.disk_usage(probe).free / 1e6
        if disk_mb > 0.9 * free_disk:
            raise BadInputError(f"--out {out_dir}: the run writes about {disk_mb:.4g} MB but the disk has "
                                f"{free_disk:.4g} MB free; free space, choose another --out or raise train.eval_every")


def make_model(cfg: TrainConfig, ds: data_mod.Dataset) -> models.Model:
    """The model of the config for data set ``ds``: a built-in classifier, or ``model.function``'s UserModel."""
    if cfg.model.name == "function":
        return models.function_model(cfg.model.function, ds)
    if ds.n_classes < 2 or ds.y_train.ndim != 1 or ds.y_train.dtype.kind not in "iu":
        raise BadInputError(f"model.name: {cfg.model.name} is a classifier and needs integer class labels "
                            f"(at least 2 classes); give such labels or your own model (model.name: function)")
    return models.make_model(cfg.model.name, ds.x_train.shape[1], ds.n_classes, hidden=cfg.model.hidden,
                             activation=cfg.model.activation)


def prepare(cfg: TrainConfig, model: models.Model | None = None,
            data: Any = None) -> tuple[data_mod.Dataset, models.Model, np.ndarray, np.ndarray]:
    """(data set, model, mini-batch indices (steps, batch), initial parameters) of a validated config: what
    every optimiser of a run shares (also used by spu_sim.train.spot_check to replay the same steps). ``model``
    (a UserModel or a built-in model) and ``data`` (a Dataset or (x_train, y_train, x_test, y_test)) replace the
    config's when given."""
    check_limits(cfg)
    ds = make_dataset(cfg) if data is None else data_mod.as_dataset(data, "data")
    model = make_model(cfg, ds) if model is None else model
    if model.n_params < 1:
        raise BadInputError("model: has no parameters")
    batches = data_mod.batch_indices(len(ds.y_train), cfg.train.batch_size, cfg.train.steps, cfg.train.seed)
    rng = np.random.default_rng(cfg.train.seed)
    theta0 = model.init(rng) if cfg.model.init_scale is None else model.init(rng, cfg.model.init_scale)
    return ds, model, batches, theta0


def exact_natural_gradient(problem, damping: float) -> np.ndarray:
    """(U^T U + damping I)^-1 grad for the diagnostics: Woodbury (O(m^2 N)) when U has fewer rows m than
    parameters N, else the dense solve (the two agree to rounding, tests/test_train_loop.py)."""
    if problem.factor.shape[0] < problem.n_params:
        return ngd_woodbury.natural_gradient(problem, damping)
    return ngd.natural_gradient(problem, damping)


def build_optimizer(entry: OptimizerConfig, cfg: TrainConfig) -> Transform:
    """The optimiser of one config entry (the ideal SPU backends report tau = r_ohm * c_farad)."""
    hyper = entry.hyper()
    if entry.is_tkfac:
        hyper["tau_s"] = cfg.timing.r_ohm * cfg.timing.c_farad
    if entry.is_tngd:
        hyper["tau_s"] = cfg.timing.r_ohm * cfg.timing.c_farad
    return OPTIMIZERS.get(entry.name).build(**hyper)


def _evaluate(model, theta, ds) -> dict[str, float]:
    with np.errstate(all="ignore"):
        if isinstance(model, UserModel):
            (train_loss, train_acc), (test_loss, test_acc) = (model.metrics(theta, ds.x_train, ds.y_train),
                                                              model.metrics(theta, ds.x_test, ds.y_test))
            return {"train_loss": train_loss, "train_accuracy": train_acc, "test_loss": test_loss,
                    "test_accuracy": test_acc}
        return {
            "train_loss": models.cross_entropy(model.logits(theta, ds.x_train), ds.y_train),
            "train_accuracy": models.accuracy(model, theta, ds.x_train, ds.y_train),
            "test_loss": models.cross_entropy(model.logits(theta, ds.x_test), ds.y_test),
            "test_accuracy": models.accuracy(model, theta, ds.x_test, ds.y_test),
        }


def _blas_threads(n: int | None):
    """Limit BLAS/OpenMP threads to ``n`` for stable per-step timings of small matrices (None: leave as is)."""
    if n is None:
        return None
    return threadpool_limits(limits=n)


def train_one(entry: OptimizerConfig, transform: Transform, model, theta0: np.ndarray, ds: data_mod.Dataset,
              batches: np.ndarray, cfg: TrainConfig,
              progress=None) -> tuple[list[HistoryRow], OptimizerSummary, SpuSimError | None]:
    """Train one optimiser; returns (history rows, summary entry, error or None).

    Stops early if the parameters or the loss stop being finite (``diverged``) or if the SPU backend
    raises a SpuSimError (returned, so the caller can write the partial outputs before re-raising).

    Wall time of a step = loss/gradient (+ curvature factor) + optimiser update (the SPU simulation
    included). Modelled time: the measured wall time for digital optimisers; for TNGD the digital part
    (loss, gradient, curvature factor) measured plus the hardware model of spu_sim.train.timing; for
    tkfac the measured step minus the time spent simulating the SPU, plus the hardware model of the
    refresh (spu_sim.train.kfac_timing) on the steps that refresh the inverses.
    """
    theta = theta0.copy()
    state = transform.init(theta)
    wall = modelled = 0.0
    rows = [HistoryRow(optimizer=entry.name, label=entry.label, iteration=0, batch_loss=math.nan,
                       **_evaluate(model, theta, ds), wall_time_s=0.0, modelled_time_s=0.0,
                       nat_grad_rel_error=math.nan)]
    errors: list[float] = []
    step_time: StepTime | None = None
    terms = np.zeros(6)
    diverged = False
    failure: SpuSimError | None = None
    hyper = entry.hyper()
    circuits = {"opamp_factored": 0, "opamp": 0}   # which circuit produced each TNGD readout (circuit backends)
    engine = circuit_engine(entry)
    pruned: list[int] = []
    steps_done = 0
    # two factor buffers used in turn: each step's factor is written into reused memory (no fresh pages per step);
    # the only factor kept past its step is the previous one (TNGD's delay phase), which lives in the other buffer
    needs_factor = OPTIMIZERS.get(entry.name).CURVATURE_NEEDED in ("factor", "matvec")
    buffers = [np.empty(0), np.empty(0)] if needs_factor and not isinstance(model, UserModel) else []
    for k, idx in enumerate(batches, start=1):
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            problem = models.make_problem(model, theta, ds.x_train[idx], ds.y_train[idx], cfg.model.curvature,
                                          factor_out=buffers[k % 2] if buffers else None)
            if entry.is_tngd:
                problem.factor  # noqa: B018 -- the digital part of a TNGD step, timed on its own
            t_digital = time.perf_counter() - t0
            try:
                updates, state = transform.update(problem, state)
            except np.linalg.LinAlgError:
                updates = np.full_like(theta, np.nan)
            except SpuSimError as err:
                failure = err
                if progress is not None:
                    progress.update(len(batches) - k + 1)
                break
            theta = theta + updates
        dt = time.perf_counter() - t0
        steps_done = k
        if buffers and "factor" in vars(problem):   # the factor was built: its memory is this step's buffer
            buffers[k % 2] = vars(problem)["factor"]
        if entry.is_tngd and engine is not None:
            factored = tngd.Curvature(problem.factor, hyper["damping"]).factored   # tngd's rule for the circuit
            circuits["opamp_factored" if factored else "opamp"] += 1
            pruned.append(state.pruned)
        wall += dt
        if entry.is_tkfac:
            step_time = tkfac_step_time(state, dt, hyper, cfg)
            terms += np.array(step_time)
            modelled += step_time.total_s
        elif entry.is_tngd:
            step_time = tngd_step_time(n_params=theta.size, batch_size=len(idx), d_z=model.d_z,
                                       t_stop_tau=hyper["t_stop_tau"], delay_tau=hyper["delay_tau"], tau_s=state.tau_s,
                                       digital_s=t_digital, **cfg.timing.model_dump())
            terms += np.array(step_time)
            modelled += step_time.total_s
        else:
            modelled += dt
        nat_err = math.nan
        if entry.is_tngd and cfg.train.diagnostics:  # untimed: |SPU readout - exact NGD| / |exact NGD|
            with np.errstate(all="ignore"):
                try:
                    exact = exact_natural_gradient(problem, hyper["damping"])
                    nat_err = float(np.linalg.norm(state.spu.x - exact) / np.linalg.norm(exact))
                except (np.linalg.LinAlgError, ValueError):
                    pass
            errors.append(nat_err)
        if entry.is_tkfac and cfg.train.diagnostics:  # untimed: |SPU K-FAC direction - exact K-FAC| / |exact|
            with np.errstate(all="ignore"):
                try:
                    nat_err = tkfac.direction_rel_error(problem, state)
                except (np.linalg.LinAlgError, ValueError):
                    pass
            errors.append(nat_err)
        if progress is not None:
            if engine is not None:   # circuit optimisers: one line per step (time, engine, solve error estimate)
                progress.write(circuit_step_line(entry, k, len(batches), dt, engine, problem, state, hyper),
                               file=sys.stderr)
            progress.set_postfix(batch_loss=f"{problem.loss:.4f}", refresh=False)
            progress.update(1)
        finite = bool(np.all(np.isfinite(theta)))
        if k % cfg.train.eval_every == 0 or k == len(batches) or not finite:
            rows.append(HistoryRow(optimizer=entry.name, label=entry.label, iteration=k, batch_loss=problem.loss,
                                   **_evaluate(model, theta, ds), wall_time_s=wall, modelled_time_s=modelled,
                                   nat_grad_rel_error=nat_err))
        loss_bound = DIVERGED_LOSS_FACTOR * max(rows[0].train_loss, 1.0) if math.isfinite(rows[0].train_loss) else math.inf
        if not finite or not math.isfinite(rows[-1].train_loss) or rows[-1].train_loss > loss_bound:
            diverged = True
            if progress is not None:
                progress.update(len(batches) - k)
            break
    last = rows[-1]
    summary = OptimizerSummary(
        optimizer=entry.name, steps=steps_done, diverged=diverged,
        final_train_loss=last.train_loss, final_test_loss=last.test_loss,
        final_train_accuracy=last.train_accuracy, final_test_accuracy=last.test_accuracy,
        best_test_accuracy=max(r.test_accuracy for r in rows),
        wall_time_per_step_s=wall / max(steps_done, 1),
        modelled_time_per_step_s=modelled / max(steps_done, 1),
        modelled_time_kind=("hardware model (spu_sim.train.timing)" if entry.is_tngd else
                            "hardware model (spu_sim.train.kfac_timing)" if entry.is_tkfac else
                            "measured wall time"))
    if failure is not None:
        summary.failed, summary.error = True, str(failure)
    if entry.is_tngd:   # every TNGD result names the engine and the circuit that produced its directions
        summary.spu_backend = hyper["backend"]
        summary.spu_engine = engine or "none: exact OU transient (spu_sim.optim.tngd.ou_transient)"
        summary.spu_topology_steps = {k: v for k, v in circuits.items() if v} if engine else {}
        if pruned:
            summary.spu_pruned_per_step = float(np.mean(pruned))
    if step_time is not None:
        mean_terms = StepTime(*(terms / max(steps_done, 1)))
        summary.modelled_terms_per_step_s = mean_terms._asdict()
        summary.tau_s = state.tau_s
        summary.timing_line = format_step_time(entry.label, mean_terms)
        if errors:
            finite = [e for e in errors if math.isfinite(e)]
            summary.mean_nat_grad_rel_error = float(np.mean(finite)) if finite else math.nan
    return rows, summary, failure


def circuit_engine(entry: OptimizerConfig) -> str | None:
    """The engine of a circuit optimiser's SPU (tngd, tngd_adam, tkfac with an engine as backend), else None."""
    if entry.is_tngd or entry.is_tkfac:
        return spu_backend.engine(entry.hyper()["backend"])
    return None


def circuit_step_line(entry: OptimizerConfig, k: int, steps: int, dt: float, engine: str, problem, state,
                      hyper: dict[str, Any]) -> str:
    """The progress line of one circuit-optimiser step: wall time, engine, and the solve error estimate (TNGD: the
    relative residual |A x - g| / |g| of the readout x, A = U^T U + damping I, O(m N); tkfac: SPU runs)."""
    head = f"[{entry.label}] step {k}/{steps}: {dt:.3g} s on engine {engine}"
    if entry.is_tkfac:
        return f"{head}, {state.solves} SPU runs (refresh {'yes' if state.kfac.refreshed else 'no'})"
    x, g = state.spu.x, problem.grad
    with np.errstate(all="ignore"):
        res = float(np.linalg.norm(problem.damped_matvec(x, hyper["damping"]) - g) / np.linalg.norm(g))
    return f"{head}, residual |A x - g|/|g| = {res:.3g}, pruned {state.pruned} entries"


def tkfac_step_time(state, dt: float, hyper: dict[str, Any], cfg: TrainConfig) -> StepTime:
    """Modelled time of one tkfac step: the measured step without the SPU simulation, plus the hardware
    time of the refresh (every factor uploaded and inverted column by column) when the step refreshed."""
    digital = max(dt - state.spu_wall_s, 0.0) if cfg.timing.include_digital else 0.0
    if not state.kfac.refreshed:
        return StepTime(digital, 0.0, 0.0, 0.0, 0.0, 0.0)
    sizes = [m.shape[0] for pair in state.damped for m in pair]
    hw = tkfac_refresh_time(sizes, t_stop_tau=hyper["t_stop_tau"], tau_s=state.tau_s, **cfg.timing.model_dump())
    return hw._replace(digital_s=digital)


def format_history_csv(rows: list[HistoryRow]) -> str:
    """history.csv: the header HISTORY_COLUMNS, then one line per row (floats with 10 significant digits)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in
                         ((k, getattr(r, k)) for k in HISTORY_COLUMNS)})
    return buf.getvalue()


def diverged_lines(summary: dict[str, Any]) -> list[str]:
    """One line per optimiser marked ``diverged`` (non-finite parameters or loss, or a training loss above
    DIVERGED_LOSS_FACTOR times its initial one): label, steps, last loss and the fix."""
    return [f"{label} ({s['optimizer']}): diverged at step {s['steps']} (train loss {s['final_train_loss']:.3g}); "
            "lower its lr" for label, s in summary["optimizers"].items()
            if s.get("diverged") and not s.get("failed")]


def format_summary_table(summary: dict[str, Any]) -> str:
    """A Markdown table of the final metrics and per-step times, then the TNGD time-model lines."""
    head = ("| label | optimizer | steps | train loss | test loss | test acc | wall/step (ms) | "
            "modelled/step (ms) |\n|---|---|---|---|---|---|---|---|\n")
    lines = []
    for label, s in summary["optimizers"].items():
        status = " (failed)" if s.get("failed") else " (diverged)" if s["diverged"] else ""
        lines.append(f"| {label} | {s['optimizer']} | {s['steps']}{status} | "
                     f"{s['final_train_loss']:.4g} | {s['final_test_loss']:.4g} | {s['final_test_accuracy']:.4f} | "
                     f"{s['wall_time_per_step_s'] * 1e3:.3f} | {s['modelled_time_per_step_s'] * 1e3:.4f} |")
    timing = [s["timing_line"] for s in summary["optimizers"].values() if "timing_line" in s]
    text = head + "\n".join(lines) + "\n"
    if timing:
        text += "\nSPU modelled time per step (mean):\n" + "\n".join(f"- {t}" for t in timing) + "\n"
    engines = [f"{label}: backend {s['spu_backend']}, engine {s['spu_engine']}"
               + (", topology steps " + ", ".join(f"{k} {v}" for k, v in s["spu_topology_steps"].items())
                  if s["spu_topology_steps"] else "")
               + (f", {s['spu_pruned_per_step']:.4g} entries pruned per step (mean)" if "spu_pruned_per_step" in s else "")
               for label, s in summary["optimizers"].items() if "spu_engine" in s]
    if engines:
        text += "\nSPU readouts produced by:\n" + "\n".join(f"- {e}" for e in engines) + "\n"
    failed = [f"{label}: failed after {s['steps']} steps: {s['error']}" for label, s in summary["optimizers"].items()
              if s.get("failed")]
    diverged = diverged_lines(summary)
    if diverged:
        text += "\nDiverged (stopped; their last numbers are not results):\n" + "\n".join(f"- {d}" for d in diverged) + "\n"
    if failed:
        text += "\nFailed (curves end where they stopped; the others' results are complete):\n" + \
            "\n".join(f"- {f}" for f in failed) + "\n"
    text += "\nDigital optimisers: modelled time = measured wall time.\n"
    return text


def preflight(cfg: TrainConfig, model, transforms: list[Transform], problem) -> None:
    """Check every optimiser's set-up on the first mini-batch before any optimiser trains: the curvature it reads is
    one the model gives, and for circuit optimisers one design of its first step (``Transform.check``: element values
    and run limits, no engine run). Raises the first error as one line naming the optimiser entry and its keys."""
    have = curvature_kind(model)
    for i, (entry, transform) in enumerate(zip(cfg.train.optimizers, transforms)):
        need = OPTIMIZERS.get(entry.name).CURVATURE_NEEDED
        if need is not None and need not in have and not (need == "matvec" and "factor" in have):
            given = " or ".join(sorted(have)) or "none"
            raise BadInputError(f"train.optimizers[{i}].name: {entry.name} needs the curvature as "
                                f"{'per-layer statistics (model.name logreg or mlp)' if need == 'layers' else 'a factor'}"
                                f"; the model gives {given}; remove this optimiser or give the model ggn_factor")
        if transform.check is None:
            continue
        try:
            with np.errstate(all="ignore"):
                transform.check(problem)
        except BadInputError as err:
            raise type(err)(name_entry_keys(str(err), i, entry.label)) from None


def name_entry_keys(message: str, i: int, label: str) -> str:
    """An optimiser's set-up error with the keys the user wrote: ``circuit.``, ``readout.adc.`` and ``factor_bits`` become
    ``train.optimizers[i].circuit.`` etc., prefixed by the entry (the engine's own messages name run-config keys)."""
    prefix = f"train.optimizers[{i}]"
    text = re.sub(r"(?<![\w.\[\]])(circuit\.|readout\.adc\.|factor_bits|kappa|t_stop_tau|delay_tau)", lambda m: f"{prefix}.{m.group(1)}", message)
    return f"{prefix} ({label}), checked on the first mini-batch before training: {text}"


def run_training(config: TrainConfig | dict[str, Any], out_dir: str | Path, *, model: models.Model | None = None,
                 data: Any = None) -> dict[str, Any]:
    """Validate ``config``, train every optimiser on it and write the outputs to ``out_dir``.

    ``model``: your own model (``spu_sim.train.custom.UserModel``, or a built-in one) in place of the config's;
    ``data``: your own data (a ``spu_sim.train.data.Dataset`` or (x_train, y_train, x_test, y_test)) in place of
    the config's ``data`` section.

    Everything that can be checked is checked before ``out_dir`` is created or touched and before any optimiser
    trains: the config, the data, the optimisers' settings, the circuit backend's sections (validated when its
    AnalogSolver is built), the curvature each optimiser needs against what the model gives, and one design of
    every circuit optimiser's first step (``preflight``). Returns the summary dict.
    If an optimiser fails while training (SpuSimError), the other optimisers still run, the outputs are written (the
    failed entry's summary carries ``failed`` and ``error``; its curves end where it stopped) and then the first
    error is raised.
    """
    cfg = validate_config(config)
    check_limits(cfg, out_dir)
    ds, model, batches, theta0 = prepare(cfg, model, data)
    transforms = []
    for i, entry in enumerate(cfg.train.optimizers):
        try:
            transforms.append(build_optimizer(entry, cfg))
        except BadInputError as err:
            raise type(err)(name_entry_keys(str(err), i, entry.label)) from None
    with np.errstate(all="ignore"):
        first = models.make_problem(model, theta0, ds.x_train[batches[0]], ds.y_train[batches[0]], cfg.model.curvature)
    preflight(cfg, model, transforms, first)
    del first

    def work(out: Path) -> tuple[dict[str, Any], list[SpuSimError]]:   # out: the stage, published whole
        atomic_write_text(out / "config.yaml", yaml.safe_dump(resolved_dict(cfg), sort_keys=False))
        rows: list[HistoryRow] = []
        per_opt: dict[str, dict[str, Any]] = {}   # label -> OptimizerSummary.as_dict()
        failures: list[SpuSimError] = []
        t_start = time.perf_counter()
        blas = _blas_threads(cfg.train.blas_threads)
        try:
            for i, (entry, transform) in enumerate(zip(cfg.train.optimizers, transforms), start=1):
                progress = None
                if cfg.train.progress:   # one bar per optimiser: its steps, the batch loss as postfix
                    from tqdm import tqdm  # noqa: PLC0415 - optional heavy dependency, only for the bars
                    progress = tqdm(total=len(batches), file=sys.stderr, unit="step", leave=True,
                                    desc=f"[{i}/{len(transforms)}] {entry.label}")
                try:
                    r, s, err = train_one(entry, transform, model, theta0, ds, batches, cfg, progress)
                finally:
                    if progress is not None:
                        progress.close()
                rows += r
                per_opt[entry.label] = s.as_dict()
                failures += [err] if err is not None else []
        finally:
            if blas is not None:
                blas.restore_original_limits()
        summary = {
            "data": ds.name if data is not None else cfg.data.name,
            "model": type(model).__name__ if isinstance(model, UserModel) else cfg.model.name,
            "n_params": int(model.n_params),
            "n_train": int(len(ds.y_train)), "n_test": int(len(ds.y_test)), "batch_size": cfg.train.batch_size,
            "d_z": int(model.d_z), "steps": cfg.train.steps, "run_time_s": time.perf_counter() - t_start,
            "optimizers": per_opt,
        }
        atomic_write_text(out / "history.csv", format_history_csv(rows))
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, allow_nan=True) + "\n")
        atomic_write_text(out / "summary.md", format_summary_table(summary))
        summary["plots"] = [Path(p).name for p in plot_run(out)]
        return summary, failures

    (summary, failures), _ = staged(out_dir, work, family="train")
    summary["plots"] = [str(Path(out_dir) / name) for name in summary["plots"]]
    if failures:  # partial outputs are published; report the first failure (CLI exit 1, or 2 for bad input)
        raise failures[0]
    return summary


def run_training_from_file(config_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """``spu-sim train CONFIG --out DIR``: load -> validate -> train -> write; prints the summary table.

    Raises ConfigError / BadInputError for bad input (CLI exit 2), other SpuSimError on failure (exit 1).
    """
    cfg = load_config(config_path)
    summary = run_training(cfg, out_dir)
    print(format_summary_table(summary), end="")
    print(f"run time {summary['run_time_s']:.1f} s; outputs in {out_dir}")
    diverged = diverged_lines(summary)
    text = (f"train: {len(diverged)} of {len(summary['optimizers'])} optimisers diverged, marked in "
            f"{out_dir}/summary.md and the plots: {'; '.join(diverged)}")
    if diverged and len(diverged) == len(summary["optimizers"]):   # no result at all: the command fails (exit 1)
        raise TrainingDiverged(text)
    if diverged:   # the others are results (a sweep may study divergence): said on stderr, exit 0
        warnings.warn(text, stacklevel=2)
    return summary


__all__ = ["run_training", "run_training_from_file", "train_one", "build_optimizer", "make_dataset", "prepare",
           "exact_natural_gradient", "HistoryRow", "OptimizerSummary", "HISTORY_COLUMNS"]
