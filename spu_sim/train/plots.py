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
from spu_sim.plotting import pyplot, save_png


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
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 4.2 * nrows), squeeze=False)
    xs = [("iteration", "iteration", "linear")]
    if with_time:
        xs.append(("modelled_time_s", "modelled time (s)", "log"))
    colors = {label: f"C{i % 10}" for i, label in enumerate(hist)}
    for row, (xkey, xlabel, xscale) in enumerate(xs):
        for col, (ykey, ylabel) in enumerate(panels):
            ax = axes[row][col]
            drawn = False
            for label, h in hist.items():
                x, y = h[xkey], h.get(ykey, np.full_like(h[xkey], np.nan))
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
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    return save_png(fig, path)


def _legend_labels(out: Path, labels) -> dict[str, str]:
    """label -> legend text; TNGD entries get '(engine, circuit)' from summary.json when it is there."""
    names = {lab: lab for lab in labels}
    path = out / "summary.json"
    if not path.is_file():
        return names
    for lab, s in (json.loads(path.read_text()).get("optimizers") or {}).items():
        if lab in names and s.get("failed"):
            names[lab] = f"{lab} (FAILED after {s.get('steps', 0)} steps)"
            continue
        if lab in names and "spu_engine" in s:
            engine = s["spu_backend"] if s["spu_engine"].startswith("none") else f"{s['spu_engine']} engine"
            circuit = "+".join(s.get("spu_circuit_steps") or {})
            names[lab] = f"{lab} ({engine}{', ' + circuit if circuit else ''})"
    return names


def plot_loss_iteration_time(hist: dict[str, dict[str, np.ndarray]], path: Path, title: str,
                             legend: dict[str, str] | None = None) -> Path:
    """Two panels: train loss against iteration and against modelled time (log axes for time and loss)."""
    plt = pyplot()
    plt.rcParams["text.usetex"] = False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = [False, False]
    for i, (label, h) in enumerate(hist.items()):
        for j, (ax, xkey) in enumerate(zip(axes, ("iteration", "modelled_time_s"))):
            x, y = h[xkey], h["train_loss"]
            keep = np.isfinite(y) & (y > 0) & ((x > 0) if xkey == "modelled_time_s" else True)
            ax.plot(x[keep], y[keep], lw=1.4, color=f"C{i % 10}", label=(legend or {}).get(label, label))
            drawn[j] |= bool(keep.any())
    axes[0].set_xlabel("iteration")
    axes[1].set_xlabel("modelled time (s): TNGD hardware model, digital optimisers wall time")
    if drawn[1]:
        axes[1].set_xscale("log")
    for ax, ok in zip(axes, drawn):   # log axes only with positive data (a run whose optimisers all failed still plots)
        if ok:
            ax.set_yscale("log")
        ax.set_ylabel("train loss")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
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
