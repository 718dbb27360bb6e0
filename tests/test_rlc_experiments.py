"""The three RLC experiments end to end on short runs (real ngspice), and their config validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from spu_sim.engines import available
from spu_sim.errors import BadInputError, ConfigError
from spu_sim.experiments import replot, run_experiment

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def short_config(tmp_path: Path, name: str, **changes) -> Path:
    """A shipped experiment config with shorter runs (and experiment keys overridden)."""
    data = yaml.safe_load((CONFIGS / name).read_text())
    data["simulation"]["t_stop_tau"] = changes.pop("t_stop_tau", 60.0)
    data.setdefault("experiment", {}).update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.ngspice
@pytest.mark.skipif(not available(), reason="ngspice not installed")
def test_three_experiments_write_their_files_and_plots(tmp_path):
    out = tmp_path / "sampling"
    cfg = short_config(tmp_path, "rlc_sampling_d8.yaml", bins=30)
    files = {p.name for p in run_experiment("rlc_sampling", cfg, out)}
    assert {"sampling.npz", "summary.json", "sampling.csv", "config.yaml", "sampling_histograms.png",
            "sampling_covariance.png"} <= files
    assert (out / "run" / "netlist.cir").is_file()

    out = tmp_path / "autocorrelation"
    cfg = short_config(tmp_path, "rlc_autocorrelation.yaml", t_stop_tau=200.0, max_lag_tau=10.0)
    files = {p.name for p in run_experiment("rlc_autocorrelation", cfg, out)}
    assert {"autocorrelation.npz", "autocorrelation.png", "summary.json"} <= files

    out = tmp_path / "inversion"
    cfg = short_config(tmp_path, "rlc_inversion_4x4.yaml", banks=["ideal", 3], reference_t_tau=500.0, n_points=8)
    files = {p.name for p in run_experiment("rlc_inversion", cfg, out)}
    assert {"inversion.npz", "inversion.csv", "inversion_error.png", "summary.json"} <= files
    f = np.load(out / "inversion.npz")
    assert float(f["ideal/floor"]) < 1e-12 < float(f["3-bit/floor"])
    # plots are redrawn from the saved files alone
    (out / "inversion_error.png").unlink()
    assert [p.name for p in replot("rlc_inversion", out)] == ["inversion_error.png"]


def test_experiment_config_errors(tmp_path):
    with pytest.raises(BadInputError, match="not an experiment; choose one of: rlc_sampling"):
        run_experiment("rlc_nonsense", CONFIGS / "rlc_sampling_d8.yaml", tmp_path)
    with pytest.raises(ConfigError, match=r"experiment\.bogus: unknown key"):
        run_experiment("rlc_inversion", short_config(tmp_path, "rlc_inversion_4x4.yaml", bogus=1), tmp_path / "o")
    data = yaml.safe_load((CONFIGS / "rlc_sampling_d8.yaml").read_text())
    data["circuit"] = {"topology": "opamp"}
    path = tmp_path / "opamp.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="circuit.topology: 'opamp' is not supported"):
        run_experiment("rlc_sampling", path, tmp_path / "o2")
