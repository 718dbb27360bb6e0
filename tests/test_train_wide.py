"""configs/tngd_digits_wide.yaml (the paper's scale) and scripts/bench_train_wide, exercised at small size."""

import json
import subprocess
import sys
from pathlib import Path

from spu_sim.train import loop
from spu_sim.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]
WIDE = ROOT / "configs" / "tngd_digits_wide.yaml"


def test_wide_config_is_the_papers_scale_and_runs_small(tmp_path):
    cfg = load_config(WIDE)
    ds, model, _, _ = loop.prepare(cfg)
    assert model.n_params == 101_260 and cfg.train.batch_size * model.d_z == 640
    assert [o.name for o in cfg.train.optimizers] == ["tngd", "adam", "ngd_cg", "ngd_woodbury"]
    small = cfg.model_dump()
    small["model"]["hidden"], small["train"]["batch_size"], small["train"]["steps"] = 3, 4, 2
    small["train"]["progress"] = False
    s = loop.run_training(small, tmp_path / "run")
    tngd = s["optimizers"]["tngd"]
    assert tngd["spu_engine"] == "linear" and tngd["spu_circuit_steps"] == {"opamp_factored": 2}
    assert "spu_pruned_per_step" in tngd and (tmp_path / "run" / "loss_iteration_time.png").is_file()


def test_bench_script_runs_small(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_train_wide"), "--hidden", "3", "--batch", "4",
                           "--repeats", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-800:]
    res = json.loads(out.read_text())
    assert res["rows_m"] == 40 and res["circuit_steps"][0]["step_s"] > 0
    assert set(res["ratios_cpu"]) == {"tngd_modelled_over_adam", "tngd_modelled_over_ngd_cg",
                                      "tngd_modelled_over_woodbury", "build_fraction_of_tngd_modelled"}
