"""Plots of a training run, made from the saved files only (history.csv, config.yaml); never trains.

    plot_run(out_dir) -> [paths]:
        loss_accuracy.png         train/test loss and test accuracy against iteration and modelled time (and,
                                  for TNGD, the relative error of the SPU readout vs the exact natural gradient)
        group_<name>.png          one per plots.groups entry of the config (e.g. the analog-time sweep)
        loss_iteration_time.png   the TNGD paper's Fig. 3 shape: train loss against iteration and against modelled
                                  hardware time, two panels; TNGD legends name the engine and circuit (summary.json)
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from spu_sim import io
from spu_sim.plotting import integer_ticks, pyplot, save_png


def read_history(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """history.csv -> {label: {column: array}} (in file order)."""
    cols: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            label = row.get("label") or row["optimizer"]
            for k, v in row.items():
                if k not in ("optimizer", "label"):
                    cols[label][k].append(float(v) if v not in ("", None) else np.nan)
    return {lab: {k: np.asarray(v) for k, v in c.items()} for lab, c in cols.items()}


#: a first step slower than this multiple of the median step is a cold start (Adam: 2.2 ms against 0.1 ms)
WARMUP_FACTOR = 3.0


def legend_columns(n_entries: int, rows: int = 16) -> int:
    """Columns of a legend of n_entries so that it stays within about ``rows`` rows (a long legend of one column
    runs off the figure)."""
    return max(1, -(-n_entries // rows))


def warm_time(h: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """(modelled time with warm-up and interrupted steps left out, the seconds left out) of one optimiser's history.

    The first step of a digital optimiser includes one-off costs (allocation, caches: Adam's took 2.2 ms against
    0.1 ms per later step), and on a shared machine any step can be interrupted (32 ms against 0.1 ms, measured);
    either moves the rest of the curve to the right and, on a log time axis, squeezes the run. A row interval whose
    time per step is more than WARMUP_FACTOR times the median per step of all intervals is replaced by its steps
    times that median; every later time moves by the same amount (the curve keeps its shape). history.csv keeps
    the measured times.
    """
    t, it = np.asarray(h["modelled_time_s"], dtype=float), np.asarray(h["iteration"], dtype=float)
    if len(t) < 3:
        return t, 0.0
    dt, dit = np.diff(t), np.diff(it)
    ok = (dit > 0) & np.isfinite(dt)
    if ok.sum() < 2:
        return t, 0.0
    per_step = float(np.median(dt[ok] / dit[ok]))
    if not per_step > 0:
        return t, 0.0
    slow = ok & (dt > WARMUP_FACTOR * per_step * np.where(ok, dit, 1.0))
    if not slow.any():
        return t, 0.0
    excess = np.where(slow, dt - per_step * dit, 0.0)
    out = t.copy()
    out[1:] -= np.cumsum(excess)
    return out, float(excess.sum())


def _time_label(hist: dict[str, dict[str, np.ndarray]], what: str = "modelled time (s)") -> str:
    """The time axis label ``what``, with a second line saying how much warm-up / interruption was left out (warm_time), if any
    (the optimiser with the largest; history.csv keeps the measured times)."""
    cut = {lab: warm_time(h)[1] for lab, h in hist.items()}
    cut = {lab: v for lab, v in cut.items() if v > 0}
    if not cut:
        return what
    worst = max(cut, key=cut.get)
    ms = f"{cut[worst] * 1e3:.2g} ms"     # short: the label sits under a narrow panel
    return what + ("\nslow steps left out: " + (f"{ms} ({worst})" if len(cut) == 1 else f"up to {ms} ({len(cut)} optimisers)"))


def plot_curves(hist: dict[str, dict[str, np.ndarray]], path: Path, title: str, *, with_time: bool = True,
                legend: dict[str, str] | None = None) -> Path:
    """Loss and accuracy against iteration (and against modelled time) for the labels in ``hist``."""
    plt = pyplot()
    plt.rcParams["text.usetex"] = False
    panels = [("train_loss", "train loss"), ("test_loss", "test loss"), ("test_accuracy", "test accuracy")]
    if any(np.isfinite(h.get("nat_grad_rel_error", np.array([np.nan]))).any() for h in hist.values()):
        panels.append(("nat_grad_rel_error", "|SPU - exact| / |exact| (NGD; tkfac: K-FAC)"))
    ncols = len(panels)
    nrows = 2 if with_time else 1
    # one more, narrow column for the legend: inside a panel a long legend covers curves or runs off the figure
    fig, grid = plt.subplots(nrows, ncols + 1, figsize=(5 * ncols + 2.6, 4.2 * nrows), squeeze=False,
                             gridspec_kw={"width_ratios": [1.0] * ncols + [0.5]})
    axes = [row[:ncols] for row in grid]
    for row in grid:
        row[-1].axis("off")
    xs = [("iteration", "iteration", "linear")]
    if with_time:
        xs.append(("modelled_time_s", _time_label(hist), "log"))
    colors = {label: f"C{i % 10}" for i, label in enumerate(hist)}
    for row, (xkey, xlabel, xscale) in enumerate(xs):
        for col, (ykey, ylabel) in enumerate(panels):
            ax = axes[row][col]
            drawn = False
            for label, h in hist.items():
                x = warm_time(h)[0] if xkey == "modelled_time_s" else h[xkey]
                y = h.get(ykey, np.full_like(h[xkey], np.nan))
                keep = np.isfinite(y) & ((x > 0) if xscale == "log" else True)
                if ykey != "test_accuracy":
                    keep &= y > 0
                if not keep.any():
                    continue
                ax.plot(x[keep], y[keep], label=(legend or {}).get(label, label), lw=1.4, color=colors[label])
                drawn = True
            if drawn:   # log axes only with positive data (a run whose optimisers all failed still plots)
                ax.set_xscale(xscale)
                if ykey != "test_accuracy":
                    ax.set_yscale("log")
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if xkey == "iteration":
                integer_ticks(ax.xaxis)      # whole steps (after the scale, which resets the locator)
    handles, labels = axes[0][0].get_legend_handles_labels()
    grid[0][-1].legend(handles, labels, loc="upper left", fontsize=7, ncol=legend_columns(len(labels), rows=16),
                       title="optimiser", title_fontsize=8)
    fig.suptitle(title)
    return save_png(fig, path)


def _legend_labels(out: Path, labels) -> dict[str, str]:
    """label -> legend text; TNGD entries get '(engine, topology)' from summary.json when it is there."""
    names = {lab: lab for lab in labels}
    path = out / "summary.json"
    if not path.is_file():
        return names
    for lab, s in (json.loads(path.read_text()).get("optimizers") or {}).items():
        if lab in names and s.get("failed"):
            names[lab] = f"{lab} (FAILED after {s.get('steps', 0)} steps)"
            continue
        if lab in names and s.get("diverged"):
            names[lab] = f"{lab} (DIVERGED at step {s.get('steps', 0)})"
            continue
        if lab in names and "spu_engine" in s:
            engine = s["spu_backend"] if s["spu_engine"].startswith("none") else f"{s['spu_engine']} engine"
            topology = "+".join(s.get("spu_topology_steps") or {})
            names[lab] = f"{lab} ({engine}{', ' + topology if topology else ''})"
    return names


def plot_loss_iteration_time(hist: dict[str, dict[str, np.ndarray]], path: Path, title: str,
                             legend: dict[str, str] | None = None) -> Path:
    """Two panels: train loss against iteration and against modelled time (log axes for time and loss)."""
    plt = pyplot()
    plt.rcParams["text.usetex"] = False
    fig, grid = plt.subplots(1, 3, figsize=(13.5, 4.6), gridspec_kw={"width_ratios": [1.0, 1.0, 0.55]})
    axes, side = grid[:2], grid[2]
    side.axis("off")
    drawn = [False, False]
    for i, (label, h) in enumerate(hist.items()):
        for j, (ax, xkey) in enumerate(zip(axes, ("iteration", "modelled_time_s"))):
            x = warm_time(h)[0] if xkey == "modelled_time_s" else h[xkey]
            y = h["train_loss"]
            keep = np.isfinite(y) & (y > 0) & ((x > 0) if xkey == "modelled_time_s" else True)
            ax.plot(x[keep], y[keep], lw=1.4, color=f"C{i % 10}", label=(legend or {}).get(label, label))
            drawn[j] |= bool(keep.any())
    axes[0].set_xlabel("iteration")
    integer_ticks(axes[0].xaxis)
    axes[1].set_xlabel(_time_label(hist, "modelled time (s): TNGD hardware model, digital optimisers wall time"),
                       fontsize=9)
    if drawn[1]:
        axes[1].set_xscale("log")
    for ax, ok in zip(axes, drawn):   # log axes only with positive data (a run whose optimisers all failed still plots)
        if ok:
            ax.set_yscale("log")
        ax.set_ylabel("train loss")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    side.legend(handles, labels, loc="upper left", fontsize=7, ncol=legend_columns(len(labels), rows=16),
                title="optimiser", title_fontsize=8)
    fig.suptitle(title)
    return save_png(fig, path)


def plot_run(out_dir: str | Path) -> list[Path]:
    """All plots of a run folder; returns the written paths."""
    out = Path(out_dir)
    hist = read_history(out / "history.csv")
    groups = {}
    cfg_path = out / "config.yaml"
    if cfg_path.is_file():
        groups = (yaml.safe_load(cfg_path.read_text()).get("plots") or {}).get("groups") or {}
    title = "all optimisers (modelled time: SPU hardware model for TNGD and tkfac, digital = wall time)"
    legend = _legend_labels(out, hist)
    paths = [plot_curves(hist, out / "loss_accuracy.png", title, legend=legend),
             plot_loss_iteration_time(hist, out / "loss_iteration_time.png", "loss against iteration and modelled time",
                                      legend)]
    for name, labels in groups.items():
        sub = {lab: hist[lab] for lab in labels if lab in hist}
        paths.append(plot_curves(sub, io.path_in(out, f"group_{name}.png", "plots.groups"), name, with_time=False,
                                 legend=legend))
    return paths
