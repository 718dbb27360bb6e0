"""Hardening, second pass (issue "Hardening of everything added since the last pass"), classes 1, 2 and 5: each test
holds cases other than the issue's and failed on the code before the fix.

1. a result that an engine did not produce, or that is not a number, is never presented as a result;
2. bad input is exit 2 naming the key: every float finite, unit-named fields in their physical range, seeds
   non-negative, derived quantities checked before use;
5. no warning lines before the one-line error; messages name the key the user wrote and the real cause.
"""

from __future__ import annotations

import copy
import types
import typing

import numpy as np
import pytest
import yaml
from pydantic import BaseModel

from conftest import spd_problem
from spu_sim import io
from spu_sim.cli import main
from spu_sim.errors import BadInputError, ResultError, SpuSimError


def _cli(tmp_path, cmd: list[str], cfg: dict, capsys) -> tuple[int, str]:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main([*cmd, str(path), "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err.strip()


def _set(cfg: dict, dotted: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    *head, last = dotted.split(".")
    d = cfg
    for k in head:
        d = d.setdefault(k, {})
    d[last] = value
    return cfg


SC = {"problem": {"matrix": {"random": {"kind": "spd", "d": 2, "condition": 4, "seed": 1}},
                  "vector": {"random": {"kind": "normal", "seed": 2}}, "kappa": 0.05, "x0": "zero"},
      "circuit": {"topology": "opamp_sc", "sc": {"f_clk_hz": 1e6, "f_clk_tau": 10, "bits": 5, "c_unit_farad": 3e-17}},
      "simulation": {"t_stop_tau": 20, "burn_in_tau": 5, "seed": 3, "backend": "linear"}}
TRAIN = {"data": {"name": "blobs", "n_samples": 100}, "model": {"name": "logreg"},
         "train": {"steps": 2, "batch_size": 8, "progress": False, "optimizers": [{"name": "sgd", "lr": 0.1}]}}
FACTORED = {"problem": {"factors": {"J": [[1.0, -2.0, 0.5], [0.3, 1.0, -1.0]], "H": [[1.0, 0.2], [0.2, 1.0]],
                                    "damping": 1.0}, "vector": [1.0, 0.5, -0.5], "kappa": 0.01},
            "circuit": {"topology": "opamp_factored"}, "simulation": {"t_stop_tau": 10}}


def _scaled_factors(scale: float) -> dict:
    cfg = copy.deepcopy(FACTORED)
    cfg["problem"]["factors"]["J"] = (np.array(cfg["problem"]["factors"]["J"]) * scale).tolist()
    return cfg


# ---------------------------------------------------------------- 1. only finite numbers an engine produced


def test_the_publish_gate_refuses_a_result_that_is_not_a_number_and_keeps_the_folder(tmp_path):
    out = tmp_path / "o"
    stage = io.new_stage(out)
    io.atomic_save_npz(stage / "result.npz", x=np.array([[1.0, np.inf], [0.5, 0.2]]))
    with pytest.raises(SpuSimError, match=r"result\.npz: x holds 1 of 4 values that are not finite") as info:
        io.publish(stage, out)
    assert not isinstance(info.value, BadInputError)                 # exit 1: the numbers, not the input
    assert not (out / "result.npz").exists() and not list(out.glob(".stage-*"))
    stage = io.new_stage(out)                                          # the lock was released
    io.atomic_write_json(stage / "metrics.json", {"engine": "linear", "rows": [{"cov_rel_err": float("nan")}]})
    with pytest.raises(SpuSimError, match=r"metrics\.json: rows\[0\]\.cov_rel_err = nan"):
        io.publish(stage, out)
    assert not (out / "metrics.json").exists()


def test_an_engine_that_returns_nan_fails_the_run_naming_the_engine(tmp_path, monkeypatch):
    """The engine gate: a waveform with NaN never becomes an estimate (before: result.npz of NaN, exit 0)."""
    from spu_sim.engines.linear.engine import LinearEngine
    from spu_sim.pipeline import simulate
    original = LinearEngine.run

    def broken(self, *a, **k):
        plots = original(self, *a, **k)
        for w in plots.values():
            for key in w.vectors:
                w.vectors[key] = np.full_like(np.asarray(w.vectors[key], dtype=float), np.nan)
        return plots
    monkeypatch.setattr(LinearEngine, "run", broken)
    with pytest.raises(SpuSimError, match=r"engine linear: .* not finite numbers") as info:
        simulate(spd_problem(2, 5.0, t_stop_tau=5.0, backend="linear"), tmp_path / "o")
    assert not isinstance(info.value, BadInputError)
    assert not (tmp_path / "o" / "result.npz").exists()


@pytest.mark.ngspice
def test_crosscheck_reports_the_candidate_engines_own_path(tmp_path):
    """linear-aggregated as the candidate: its own samples, not the exact linear path under its name."""
    from spu_sim.analyses.crosscheck import XC_NPZ, run_crosscheck
    from spu_sim.pipeline import simulate
    cfg = spd_problem(2, 5.0, t_stop_tau=6.0, kappa=0.05)
    m = run_crosscheck(cfg, tmp_path / "xc", reference="ngspice-shared", candidate="linear-aggregated")
    assert m.candidate == "linear-aggregated" and "linear-aggregated" in m.path_points
    own = simulate(_set(cfg, "simulation.backend", "linear-aggregated"))
    z = np.load(tmp_path / "xc" / XC_NPZ)
    np.testing.assert_allclose(z["x_candidate"], own["x"], rtol=1e-9, atol=1e-12)
    assert z["x_reference"].shape == z["x_candidate"].shape


def test_a_test_fraction_that_leaves_no_test_example_is_refused_before_training(tmp_path, capsys):
    code, err = _cli(tmp_path, ["train"], _set(TRAIN, "data.test_fraction", 0.004), capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "data.test_fraction: 0.004 of 100 examples leaves 0 test" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 2. bad input is exit 2 naming the key


@pytest.mark.parametrize("cmd, cfg, key", [
    (["netlist"], _set(spd_problem(2, 5.0), "circuit.integrator.r_max_ohm", 1e300), "circuit.integrator.r_max_ohm"),
    (["netlist"], _set(spd_problem(2, 5.0), "circuit.integrator.c_farad", 1e250), "circuit.integrator.c_farad"),
    (["netlist"], _set(SC, "circuit.sc.c_unit_farad", 1e-250), "circuit.sc.c_unit_farad"),
    (["netlist"], _set(SC, "circuit.sc.f_clk_hz", 1e-12), "circuit.sc.f_clk_hz"),
    (["netlist"], _set(SC, "circuit.opamp.gbw_hz", 1e-200), "circuit.opamp.gbw_hz"),
    (["train"], _set(TRAIN, "data.seed", -4), "data.seed"),
    (["train"], _set(TRAIN, "train.optimizers", [{"name": "sgd", "lr": float("inf")}]), "train.optimizers[0].lr"),
    (["train"], _set(TRAIN, "train.optimizers", [{"name": "sgd", "lr": 0.1, "label": "$\\sqrt{$"}]),
     "train.optimizers[0].label"),
    (["train"], _set(TRAIN, "data.spread", 1e300), "data.spread"),
    (["train"], _set(TRAIN, "data.n_features", 3_000_000), "data.n_features"),
    (["netlist"], _scaled_factors(1e250), "problem: "),     # before: blamed on problem.factors.damping
])
def test_out_of_range_input_is_exit_2_naming_the_key(tmp_path, capsys, cmd, cfg, key):
    code, err = _cli(tmp_path, cmd, cfg, capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {key}"), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, exp, key", [
    ("rlc_inversion", {"banks": [0]}, "experiment.banks"),
    ("rlc_inversion", {"reference_t_tau": 1e12}, "experiment"),
    ("rlc_autocorrelation", {"max_lag_tau": 1e5}, "experiment.max_lag_tau"),
])
def test_experiment_settings_out_of_range_are_exit_2_naming_the_setting(tmp_path, capsys, name, exp, key):
    cfg = yaml.safe_load(open("configs/rlc_inversion_4x4.yaml" if name == "rlc_inversion"
                              else "configs/rlc_autocorrelation.yaml"))
    cfg["simulation"]["t_stop_tau"] = 200.0
    cfg["experiment"] = {**(cfg.get("experiment") or {}), **exp}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main(["experiment", name, str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: {key}"), err


def _all_models() -> list[type[BaseModel]]:
    """Every config model of the package: the subclasses of the strict base and of train's section base."""
    import spu_sim.experiments  # noqa: F401 - registers the experiment sections
    import spu_sim.posterior.run  # noqa: F401
    from spu_sim.config import Strict
    from spu_sim.train import config as train_config
    seen, todo = [], [Strict, train_config._Section]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def _is_float(ann) -> bool:
    """float, or float in an Optional / a union (not inside a list)."""
    return ann is float or (typing.get_origin(ann) in (typing.Union, types.UnionType)
                            and any(_is_float(a) for a in typing.get_args(ann)))


def _floats(model: type[BaseModel]) -> list[tuple[str, bool]]:
    """(name, is a list of floats) of the model's float fields."""
    out = []
    for n, f in model.model_fields.items():
        ann = f.annotation
        if _is_float(ann):
            out.append((n, False))
        elif typing.get_origin(ann) is list and _is_float(typing.get_args(ann)[0]):
            out.append((n, True))
    return out


def test_every_float_field_of_every_config_model_refuses_inf_and_nan():
    """The mechanism of class 2: not a per-field opt-in (before: .inf passed every field without a validator)."""
    checked = 0
    for model in _all_models():
        for name, is_list in _floats(model):
            for bad in (float("inf"), float("nan")):
                try:
                    model.__pydantic_validator__.validate_assignment(model.model_construct(), name,
                                                                     [bad] if is_list else bad)
                except Exception as e:  # noqa: BLE001 - a ValidationError is the expected outcome
                    assert "finite" in str(e) or "greater" in str(e) or "less" in str(e), (model, name, e)
                else:
                    raise AssertionError(f"{model.__name__}.{name} accepts {bad}")
                checked += 1
    assert checked > 100


def test_every_unit_named_field_refuses_values_outside_its_physical_range_and_every_seed_is_non_negative():
    from spu_sim.config import physical_range
    n_unit = n_seed = 0
    for model in _all_models():
        for name in model.model_fields:
            if (name, False) in _floats(model) and physical_range(name):
                low, high, _ = physical_range(name)
                for bad in (high * 1e3, low / 1e3):
                    with pytest.raises(Exception, match="physical range|greater|less"):
                        model.__pydantic_validator__.validate_assignment(model.model_construct(), name, bad)
                n_unit += 1
            if name.endswith("seed"):
                with pytest.raises(Exception, match="greater than or equal to 0"):
                    model.__pydantic_validator__.validate_assignment(model.model_construct(), name, -1)
                n_seed += 1
    assert n_unit > 30 and n_seed >= 8


# ---------------------------------------------------------------- 5. one line, the key the user wrote, the real cause


def _stderr_of(args: list[str]) -> tuple[int, str]:
    """A command in a fresh process (pytest itself records warnings, so they would never reach stderr here)."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stderr.strip()


def test_warnings_never_precede_the_one_line_error_and_the_cause_is_the_scale(tmp_path):
    """J of 1e-190: overflow in the design's resistor arithmetic (before: a RuntimeWarning, then 'entries below
    1.12e+185 are not realisable')."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_scaled_factors(1e-190)))
    code, err = _stderr_of(["-m", "spu_sim.cli", "netlist", str(path), "--out", str(tmp_path / "out")])
    assert code == 2 and len(err.splitlines()) == 1 and "Warning" not in err, err
    assert "floating-point range" in err and "not realisable" not in err, err


def test_a_command_that_warns_and_fails_prints_only_its_error():
    script = ("import sys, warnings\nimport spu_sim.cli as cli\nfrom spu_sim.errors import BadInputError\n"
              "def f(a):\n    warnings.warn('overflow encountered in exp', RuntimeWarning)\n"
              "    raise BadInputError('circuit.x: the cause')\n"
              "cli.cmd_check = f\nsys.exit(cli.main(['check']))\n")
    code, err = _stderr_of(["-c", script])
    assert code == 2 and err == "error: circuit.x: the cause", err


@pytest.mark.parametrize("problem, expect", [
    ({"kind": "gaussian_posterior", "X": {"dataset": "diabetes", "n": 20, "sed": 3}, "y": {"random": {"seed": 1}}},
     "problem.X.sed: unknown key; valid keys here: dataset"),
    ({"kind": "gaussian_posterior", "X": {"random": {"n": 20, "d": 2, "sed": 1}}, "y": {"random": {"seed": 1}}},
     "problem.X.random.sed: unknown key; valid keys here: n, d"),
    ({"factors": {"J": [[1.0, float("nan")]], "H": [[1.0]], "damping": 1.0}, "vector": [1.0, 1.0]},
     "problem.factors.J[0][1]: is nan"),
])
def test_union_typed_sources_name_the_field_the_user_wrote(problem, expect):
    from spu_sim.pipeline import prepare
    with pytest.raises(BadInputError) as info:
        prepare({"problem": problem})
    assert str(info.value).startswith(expect), str(info.value)


def test_a_numpy_array_in_a_python_config_is_named_as_such():
    from spu_sim.pipeline import prepare
    with pytest.raises(BadInputError, match=r"problem\.matrix: got ndarray .*numpy array: pass array\.tolist\(\)"):
        prepare({"problem": {"matrix": np.eye(3), "vector": [1.0, 1.0, 1.0]}})


def test_a_clock_too_fast_to_compute_is_not_called_too_slow(tmp_path, capsys):
    code, err = _cli(tmp_path, ["netlist"], _set(SC, "circuit.sc.f_clk_tau", 1e100), capsys)
    assert code == 2 and "too fast" in err and "too slow" not in err and "lower f_clk_tau" in err, err


@pytest.mark.parametrize("exp, expect", [
    ({"f_clk_tau": [10.0, 1e100], "ngspice_f_clk_tau": [], "ngspice_bits": []}, "experiment.f_clk_tau[1] = 1e+100: "),
    ({"bits": [3, 40], "ngspice_f_clk_tau": [], "ngspice_bits": []}, "experiment.bits[1] = 40: circuit.sc.bits"),
])
def test_an_experiment_variant_is_reported_under_the_experiment_key(tmp_path, capsys, exp, expect):
    cfg = {**SC, "experiment": exp}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main(["experiment", "sc_clock", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: {expect}"), err


def test_an_npz_archive_named_npy_is_bad_input_naming_the_key(tmp_path):
    from spu_sim.pipeline import prepare
    np.savez(tmp_path / "a.npy", A=np.eye(2))
    (tmp_path / "a.npy.npz").rename(tmp_path / "a.npy")
    with pytest.raises(BadInputError, match=r"problem\.matrix: .* is an \.npz archive named \.npy"):
        prepare({"problem": {"matrix": str(tmp_path / "a.npy"), "vector": [1.0, 1.0]}})


def test_a_message_never_carries_a_200_digit_integer(tmp_path, capsys):
    code, err = _cli(tmp_path, ["train"], _set(TRAIN, "train.batch_size", 10 ** 200), capsys)
    assert code == 2 and "1e+200" in err and "0" * 30 not in err, err


def test_finite_check_through_a_shared_base_names_the_bad_vector_and_ignores_unsaved_columns():
    """Vectors that are columns of one result array are checked through it once; a NaN in a column no vector
    shows is no error, one in a saved column names that vector (the per-vector fallback)."""
    from spu_sim.engines import Waveforms, check_finite_waveforms
    t = np.linspace(0.0, 1.0, 5)
    Y = np.ones((5, 4))
    Y[2, 3] = np.nan                       # column 3 is not saved
    plots = {"tran": Waveforms("tran", t, {"time": t, "v(a)": Y[:, 0], "v(b)": Y[:, 1]})}
    assert check_finite_waveforms("eng", plots) is plots
    Y[1, 1] = np.inf
    with pytest.raises(ResultError, match=r"engine eng: tran vector v\(b\) holds 1 of 5 values"):
        check_finite_waveforms("eng", plots)
