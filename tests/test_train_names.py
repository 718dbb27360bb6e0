"""One name per concept across CLI, config and Python (issue 22): an optimiser's names are the run config's and the
engine registry's. A config that uses a former name is refused before any work (exit 2, one line naming the new
name); Python gets the same refusal from build()."""

from __future__ import annotations

import pytest
import yaml

from spu_sim.cli import main
from spu_sim.engines import ENGINES
from spu_sim.errors import ConfigError
from spu_sim.optim import backend as spu_backend
from spu_sim.optim import tkfac, tngd

BASE = {"data": {"name": "blobs", "n_samples": 60}, "model": {"name": "logreg"},
        "train": {"steps": 1, "batch_size": 4, "progress": False, "optimizers": []}}


def train_cli(tmp_path, capsys, entry: dict) -> tuple[int, list[str]]:
    cfg = {**BASE, "train": {**BASE["train"], "optimizers": [{"name": "adam", "lr": 0.1}, entry]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main(["train", str(path), "--out", str(tmp_path / "out")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert not (tmp_path / "out").exists()
    return code, err


@pytest.mark.parametrize("name", ["tngd", "tngd_adam", "tkfac"])
def test_backend_circuit_was_renamed_ngspice_shared(tmp_path, capsys, name):
    code, err = train_cli(tmp_path, capsys, {"name": name, "lr": 0.1, "backend": "circuit"})
    assert code == 2 and len(err) == 1, err
    assert "train.optimizers[1].backend: 'circuit' was renamed ngspice-shared" in err[0], err[0]


def test_backends_are_ideal_and_every_registered_engine():
    assert spu_backend.names() == ("ideal", *ENGINES.names())
    for engine in ENGINES.names():
        assert spu_backend.engine(engine) == engine
    assert spu_backend.engine("ideal") is None
    for build in (tngd.build, tkfac.build):
        with pytest.raises(ConfigError, match="backend: 'circuit' was renamed ngspice-shared"):
            build(backend="circuit")


@pytest.mark.parametrize("name", ["tngd", "tngd_adam", "tkfac"])
def test_t_tau_was_renamed_t_stop_tau(tmp_path, capsys, name):
    code, err = train_cli(tmp_path, capsys, {"name": name, "lr": 0.1, "t_tau": 5})
    assert code == 2 and len(err) == 1, err
    assert "train.optimizers[1].t_tau: was renamed t_stop_tau (the analog time per step, as a run's " \
           "simulation.t_stop_tau); write t_stop_tau: 5 instead" in err[0], err[0]
    for build in (tngd.build, tkfac.build):
        build(t_stop_tau=5.0)
        with pytest.raises(TypeError, match="t_tau"):
            build(t_tau=5.0)
