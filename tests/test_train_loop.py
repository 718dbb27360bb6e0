"""Config validation, the training loop's outputs and the timing model."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.errors import BadInputError, ConfigError
from spu_sim.train import loop, timing
from spu_sim.train.config import load_config, resolved_dict, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _cfg(**train):
    opts = [{"name": "sgd", "lr": 0.3}, {"name": "adam", "lr": 0.03}, {"name": "ngd", "lr": 0.5, "damping": 0.1},
            {"name": "ngd_cg", "lr": 0.5, "damping": 0.1, "cg_iters": 4},
            {"name": "ngd_woodbury", "lr": 0.5, "damping": 0.1},
            {"name": "tngd", "lr": 0.5, "damping": 0.1, "t_stop_tau": 5, "delay_tau": 0.2, "kappa": 1e-4},
            {"name": "tngd_adam", "lr": 0.03, "damping": 0.1, "t_stop_tau": 5, "label": "tadam"}]
    return {"data": {"name": "blobs", "n_samples": 150}, "model": {"name": "mlp", "hidden": 4},
            "train": {"steps": 6, "batch_size": 8, "seed": 1, "progress": False, "optimizers": opts, **train},
            "plots": {"groups": {"second_order": ["ngd", "tngd"]}}}


@pytest.mark.parametrize("patch,expected", [
    ({"optimizers": [{"name": "sgd", "lr": 1}, {"name": "adam", "lr": 1}, {"name": "ngd_x", "lr": 1}]},
     "train.optimizers[2].name: 'ngd_x' is not an optimizer; choose one of: sgd, adam, ngd, ngd_cg, "
     "ngd_woodbury, tngd, tngd_adam"),
    ({"optimizers": [{"name": "sgd", "lr": 1, "t_stop_tau": 5}]}, "train.optimizers[0]: 't_stop_tau' is not an option of sgd"),
    ({"optimizers": [{"name": "tngd", "lr": 1, "backend": "fpga"}]},
     "train.optimizers[0].backend: 'fpga' is not a backend; choose one of: ideal, ngspice-shared, ngspice-subprocess, linear"),
    ({"optimizers": [{"name": "tngd", "lr": 1, "t_tua": 5}]}, "train.optimizers[0].t_tua: unknown key"),
    ({"steps": 0}, "train.steps: Input should be greater than or equal to 1"),
    ({"optimizers": [{"name": "sgd", "lr": 1}, {"name": "sgd", "lr": 2}]}, "train: label 'sgd' is used twice"),
])
def test_config_errors_are_one_readable_line(patch, expected):
    raw = _cfg(**patch)
    raw["plots"] = {}
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_plot_group_must_name_labels():
    raw = _cfg()
    raw["plots"] = {"groups": {"g": ["nope"]}}
    with pytest.raises(ConfigError, match="'nope' is not an optimizer label"):
        validate_config(raw)


def test_bad_config_does_not_touch_out_dir(tmp_path):
    raw = _cfg(batch_size=10_000)  # valid schema, but more than the training examples
    out = tmp_path / "run"
    with pytest.raises(BadInputError, match="batch_size"):
        loop.run_training(raw, out)
    assert not out.exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {steps: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        loop.run_training_from_file(bad, out)
    with pytest.raises(BadInputError, match="not found"):
        loop.run_training_from_file(tmp_path / "missing.yaml", out)
    assert not out.exists()


def test_run_training_writes_the_output_contract(tmp_path):
    out = tmp_path / "run"
    summary = loop.run_training(_cfg(), out)
    names = {p.name for p in out.iterdir()}
    assert {"history.csv", "summary.json", "summary.md", "config.yaml", "loss_accuracy.png",
            "group_second_order.png"} <= names
    from spu_sim import io   # the folder's lock and manifest (issue 12) are the only dotfiles; no temp files
    assert not [n for n in names if n.endswith(".tmp") or (n.startswith(".") and n not in (io.LOCK_NAME, io.MANIFEST_NAME))]
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    required = {"optimizer", "iteration", "train_loss", "test_loss", "test_accuracy", "wall_time_s",
                "modelled_time_s"}
    assert required <= set(rows[0])
    labels = ["sgd", "adam", "ngd", "ngd_cg", "ngd_woodbury", "tngd", "tadam"]
    assert [r["label"] for r in rows if r["iteration"] == "0"] == labels
    # same initial parameters for every optimiser
    assert len({r["train_loss"] for r in rows if r["iteration"] == "0"}) == 1
    assert len(rows) == 7 * 7
    for lab in labels:
        t = [float(r["modelled_time_s"]) for r in rows if r["label"] == lab]
        assert all(np.diff(t) > 0)
    s = json.loads((out / "summary.json").read_text())
    assert s["n_params"] == summary["n_params"] == (4 * 4 + 4) + (4 * 3 + 3)  # blobs: 4 features, 3 classes; 4 hidden
    assert set(s["optimizers"]) == set(labels)
    assert s["optimizers"]["tngd"]["modelled_terms_per_step_s"]["analog_s"] == pytest.approx(5e-6)
    assert s["optimizers"]["tngd"]["modelled_terms_per_step_s"]["delay_s"] == pytest.approx(0.2e-6)
    # the resolved config re-validates and fills defaults
    resolved = load_config(out / "config.yaml")
    assert resolved.train.optimizers[5].warm_start is True
    assert resolved.train.optimizers[6].b1 == 0.0


def test_ngd_family_trains_identically_in_the_loop(tmp_path):
    """ngd and ngd_woodbury give the same history (same direction to rounding)."""
    loop.run_training(_cfg(), tmp_path)
    with open(tmp_path / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    a = np.array([float(r["train_loss"]) for r in rows if r["label"] == "ngd"])
    b = np.array([float(r["train_loss"]) for r in rows if r["label"] == "ngd_woodbury"])
    np.testing.assert_allclose(a, b, rtol=1e-8)


def test_timing_model_terms():
    st = timing.tngd_step_time(n_params=130, batch_size=32, d_z=10, t_stop_tau=50, delay_tau=1, tau_s=1e-6,
                               digital_s=1e-3, dac_latency_s=2e-7)
    assert st.program_s == pytest.approx(320 * (320 + 260) * 16 / 50e9)
    assert st.dac_s == pytest.approx(2e-7 + 130 * 16 / 50e9)
    assert st.adc_s == pytest.approx(130 * 16 / 50e9)
    assert st.analog_s == pytest.approx(50e-6) and st.delay_s == pytest.approx(1e-6)
    assert st.total_s == pytest.approx(sum(st))
    assert timing.tngd_step_time(n_params=1, batch_size=1, d_z=1, t_stop_tau=1, delay_tau=0, tau_s=1,
                                 digital_s=5.0, include_digital=False).digital_s == 0.0


@pytest.mark.parametrize("name", ["tngd_digits.yaml", "tngd_sweep.yaml", "tngd_digits_mlp.yaml", "tngd_digits_wide.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.train.optimizers
    assert yaml.safe_load(yaml.safe_dump(resolved_dict(cfg))) == resolved_dict(cfg)


def test_backend_failure_writes_partial_outputs_then_raises(tmp_path, monkeypatch):
    from spu_sim.errors import SimulationError
    from spu_sim.optim import tngd

    calls = []
    real = tngd.ou_transient

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise SimulationError("ngspice stopped", ngspice_message="timestep too small")
        return real(*args, **kwargs)

    monkeypatch.setattr(tngd, "ou_transient", flaky)
    with pytest.raises(SimulationError, match="timestep too small"):
        loop.run_training(_cfg(), tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())["optimizers"]
    assert "timestep too small" in s["tngd"]["error"] and s["tngd"]["steps"] == 1  # step 2 = calls 2 (delay) and 3
    assert s["sgd"]["steps"] == 6 and s["tadam"]["steps"] == 6 and "error" not in s["tadam"]
