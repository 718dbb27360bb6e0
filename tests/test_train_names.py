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


@pytest.mark.parametrize("name", ["tngd", "tngd_adam", "tkfac"])
def test_adc_bits_was_renamed_readout_adc_bits(tmp_path, capsys, name):
    code, err = train_cli(tmp_path, capsys, {"name": name, "lr": 0.1, "adc_bits": 6})
    assert code == 2 and len(err) == 1, err
    assert "train.optimizers[1].adc_bits: was renamed readout.adc.bits (the readout ADC's resolution, as a run's " \
           "readout.adc.bits); write readout: {adc: {bits: 6}} instead" in err[0], err[0]


@pytest.mark.parametrize("readout,expected", [
    ({"adc": {"bits": 40}}, "train.optimizers[1].readout.adc.bits: Input should be less than or equal to 32"),
    ({"sample_dt_tau": 1.0}, "train.optimizers[1].readout.sample_dt_tau: unknown key; valid keys here: adc"),
])
def test_an_optimisers_readout_is_a_runs_readout_adc(tmp_path, capsys, readout, expected):
    code, err = train_cli(tmp_path, capsys, {"name": "tkfac", "lr": 0.1, "readout": readout})
    assert code == 2 and len(err) == 1 and expected in err[0], err


def test_readout_in_python_is_the_same_section():
    """build(readout=...) takes the config's section: the ADC is applied (6 bits: a coarser direction than the exact
    ideal one) and a key other than adc, or range_v on the ideal backend, is refused naming it."""
    for bad, key in (({"sample_dt_tau": 1.0}, "readout.sample_dt_tau"), ({"adc": {"bits": 0}}, "readout.adc.bits"),
                     ({"adc": {"bits": 6, "range_v": 1.0}}, "readout.adc.range_v")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            tkfac.build(readout=bad)
    with pytest.raises(ConfigError, match=r"readout\.sample_dt_tau"):
        tngd.build(backend="linear", readout={"sample_dt_tau": 1.0})
    with pytest.raises(TypeError, match="adc_bits"):
        tngd.build(adc_bits=6)
