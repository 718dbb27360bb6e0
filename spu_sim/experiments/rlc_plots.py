"""Plots of the RLC experiments, drawn from their saved files only (never simulate): ``replot`` calls
these on a finished output folder (spu_sim.experiments.replot). matplotlib Agg, no LaTeX."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..plotting import pyplot, save_png, variable_ticks

SUMMARY_NAME = "summary.json"


def plot_sampling(out: Path) -> list[Path]:
    """Histograms and covariance plots from sampling.npz (no simulation)."""
    plt = _plt()
    f = np.load(out / "sampling.npz")
    x, d = f["x"], f["x"].shape[1]
    cols = min(4, d)
    rows = int(np.ceil(d / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for i in range(d):
        ax = axes[i // cols, i % cols]
        s = float(np.sqrt(f["cov_theory"][i, i]))
        lim = float(f["n_sigma"]) * s
        ax.hist(x[:, i], bins=int(f["bins"]), range=(-lim, lim), density=True, color="tab:blue", alpha=0.6,
                label="circuit (ngspice)")
        g = np.linspace(-lim, lim, 200)
        ax.plot(g, np.exp(-0.5 * (g / s) ** 2) / (s * np.sqrt(2 * np.pi)), color="tab:orange",
                label="N(0, kT Cm^-1)")
        ax.set_title(f"cell {i + 1}", fontsize=9)
        ax.set_xlabel(f"x{i + 1} (problem units)", fontsize=8)
        if i % cols == 0:
            ax.set_ylabel("probability density", fontsize=8)
    for k in range(d, rows * cols):
        axes[k // cols, k % cols].axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Node samples (problem units) vs the exact stationary marginal")
    files = [save_png(fig, out / "sampling_histograms.png")]

    emp, th, sd = f["cov_emp_v2"], f["kt_cm_inv_v2"], f["cov_sd"] / f["s_x"] ** 2
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    lim = float(np.abs(th).max())
    for ax, mat, title in ((axes[0], emp, "empirical (V^2)"), (axes[1], th, "kT_eff Cm^-1 (V^2)")):
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(title)
        variable_ticks(ax, mat.shape[0])
        fig.colorbar(im, ax=ax, fraction=0.046).set_label("covariance (V^2)")
    zl = max(3.0, float(np.abs(f["z"]).max()))
    im = axes[2].imshow(f["z"], cmap="RdBu_r", vmin=-zl, vmax=zl)
    axes[2].set_title("(empirical - theory) / std. error")
    variable_ticks(axes[2], f["z"].shape[0])
    fig.colorbar(im, ax=axes[2], fraction=0.046).set_label("z score")
    iu = np.triu_indices(emp.shape[0])
    axes[3].errorbar(th[iu], emp[iu], yerr=2 * sd[iu], fmt="o", ms=3, lw=0.8, label="entries +/- 2 s.e.")
    lo, hi = float(th[iu].min()), float(th[iu].max())
    axes[3].plot([lo, hi], [lo, hi], color="k", lw=0.8, label="y = x")
    axes[3].set_xlabel("kT_eff Cm^-1 (V^2)")
    axes[3].set_ylabel("empirical (V^2)")
    axes[3].legend(fontsize=7)
    files.append(save_png(fig, out / "sampling_covariance.png"))
    return files


def plot_inversion(out: Path) -> list[Path]:
    """Error of the inverse estimate vs duration, all banks on one plot (from inversion.npz)."""
    plt = _plt()
    f = np.load(out / "inversion.npz")
    labels = [str(s) for s in f["labels"]]
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, lab in enumerate(labels):
        c = colors[k % len(colors)]
        ax.loglog(f[f"{lab}/T_tau"], f[f"{lab}/err"], "o-", color=c, ms=3, lw=1.3, label=f"{lab}: ngspice")
        ax.loglog(f["ref_T_tau"], f[f"{lab}/ref_err"], "--", color=c, lw=0.9,
                  label=f"{lab}: exact sampler of the realised circuit")
        fl = float(f[f"{lab}/floor_netlist"]) if f"{lab}/floor_netlist" in f else float(f[f"{lab}/floor"])
        if fl > 1e-8:                      # the ideal bank's floor is round-off (1e-16): not drawn
            ax.axhline(fl, color=c, ls=":", lw=0.9)
    ax.loglog(f["ref_T_tau"], f["ref_err_target"], "k-", lw=1.5, label="ideal sampler (target A, exact)")
    if "ideal/floor_noise_step" in f:        # the simulation's own bias: the filesource's finite noise step
        ax.axhline(float(f["ideal/floor_noise_step"]), color="0.3", ls="-.", lw=0.9,
                   label="floor of the simulation itself (noise step, ideal coupling)")
    if "expected_err" in f:
        ax.loglog(f["ref_T_tau"], f["expected_err"], color="0.6", lw=1, label="expected sampling error (theory)")
    lows = [float(np.min(f["ref_err_target"]))] + [float(f[f"{lab}/floor"]) for lab in labels
                                                   if float(f[f"{lab}/floor"]) > 1e-8]
    ax.set_ylim(bottom=0.3 * min(lows))
    ax.set_xlabel("averaging time T / tau")
    ax.set_ylabel("||Shat/kappa - A^-1||_F / ||A^-1||_F")
    ax.set_title(f"RLC SPU, {f['A'].shape[0]}x{f['A'].shape[0]} inversion: error vs duration\n"
                 "(dotted: exact floor of the netlist as built, switch resistances included)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return [save_png(fig, out / "inversion_error.png")]


def plot_autocorrelation(out: Path) -> list[Path]:
    """Measured vs exact autocovariance with a +/- 2 standard-error band, and the residual (from the npz)."""
    plt = _plt()
    f = np.load(out / "autocorrelation.npz")
    s = json.loads((out / SUMMARY_NAME).read_text())
    lags = f["lags_tau"]
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax = axes[0]
    ax.fill_between(lags, f["c_exact"] - 2 * f["se"], f["c_exact"] + 2 * f["se"], color="tab:orange", alpha=0.25,
                    label="exact +/- 2 s.e.")
    ax.plot(lags, f["c_emp"], color="tab:blue", lw=1.0, label="circuit (ngspice)")
    ax.plot(lags, f["c_exact"], color="tab:orange", lw=1.2, label="exact underdamped (realised circuit)")
    ax.plot(lags, f["c_target"], color="k", lw=0.7, ls="--", label="exact underdamped (target A)")
    fm, fe = s["fit_measured"], s["fit_exact"]
    ax.set_title(f"cell {int(f['cell'])}: fitted omega {fm['omega_per_tau']:.4f}/tau (exact {fe['omega_per_tau']:.4f}), "
                 f"decay {fm['decay_per_tau']:.4f}/tau (exact {fe['decay_per_tau']:.4f})", fontsize=9)
    ax.set_ylabel("autocovariance (problem units^2)")
    ax.legend(fontsize=7)
    axes[1].plot(lags, f["c_emp"] - f["c_exact"], color="tab:blue", lw=0.8)
    axes[1].fill_between(lags, -2 * f["se"], 2 * f["se"], color="tab:orange", alpha=0.25)
    axes[1].set_ylabel("measured - exact")
    axes[1].set_xlabel("lag / tau")
    return [save_png(fig, out / "autocorrelation.png")]


def _plt():
    """pyplot without LaTeX (spu_sim.plotting loads it on first use)."""
    plt = pyplot()
    plt.rcParams["text.usetex"] = False
    return plt
