"""Issue 24, class 3: limits are measured costs, checked before the work.

Mechanism: each engine estimates its own memory and disk from the config and design (``Engine.estimate(Workload)
-> Cost``; ``Engine.check(circuit)`` refuses a circuit it cannot run in one pass); ``pipeline.check_limits`` holds
the estimate against the machine's free memory, ``simulation.max_disk_mb`` and the free disk before anything is
built; a count (``max_noise_samples``) limits only when set. Experiments design every variant and check --out
before their first run; train checks its memory and disk before it builds the data set. Each test failed on the
code before the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import spd_problem
from spu_sim.errors import BadInputError, SpuSimError

ROOT = Path(__file__).resolve().parents[1]


def _published_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and not p.name.startswith(".spu-sim"))


def test_counts_are_not_limits_a_run_that_fits_in_memory_is_not_refused():
    """2.4e7 noise samples (above the old default count of 2e7) are 190 MB: prepared, not refused."""
    from spu_sim.pipeline import estimates, prepare
    cfg = {**spd_problem(2, 5.0, t_stop_tau=1.2e5, noise_dt_tau=0.01, backend="linear-aggregated"),
           "readout": {"sample_dt_tau": 1.0}}
    prep = prepare(cfg)
    est = estimates(prep)
    assert est["noise_samples"] > 2e7 and 150 < est["memory_mb"] < 1000


@pytest.mark.parametrize("cfg", [
    spd_problem(3, 5.0, t_stop_tau=40.0, noise_dt_tau=0.01),
    spd_problem(2, 5.0, t_stop_tau=40.0, noise_dt_tau=0.05, backend="linear"),
], ids=["opamp_d3_ngspice", "opamp_d2_linear"])
def test_the_disk_estimate_bounds_what_a_run_writes(tmp_path, cfg):
    """A run is refused when the limit is below what it really writes (measured), accepted at 3x that."""
    from spu_sim.pipeline import simulate
    cfg = {**cfg, "readout": {"sample_dt_tau": 0.01}}
    simulate(cfg, tmp_path / "a")
    written_mb = _published_bytes(tmp_path / "a") / 1e6
    tight = {**cfg, "simulation": {**cfg["simulation"], "max_disk_mb": 0.95 * written_mb}}
    with pytest.raises(BadInputError, match="simulation.max_disk_mb"):
        simulate(tight, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    loose = {**cfg, "simulation": {**cfg["simulation"], "max_disk_mb": 3 * written_mb + 0.3}}
    simulate(loose, tmp_path / "c")


def test_a_readout_step_the_linear_engine_cannot_integrate_is_refused_before_anything_is_built(tmp_path,
                                                                                               monkeypatch):
    import spu_sim.pipeline as pipeline

    def built(*a, **k):
        raise AssertionError("the circuit was built before the refusal")
    monkeypatch.setattr(pipeline, "build_circuit", built)
    cfg = {**spd_problem(2, 5.0, t_stop_tau=20.0, noise_dt_tau=0.01, backend="linear"),
           "readout": {"sample_dt_tau": 0.170013}}   # 17.0013 noise steps: no p/q with p, q <= 1000
    with pytest.raises(BadInputError, match="not commensurate"):
        pipeline.simulate(cfg, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_a_crosscheck_the_candidate_refuses_runs_no_reference_first(tmp_path, monkeypatch):
    """A readout step the linear candidate cannot integrate: refused by its estimate, ngspice never started."""
    from spu_sim.analyses.crosscheck import run_crosscheck
    from spu_sim.engines import ENGINES

    def ran(*a, **k):
        raise AssertionError("the reference engine ran first")
    monkeypatch.setattr(ENGINES.get("ngspice-shared"), "run", ran)
    cfg = {**spd_problem(2, 5.0, t_stop_tau=20.0, noise_dt_tau=0.01), "readout": {"sample_dt_tau": 0.170013}}
    with pytest.raises(BadInputError, match="not commensurate"):
        run_crosscheck(cfg, tmp_path / "o", candidate="linear")
    assert not (tmp_path / "o").exists()


def test_an_experiments_simulated_variants_are_validated_before_the_first_point(tmp_path, monkeypatch):
    from spu_sim.experiments import run_experiment, sc_clock
    calls = []
    monkeypatch.setattr(sc_clock, "theory_point", lambda *a: calls.append(a) or {})
    monkeypatch.setattr(sc_clock, "simulated_point", lambda *a: calls.append(a) or {})
    data = yaml.safe_load((ROOT / "configs" / "sc_clock.yaml").read_text())
    data["experiment"] = {"f_clk_tau": [4, 10], "bits": [3, 6], "ngspice_f_clk_tau": [], "ngspice_bits": [3, 99]}
    path = tmp_path / "sc.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpuSimError):
        run_experiment("sc_clock", path, tmp_path / "o")
    assert calls == [] and not (tmp_path / "o").exists()


def test_a_scaling_experiment_whose_largest_d_cannot_be_designed_fails_before_any_run(tmp_path, monkeypatch):
    from spu_sim.experiments import posterior_scaling, run_experiment
    calls = []
    monkeypatch.setattr(posterior_scaling, "measure", lambda *a: calls.append(a))
    data = yaml.safe_load((ROOT / "configs" / "posterior_scaling.yaml").read_text())
    data["experiment"].update(d_values=[2, 64], replicates=1)   # d = 64 needs R above r_max_ohm: a design error
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpuSimError):
        run_experiment("posterior_scaling", path, tmp_path / "o")
    assert calls == []


def test_train_refuses_a_run_beyond_free_memory_before_building_anything(tmp_path, monkeypatch):
    from spu_sim.train import data as data_mod
    from spu_sim.train.loop import run_training

    def built(*a, **k):
        raise AssertionError("work started before the limit check")
    monkeypatch.setattr(data_mod, "batch_indices", built)
    cfg = {"data": {"name": "blobs", "n_samples": 150}, "model": {"name": "mlp", "hidden": 4},
           "train": {"steps": 10 ** 12, "batch_size": 8, "seed": 1, "progress": False,
                     "optimizers": [{"name": "sgd", "lr": 0.3}]}}
    with pytest.raises(BadInputError, match="train.steps"):
        run_training(cfg, tmp_path / "o")
    assert not (tmp_path / "o").exists()
