"""Plots of a posterior run, from OUT/samples.npz and OUT/metrics.json only (never simulates).

    marginals.png       histogram of each theta_i: circuit vs reference (and Laplace / realised sigmoid)
    pairs.png           pair plot: circuit samples vs reference samples, reference 1- and 2-sigma ellipses
    autocorrelation.png circuit autocorrelation per coordinate vs the (linearised) OU theory
    error_vs_time.png   running mean and covariance errors vs sampling time, with the theory's rms error

``python -m spu_sim.posterior.plots OUT`` redraws them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..plotting import pyplot, save_png

MAX_DIM = 6
MAX_SCATTER = 3000


def _engine(s) -> str:
    return str(s["engine"])


def plot_marginals(s, path: Path) -> Path:
    plt = pyplot()
    th, ref = s["theta"], s["ref_samples"]
    d = min(th.shape[1], MAX_DIM)
    fig, axes = plt.subplots(1, d, figsize=(3.0 * d, 2.8), squeeze=False)
    for i in range(d):
        ax = axes[0, i]
        lo, hi = np.percentile(np.concatenate([th[:, i], ref[:, i]]), [0.2, 99.8])
        bins = np.linspace(lo, hi, 50)
        ax.hist(ref[:, i], bins=bins, density=True, histtype="stepfilled", alpha=0.35, color="tab:orange",
                label=f"reference ({s['ref_kind']})")
        ax.hist(th[:, i], bins=bins, density=True, histtype="step", lw=1.4, color="tab:blue",
                label=f"circuit ({_engine(s)})")
        g = np.linspace(lo, hi, 200)
        for key, col, lab in (("laplace", "k", "Laplace"), ("link", "tab:green", "realised sigmoid")):
            if f"{key}_mean" in s:
                mu, sd = s[f"{key}_mean"][i], np.sqrt(s[f"{key}_cov"][i, i])
                ax.plot(g, np.exp(-0.5 * ((g - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), color=col, lw=0.9,
                        ls="--", label=lab + " (Gaussian fit)")
        ax.set_xlabel(f"theta_{i + 1}")
        ax.set_ylabel("probability density")
        if i == 0:
            ax.legend(fontsize=6)
    fig.suptitle("posterior marginals", fontsize=9)
    return save_png(fig, path)


def _ellipse(ax, mean, cov, k, **kw):
    w, V = np.linalg.eigh(cov)
    a = np.linspace(0, 2 * np.pi, 200)
    pts = mean[:, None] + V @ (k * np.sqrt(np.clip(w, 0, None))[:, None] * np.vstack([np.cos(a), np.sin(a)]))
    ax.plot(pts[0], pts[1], **kw)


def plot_pairs(s, path: Path) -> Path:
    plt = pyplot()
    th, ref = s["theta"], s["ref_samples"]
    d = min(th.shape[1], MAX_DIM)
    rng = np.random.default_rng(0)
    ci = rng.choice(len(th), size=min(MAX_SCATTER, len(th)), replace=False)
    ri = rng.choice(len(ref), size=min(MAX_SCATTER, len(ref)), replace=False)
    fig, axes = plt.subplots(d, d, figsize=(2.2 * d + 0.5, 2.2 * d + 0.5), squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if i == j:
                ax.hist(ref[:, i], bins=40, density=True, color="tab:orange", alpha=0.35)
                ax.hist(th[:, i], bins=40, density=True, histtype="step", color="tab:blue")
            elif i > j:
                ax.scatter(ref[ri, j], ref[ri, i], s=1, color="tab:orange", alpha=0.2)
                ax.scatter(th[ci, j], th[ci, i], s=1, color="tab:blue", alpha=0.2)
                sub = np.ix_([j, i], [j, i])
                for k in (1, 2):
                    _ellipse(ax, s["ref_mean"][[j, i]], s["ref_cov"][sub], k, color="k", lw=0.8)
                    _ellipse(ax, th[:, [j, i]].mean(0), np.cov(th[:, [j, i]], rowvar=False), k, color="tab:blue",
                             lw=0.8, ls="--")
            else:
                ax.axis("off")
            if i == d - 1:
                ax.set_xlabel(f"theta_{j + 1}", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"theta_{i + 1}" if i > 0 else "density", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"circuit ({_engine(s)}, blue) vs reference ({s['ref_kind']}, orange; black: 1 and 2 sigma)",
                 fontsize=8)
    return save_png(fig, path)


def plot_autocorrelation(s, m: dict, path: Path) -> Path:
    plt = pyplot()
    lag, rho, th = s["acf_lag_tau"], s["acf"], s["acf_theory"]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i in range(min(rho.shape[1], MAX_DIM)):
        line, = ax.plot(lag[: len(rho)], rho[:, i], lw=1.0, label=f"theta_{i + 1} circuit")
        ax.plot(lag, th[:, i], lw=0.9, ls="--", color=line.get_color())
    ax.axhline(np.exp(-1), color="grey", lw=0.6, ls=":")
    ax.axvline(m["mixing_time_tau"], color="k", lw=0.7, label=f"mixing time {m['mixing_time_tau']:.3g} tau")
    ax.set_xlabel("lag (tau)")
    ax.set_ylabel("autocorrelation")
    ax.set_title(f"circuit ({_engine(s)}, solid) vs linearised OU theory (dashed); ESS {m['ess']:.0f}", fontsize=8)
    ax.legend(fontsize=6)
    return save_png(fig, path)


def plot_error_vs_time(s, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    T = s["conv_T_tau"]
    for ax, key, title in ((axes[0], "mean", "mean"), (axes[1], "cov", "covariance")):
        ax.loglog(T, s[f"conv_{key}_err"], "o-", ms=3, label=f"circuit ({_engine(s)})")
        ax.loglog(T, s[f"conv_{key}_err_theory"], "k--", lw=1, label="theory (rms)")
        ax.set_xlabel("sampling time after burn-in (tau)")
        ax.set_ylabel(f"relative error of the {title}")
        ax.legend(fontsize=7)
    fig.suptitle(f"error vs sampling time against the {s['ref_kind']} reference", fontsize=9)
    return save_png(fig, path)


def plot_posterior(out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    with np.load(out / "samples.npz") as z:
        s = {k: z[k] for k in z.files}
    m = json.loads((out / "metrics.json").read_text())
    return [plot_marginals(s, out / "marginals.png"), plot_pairs(s, out / "pairs.png"),
            plot_autocorrelation(s, m, out / "autocorrelation.png"), plot_error_vs_time(s, out / "error_vs_time.png")]


if __name__ == "__main__":
    for p in plot_posterior(sys.argv[1]):
        print(p)
