"""Every plot of the shipped configs, rendered at small size (short runs on the linear engine, few sweep runs, few
training steps): every title, axis label, colorbar label and legend lies inside the figure, every axis says what it
shows (no empty axis label, no axis against a seed), heat maps count x1..xd like the waveforms, the rlc compare plot
has no mean panel (rlc has no b), histogram counts are whole numbers, and the training plots' time axis leaves out
a cold first step.

The check runs inside Figure.savefig (every PNG of spu-sim is written through it), so a plot added later is checked
by the same rule as soon as one of these runs draws it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.analyses.characterise import run_characterise
from spu_sim.analyses.crosscheck import run_crosscheck
from spu_sim.analyses.noise import run_noise
from spu_sim.compare import compare
from spu_sim.config.base import parse_yaml
from spu_sim.errors import BadInputError
from spu_sim.experiments import key_numbers, run_experiment
from spu_sim.parts.opamp_cells import cell_spec
from spu_sim.plotting import pyplot
from spu_sim.posterior.run import run_posterior
from spu_sim.sweep import run_sweep
from spu_sim.train.loop import run_training_from_file
from spu_sim.train.plots import warm_time

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SLACK_PX = 1.0


def _texts(fig) -> list:
    """The text artists that must be inside the figure: suptitle, figure texts, titles, axis labels, legends."""
    out = [t for t in [fig._suptitle, *fig.texts] if t is not None]
    for ax in fig.axes:
        if ax.get_legend() is not None and ax.get_visible():
            out.append(ax.get_legend())           # a legend panel (axis off) too
        if not ax.get_visible() or not ax.axison:
            continue
        out += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
    return [t for t in out if t.get_visible() and (not hasattr(t, "get_text") or t.get_text())]


def _is_colorbar(ax) -> bool:
    return hasattr(ax, "_colorbar")


def _shows_x_ticks(ax) -> bool:
    return any(t.get_visible() and t.get_text() for t in ax.get_xticklabels())


def check_figure(fig, name: str) -> None:
    """The rules of the module doc for one figure about to be written as ``name``."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    for t in _texts(fig):
        bb = t.get_window_extent(renderer)
        what = t.get_text() if hasattr(t, "get_text") else "legend"
        assert bb.x0 >= -SLACK_PX and bb.y0 >= -SLACK_PX and bb.x1 <= W + SLACK_PX and bb.y1 <= H + SLACK_PX, \
            f"{name}: {what!r} is cut off ({bb} outside {W:.0f} x {H:.0f} px)"
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        if _is_colorbar(ax):
            assert ax.get_ylabel() or ax.get_xlabel(), f"{name}: a colorbar without a label"
            continue
        # in a grid of panels (a corner plot) the outer column and row carry the labels
        spec = ax.get_subplotspec()
        first_col = spec is None or spec.is_first_col()
        last_row = spec is None or spec.is_last_row()
        if first_col:
            assert ax.get_ylabel(), f"{name}: an axis without a y label (title {ax.get_title()!r})"
        if last_row and _shows_x_ticks(ax):
            assert ax.get_xlabel(), f"{name}: an axis without an x label (title {ax.get_title()!r})"
        assert "seed" not in ax.get_xlabel().lower(), f"{name}: plotted against a seed ({ax.get_xlabel()!r})"


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved during the test is checked; yields {file name: figure facts} for extra checks."""
    from matplotlib.figure import Figure
    seen: dict[str, dict] = {}
    save = Figure.savefig

    def checked(fig, fname, *args, **kwargs):
        name = Path(str(fname)).name.removeprefix(".").removesuffix(".tmp.png")
        check_figure(fig, name)
        seen[name] = {"axes": [{"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                                "xticks": [t.get_text() for t in ax.get_xticklabels()],
                                "yticks": [t.get_text() for t in ax.get_yticklabels()],
                                "ytick_values": list(ax.get_yticks())} for ax in fig.axes]}
        return save(fig, fname, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", checked)
    pyplot()
    return seen


def small_config(tmp_path: Path, name: str, **changes) -> Path:
    """A shipped config made small: short transient on the linear engine, few sweep runs, few training steps;
    ``changes`` (dotted keys) on top."""
    cfg = parse_yaml((CONFIGS / f"{name}.yaml").read_text())
    if "simulation" in cfg:
        sim = cfg["simulation"]
        sim["t_stop_tau"] = min(float(sim.get("t_stop_tau", 100)), 20.0)
        sim.pop("burn_in_tau", None)
        sim["backend"] = "linear"
    if "sweep" in cfg:
        sw = cfg["sweep"]
        if "monte_carlo" in sw:
            sw["monte_carlo"]["runs"] = 8
        for k, v in (sw.get("grid") or {}).items():
            sw["grid"][k] = v[:3]
    if "train" in cfg:
        cfg["train"]["steps"] = 4
    for key, value in changes.items():
        node = cfg
        *head, leaf = key.split(".")
        for k in head:
            node = node.setdefault(k, {})
        node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


#: configs with nonlinear elements (an output-swing clip, a sigmoid): ngspice, a short run
NGSPICE = {"simulation.backend": "ngspice-shared", "simulation.t_stop_tau": 5.0}


@pytest.mark.parametrize("name", ["opamp_d8", "opamp_macro_d8", "opamp_sc_d4", "opamp_factored_d40", "rlc_sampling_d8",
                                  "intrinsic_noise_d4"])
def test_compare_plots(tmp_path, drawn, name):
    compare(small_config(tmp_path, name, **(NGSPICE if name == "opamp_macro_d8" else {})), tmp_path / "out")
    assert {"waveforms.png", "error_vs_time.png"} <= set(drawn)
    conv = [a["title"] for a in drawn["error_vs_time.png"]["axes"]]
    if name.startswith("rlc"):
        assert conv == ["covariance vs kappa A^-1"]     # rlc has no b: no mean panel
    else:
        assert "time average vs A^-1 b" in conv
    if "covariance.png" in drawn:
        heat = drawn["covariance.png"]["axes"][0]
        assert heat["xticks"][0] == "x1" and heat["yticks"][0] == "x1"
    if name == "opamp_sc_d4":
        assert "clock_zoom.png" in drawn


@pytest.mark.parametrize("name", ["noise_d4", "noise_rlc_d4"])
def test_noise_plots(tmp_path, drawn, name):
    cfg = parse_yaml((CONFIGS / f"{name}.yaml").read_text())
    run_noise(cfg, tmp_path / "out", points_per_decade=3, transient=False)
    assert {"noise_spectra.png", "noise_cov.png"} <= set(drawn)


@pytest.mark.parametrize("name", ["posterior_gaussian_d4", "posterior_logistic_d3"])
def test_posterior_plots(tmp_path, drawn, name):
    run_posterior(small_config(tmp_path, name, **(NGSPICE if name == "posterior_logistic_d3" else {})), tmp_path / "out")
    assert drawn


@pytest.mark.parametrize("name", ["sweep_mismatch_mc", "sweep_opamp_gbw", "sweep_resistor_bits"])
def test_sweep_plots(tmp_path, drawn, name):
    run_sweep(small_config(tmp_path, name), tmp_path / "out", workers=1, progress=False)
    if name == "sweep_opamp_gbw":        # gbw_hz and simulation.seed swept: a plot against gbw_hz, none against the seed
        assert "error_vs_circuit_opamp_gbw_hz.png" in drawn
        assert not any("seed" in f for f in drawn)
    if name == "sweep_mismatch_mc":
        hist = drawn["mc_histogram.png"]["axes"][0]["ytick_values"]
        assert all(float(v).is_integer() for v in hist)


@pytest.mark.parametrize("name", ["tngd_digits", "kfac_digits", "kfac_noise_sweep", "tngd_sweep", "tngd_digits_mlp"])
def test_training_plots(tmp_path, drawn, name):
    """Every optimiser of the config (with their long legend labels) but those on the circuit backend, 4 steps."""
    cfg = parse_yaml((CONFIGS / f"{name}.yaml").read_text())
    cfg["train"]["steps"] = 4
    cfg["train"]["optimizers"] = [o for o in cfg["train"]["optimizers"] if o.get("backend") != "ngspice-shared"]
    labels = {o.get("label", o["name"]) for o in cfg["train"]["optimizers"]}
    groups = (cfg.get("plots") or {}).get("groups") or {}
    for group, members in groups.items():
        groups[group] = [lab for lab in members if lab in labels]
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_training_from_file(path, tmp_path / "out")
    assert {"loss_accuracy.png", "loss_iteration_time.png"} <= set(drawn)


@pytest.mark.parametrize("name, config, changes", [
    ("rlc_sampling", "rlc_sampling_d8", {}),
    ("rlc_autocorrelation", "rlc_autocorrelation", {"max_lag_tau": 5.0}),
    ("rlc_inversion", "rlc_inversion_4x4", {"banks": ["ideal", 3], "reference_t_tau": 200.0, "n_points": 6}),
    ("rlc_inversion", "rlc_inversion_8x8", {"banks": ["ideal", 4], "reference_t_tau": 200.0, "n_points": 6}),
    ("sc_clock", "sc_clock", {"ngspice_f_clk_tau": [], "ngspice_bits": [], "f_clk_tau": [5, 20], "bits": [4, 8]}),
    ("posterior_scaling", "posterior_scaling", {"d_values": [2, 3], "replicates": 1}),
    ("array_limits", "array_limits", {"n": [4, 8], "r_ohm_per_segment": [0.0, 0.1], "noise_values": [1e-3],
                                      "factored": None}),
])
def test_experiment_plots(tmp_path, drawn, name, config, changes):
    """Every experiment's plots at small size; its key numbers (what ``spu-sim experiment`` prints) are words with
    numbers and units, read from the files the run saved."""
    cfg = parse_yaml((CONFIGS / f"{config}.yaml").read_text())
    cfg["simulation"]["t_stop_tau"] = 40.0
    if name != "array_limits":          # array_limits runs the linear engine itself
        cfg["simulation"]["backend"] = "linear"
    cfg["simulation"].pop("max_noise_samples", None)
    cfg.setdefault("experiment", {}).update(changes)
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_experiment(name, path, tmp_path / "out")
    assert drawn
    lines = key_numbers(name, tmp_path / "out")
    assert sum(any(ch.isdigit() for ch in line) for line in lines) >= 2, lines
    assert any(unit in " ".join(lines) for unit in (" %", " tau", " J", " s")), lines


def test_crosscheck_plot(tmp_path, drawn):
    cfg = parse_yaml((CONFIGS / "opamp_d8.yaml").read_text())
    cfg["simulation"]["t_stop_tau"] = 5.0
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_crosscheck(path, tmp_path / "out")
    assert drawn


@pytest.mark.parametrize("config", ["characterise_sky130_miller"])
def test_characterise_plots(tmp_path, drawn, config):
    """The Bode, noise and swing plots of spu-sim characterise (real process models: skipped without the extra pdk,
    which scripts/setup.sh installs), on a coarse band."""
    cfg = parse_yaml((CONFIGS / f"{config}.yaml").read_text())
    try:
        cell_spec(cfg["circuit"]["opamp"]["model"])
    except BadInputError as e:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(e))
    cfg["characterise"].update(f_stop_hz=1e8, points_per_decade=5)
    run_characterise(cfg, tmp_path / "out")
    assert {"bode.png", "noise.png", "swing.png"} <= set(drawn)


def test_warm_time_leaves_out_a_cold_first_step():
    """Adam's first step 2.2 ms, later steps 0.1 ms: the axis starts at a typical step, later steps unchanged."""
    it = np.arange(6.0)
    t = np.r_[0.0, 2.2e-3 + 1e-4 * np.arange(5)]
    out, cut = warm_time({"iteration": it, "modelled_time_s": t})
    assert cut == pytest.approx(2.1e-3) and out[1] == pytest.approx(1e-4) and np.allclose(np.diff(out[1:]), 1e-4)
    steady = np.r_[0.0, 1e-4 * np.arange(1, 6)]
    assert warm_time({"iteration": it, "modelled_time_s": steady})[1] == 0.0


def test_warm_time_leaves_out_interrupted_steps_anywhere():
    """A step the machine interrupted (32 ms against 0.1 ms per step, at step 3 of a loaded run: measured on a
    2-core machine shared by other jobs) moves the rest of the curve like a cold first step: left out the same way."""
    it = np.arange(8.0)
    steps = np.full(7, 1e-4)
    steps[2] = 3.2e-2
    out, cut = warm_time({"iteration": it, "modelled_time_s": np.r_[0.0, np.cumsum(steps)]})
    assert cut == pytest.approx(3.2e-2 - 1e-4) and np.allclose(np.diff(out), 1e-4)


def test_training_iteration_axis_has_whole_numbers(tmp_path):
    """20 iterations: matplotlib's default ticks are 0.0, 2.5, 5.0, ...; an iteration axis counts whole steps."""
    from spu_sim.train.plots import plot_loss_iteration_time
    from spu_sim.plotting import pyplot
    it = np.arange(21.0)
    hist = {"sgd": {"iteration": it, "train_loss": 2.0 / (1 + it), "modelled_time_s": 1e-4 * it}}
    plt = pyplot()
    seen = []
    orig = plt.Figure.savefig
    def grab(fig, *a, **k):
        seen.append([t for ax in fig.axes if ax.get_xlabel() == "iteration" for t in ax.get_xticks()
                     if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]])
        return orig(fig, *a, **k)
    plt.Figure.savefig = grab
    try:
        plot_loss_iteration_time(hist, tmp_path / "l.png", "t")
    finally:
        plt.Figure.savefig = orig
    assert seen and seen[0] and all(float(t).is_integer() for t in seen[0])


def test_every_shipped_config_is_rendered_here():
    """Each config in configs/ is one of the parameters above, so every plot of the shipped configs is checked."""
    named = set()
    for fn in (test_compare_plots, test_noise_plots, test_posterior_plots, test_sweep_plots, test_training_plots,
               test_experiment_plots, test_characterise_plots):
        for mark in getattr(fn, "pytestmark", []):
            for value in mark.args[1]:
                named.add(value[1] if isinstance(value, tuple) else value)
    named.add("opamp_d8")          # test_crosscheck_plot
    # the same two training plots as tngd_digits_mlp with other labels; 4 steps of their circuit-in-the-loop TNGD
    # take minutes (N = 4810, the linear engine), too long for the suite
    named |= {"tngd_digits_wide", "tngd_noise"}
    shipped = {p.stem for p in CONFIGS.glob("*.yaml")}
    assert shipped - named == set(), f"shipped configs whose plots no test renders: {sorted(shipped - named)}"


def test_plots_module_on_a_folder_without_a_compare_run_is_exit_2(tmp_path, capsys):
    """python -m spu_sim.plots on a training or sweep folder: one line naming the missing file, no traceback."""
    from spu_sim.plots import main as plots_main
    (tmp_path / "history.csv").write_text("optimizer\n")
    assert plots_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "result.npz" in err
