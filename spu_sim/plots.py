"""Plots of a compare run. They read OUT/result.npz, OUT/reference.npz and OUT/metrics.json only and
never simulate. Agg backend, no LaTeX. Run again any time: ``python -m spu_sim.plots OUT``."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from .plotting import pyplot, save_png, variable_ticks

MAX_TRACES = 6


def _engine(res) -> str:
    """The engine that produced a result (result.npz's ``engine``), for legends."""
    return str(res["engine"]) if "engine" in res else "ngspice"


def plot_waveforms(res, ref, path: Path) -> Path:
    """Circuit x_i(t) against the exact transient mean with +/- 2 sigma bands."""
    plt = pyplot()
    d = res["x"].shape[1]
    n = min(d, MAX_TRACES)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.8 * n + 0.6), sharex=True, squeeze=False)
    sel = ref["plot_index"]
    t = ref["t_tau"][sel]
    for i in range(n):
        ax = axes[i, 0]
        ax.fill_between(t, ref["mean_t"][:, i] - 2 * ref["std_t"][:, i], ref["mean_t"][:, i] + 2 * ref["std_t"][:, i],
                        color="tab:orange", alpha=0.25, label="exact mean +/- 2 sigma")
        ax.plot(t, res["x"][sel, i], lw=0.6, color="tab:blue", label=f"circuit ({_engine(res)})")
        ax.plot(t, ref["mean_t"][:, i], lw=1.2, color="tab:orange", label="exact mean")
        ax.set_ylabel(f"x{i + 1}")
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("t / tau")
    fig.suptitle(f"Transient, {n} of {d} variables, problem units")
    return save_png(fig, path)


def plot_covariance(res, ref, path: Path) -> Path:
    """Heat maps: circuit sample covariance, exact stationary covariance, and their difference; rows and columns
    named x1 .. xd like the waveforms."""
    plt = pyplot()
    c, s = res["x_cov"], ref["cov_stationary"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    lim = np.abs(s).max()
    circuit = f"circuit ({_engine(res)})"
    for ax, mat, title in ((axes[0], c, circuit), (axes[1], s, "exact stationary"), (axes[2], c - s, "circuit - exact")):
        diff = title == "circuit - exact"
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-np.abs(c - s).max() if diff else -lim,
                       vmax=np.abs(c - s).max() if diff else lim)
        ax.set_title(title)
        variable_ticks(ax, mat.shape[0])
        fig.colorbar(im, ax=ax, fraction=0.046).set_label("covariance (problem units^2)")
    fig.suptitle("Covariance of x: cov(x_i, x_j)")
    return save_png(fig, path)


def plot_convergence(ref, path: Path, res=None) -> Path:
    """Relative error of the running mean and covariance vs averaging time: circuit, ideal sampler, theory. A
    topology without a mean (rlc: has_mean False in result.npz) has no b: the covariance panel only."""
    plt = pyplot()
    T = ref["conv_T_tau"]
    panels = [("mean", "time average vs A^-1 b"), ("cov", "covariance vs kappa A^-1")]
    if res is not None and "has_mean" in res and not bool(res["has_mean"]):
        panels = panels[1:]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    engine = "ngspice" if res is None else _engine(res)
    for ax, (key, title) in zip(axes[0], panels):
        ax.loglog(T, ref[f"conv_{key}_err"], "o-", ms=3, label=f"circuit ({engine})")
        ax.loglog(T, ref[f"conv_{key}_err_ideal"], "s-", ms=3, label="ideal OU sampler")
        if f"conv_{key}_err_expected" in ref:
            ax.loglog(T, ref[f"conv_{key}_err_expected"], "k--", label="expected (theory, rms)")
        ax.set_xlabel("averaging time / tau")
        ax.set_ylabel("relative error")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return save_png(fig, path)


def plot_clock_zoom(res, path: Path) -> Path:
    """Zoomed waveform of a clocked topology (result arrays sc_zoom_*): outputs at the engine's own time points
    (ngspice: its adaptive points inside the phases; the linear engine: its output grid, the clock-period
    samples) with the two clock phases shaded, and the clock voltages below."""
    plt = pyplot()
    t = res["sc_zoom_t_s"]
    engine = str(res["engine"]) if "engine" in res else "ngspice"
    T = float(res["sc_period_s"])
    t_us = (t - t[0]) * 1e6
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for name, color in (("sc_zoom_phi1_v", "tab:green"), ("sc_zoom_phi2_v", "tab:purple")):
        on = res[name] > 0.5 * res[name].max()
        ax.fill_between(t_us, 0, 1, where=on, transform=ax.get_xaxis_transform(), color=color, alpha=0.12, lw=0)
        axc.plot(t_us, res[name], color=color, lw=1.0, label=name.split("_")[2])
    for i in range(res["sc_zoom_x"].shape[1]):
        ax.plot(t_us, res["sc_zoom_x"][:, i], lw=1.0, marker=".", ms=2, label=f"x{i + 1} ({engine})")
    ax.set_ylabel("x (problem units)")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"Clocked waveform: {len(t)} {engine} points over {(t[-1] - t[0]) / T:.0f} clock periods\n"
                 "(shaded: phase 1 green, phase 2 purple)", fontsize=10)
    axc.set_ylabel("clock (V)")
    axc.set_xlabel("t - t0 (us)")
    axc.legend(fontsize=8, loc="upper right", ncol=2)
    return save_png(fig, path)


def plot_compare(out_dir: str | Path) -> list[Path]:
    """All plots of a compare run folder."""
    out = Path(out_dir)
    res = dict(np.load(out / "result.npz"))
    ref_path = out / "reference.npz"
    if not ref_path.is_file():
        return []
    ref = dict(np.load(ref_path))
    paths = [plot_waveforms(res, ref, out / "waveforms.png"), plot_convergence(ref, out / "error_vs_time.png", res)]
    if np.any(res.get("kappa", 0)):
        if np.all(np.isfinite(res["x_cov"])):
            paths.append(plot_covariance(res, ref, out / "covariance.png"))
        else:   # a noisy run without a measured covariance (no .tran): say why the plot is missing
            warnings.warn("covariance.png not drawn: the run measured no covariance (x_cov is not a number: no tran "
                          "analysis, or no samples after the burn-in); add tran to simulation.analyses", stacklevel=2)
    if "sc_zoom_t_s" in res and len(res["sc_zoom_t_s"]) > 1:   # a clocked topology saved its zoom window
        paths.append(plot_clock_zoom(res, out / "clock_zoom.png"))
    return paths


def main(argv: list[str]) -> int:
    """``python -m spu_sim.plots OUT``: redraw a compare folder's plots; another folder (no result.npz: a sweep, a
    training run) is exit 2 with one line, not a traceback."""
    if len(argv) != 1:
        print("usage: python -m spu_sim.plots OUT  (OUT: the folder of a compare run)", file=sys.stderr)
        return 2
    out = Path(argv[0])
    if not (out / "result.npz").is_file():
        print(f"error: {out}: no result.npz here; python -m spu_sim.plots redraws the plots of a compare run folder "
              "(spu-sim compare CONFIG --out OUT)", file=sys.stderr)
        return 2
    for p in plot_compare(out):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
