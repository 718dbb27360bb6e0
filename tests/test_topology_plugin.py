"""A topology, a problem kind and an engine registered from inside tests/ run netlist, simulate and compare
without any edit under spu_sim/ (the registries' one idiom: ``TOPOLOGIES.add``, ``PROBLEM_KINDS.register``,
``@ENGINES.add``).

The test topology ``rc_diag``: one RC cell per variable, for diagonal A only. Cell i: capacitor C from node v<i>
to ground, R<i> from a DAC voltage, RN<i> from a noise DAC (both into v<i>):

    C dV_i/dt = (V_dac,i - V_i) / R_i + (e_i - V_i) / RN_i,     G_i = 1/R_i + 1/RN_i = A_ii / alpha

with alpha = max A_ii r_min (ohm * units of A), tau = alpha C, RN_i = 10 / G_i, x = s_x V. Stationary mean
V = V_dac,i / (R_i G_i), so V_dac,i = b_i / (A_ii s_x) * R_i G_i; noise samples of rms v_i every h through
RN_i give x the diffusion s_x^2 v_i^2 h / (RN_i C)^2 per second = 2 kappa / tau.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest
import yaml

from spu_sim import ideal
from spu_sim.circuit import Capacitor, Circuit, Comment, Op, Resistor, Tran, VoltageSource
from spu_sim.cli import main
from spu_sim.compare import compare
from spu_sim.config import Strict
from spu_sim.engines import ENGINES, get_engine
from spu_sim.errors import BadInputError, ConfigError, DesignError
from spu_sim.pipeline import simulate
from spu_sim.problems import PROBLEM_KINDS, Problem, ProblemKind
from spu_sim.run_config import load_run_config
from spu_sim.topologies import TOPOLOGIES, CircuitBase, Topology
from spu_sim.parts.noise_dacs import noise_dacs

pytestmark = pytest.mark.ngspice


class RcDiagConfig(CircuitBase):
    topology: Literal["rc_diag"] = "rc_diag"
    c_farad: float = 1e-9
    r_min_ohm: float = 1e3


@dataclass(frozen=True)
class RcDiagDesign:
    problem: object
    r_ohm: np.ndarray
    rn_ohm: np.ndarray
    v_dac_v: np.ndarray
    v_noise_rms: np.ndarray
    c_farad: float
    alpha: float
    s_x: float
    tau_s: float
    noise_dt_tau: float
    v_swing_v: float = 1.0

    d = property(lambda self: len(self.r_ohm))
    has_noise = property(lambda self: bool(np.any(self.v_noise_rms > 0)))
    readout_nodes = property(lambda self: [f"v{i}" for i in range(1, self.d + 1)])
    x0_state = property(lambda self: self.problem.x0)

    def to_problem_units(self, v):
        return self.s_x * np.asarray(v)

    @property
    def A_realized(self):
        return np.diag(self.alpha * (1 / self.r_ohm + 1 / self.rn_ohm))

    @property
    def b_realized(self):
        return self.alpha * self.s_x * self.v_dac_v / self.r_ohm

    @property
    def kappa_realized(self):
        h = self.noise_dt_tau * self.tau_s
        return float(np.mean(self.s_x ** 2 * self.v_noise_rms ** 2 * h / (self.rn_ohm * self.c_farad) ** 2
                             * self.tau_s / 2))

    @property
    def slowest_rate_tau(self):
        return float(np.diag(self.A_realized).min())

    def target_sde(self):
        return ideal.ou_sde(self.problem.A, self.problem.b, self.problem.kappa)

    def realized_sde(self):
        return ideal.ou_sde(self.A_realized, self.b_realized, self.kappa_realized)

    effective_sde = realized_sde

    def describe(self):
        return {"topology": "rc_diag", "d": self.d, "tau_s": self.tau_s, "s_x": self.s_x}


class RcDiag(Topology):
    name = "rc_diag"
    config_model = RcDiagConfig
    problem_kinds = ("linear", "diagonal")

    def design(self, problem, circuit, simulation):
        A, b = problem.A, problem.b
        if np.any(A != np.diag(np.diag(A))):
            raise DesignError("problem.matrix: topology rc_diag realises diagonal matrices only")
        a = np.diag(A)
        alpha = a.max() * circuit.r_min_ohm
        g = a / alpha
        rn = 10.0 / g
        r = 1.0 / (g - 1.0 / rn)
        tau = alpha * circuit.c_farad
        x_star = b / a
        s_x = max(np.abs(x_star).max() + 4 * np.sqrt(problem.kappa / a.min()), 1e-12)
        noise_dt = simulation.noise_dt_tau or 1.0 / (simulation.noise_oversample * a.max())
        h = noise_dt * tau
        v_n = rn * circuit.c_farad * np.sqrt(2 * problem.kappa / (tau * h)) / s_x * np.ones_like(a)
        return RcDiagDesign(problem, r, rn, x_star / s_x * r * g, v_n, circuit.c_farad, alpha, s_x, tau, noise_dt)

    def build_circuit(self, design, request):
        E: list = [Comment("rc_diag cells")]
        for i in range(1, design.d + 1):
            E += [VoltageSource(f"VDAC{i}", f"dac{i}", "0", float(design.v_dac_v[i - 1])),
                  Resistor(f"R{i}", f"dac{i}", f"v{i}", float(design.r_ohm[i - 1])),
                  Capacitor(f"C{i}", f"v{i}", "0", design.c_farad, ic_v=float(design.x0_state[i - 1] / design.s_x))]
            if design.has_noise and request.noise_u is not None:
                E.append(Resistor(f"RN{i}", f"nz{i}", f"v{i}", float(design.rn_ohm[i - 1])))
            else:
                E.append(Resistor(f"RN{i}", f"v{i}", "0", float(design.rn_ohm[i - 1])))
        if design.has_noise and request.noise_u is not None:
            E += noise_dacs(design.v_noise_rms[None, :] * request.noise_u, design.noise_dt_tau * design.tau_s)
        analyses = ([Op()] if "op" in request.analyses else []) + (
            [Tran(request.step_s, request.t_stop_s, design.noise_dt_tau * design.tau_s)] if "tran" in request.analyses
            else [])
        return Circuit("rc_diag test topology", E, design.readout_nodes, analyses, options={"reltol": request.reltol},
                       saves=[f"v({n})" for n in design.readout_nodes])


TOPOLOGIES.add(RcDiag())


class DiagonalProblemConfig(Strict):
    """The test problem kind ``diagonal``: A = diag(diagonal), b = vector."""

    kind: Literal["diagonal"] = "diagonal"
    diagonal: list[float]
    vector: list[float]
    kappa: float = 0.0


def build_diagonal(section: DiagonalProblemConfig, base_dir) -> Problem:
    a = np.array(section.diagonal, float)
    if a.size == 0 or np.any(a <= 0):
        raise BadInputError("problem.diagonal: every entry must be > 0")
    return Problem(A=np.diag(a), b=np.array(section.vector, float), kappa=section.kappa, x0=np.zeros(a.size))


PROBLEM_KINDS.register("diagonal", ProblemKind(DiagonalProblemConfig, build_diagonal))


@ENGINES.add
class CountingLinearEngine:
    """The test engine ``linear-counted``: the exact linear engine's run, counted (a plug-in engine that wraps
    another is the simplest honest one)."""

    name = "linear-counted"
    reports_progress = False
    sign_off = False
    reads_files = False
    runs = 0

    def run(self, circuit, run_dir, *, timeout_s=None, progress=None):
        type(self).runs += 1
        return get_engine("linear").run(circuit, run_dir, timeout_s=timeout_s)

    def check(self, circuit):          # the Engine protocol: refusals before any engine runs ...
        get_engine("linear").check(circuit)

    def estimate(self, work):          # ... and the memory and disk the run needs, before it starts
        return get_engine("linear").estimate(work)

A = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 4.0]]
B = [1.0, -0.5, 2.0]


def _cfg(kappa=0.05, **sim):
    return {"problem": {"matrix": A, "vector": B, "kappa": kappa, "x0": "zero"},
            "circuit": {"topology": "rc_diag"},
            "simulation": {"t_stop_tau": 300.0, "seed": 7, **sim}}


def test_registered_topology_is_listed_and_validated():
    assert "rc_diag" in TOPOLOGIES.names()
    with pytest.raises(ConfigError, match=r"circuit\.bogus: unknown key; valid keys here: topology, tolerance"):
        load_run_config({"problem": {"matrix": A, "vector": B}, "circuit": {"topology": "rc_diag", "bogus": 1}})


def test_netlist_simulate_compare_through_a_test_topology(tmp_path):
    assert main(["netlist", _write(tmp_path, _cfg()), "--out", str(tmp_path / "n")]) == 0
    text = (tmp_path / "n" / "netlist.cir").read_text()
    assert "RN3 nz3 v3" in text and (tmp_path / "n" / "noise_3.txt").is_file()
    m = compare(_cfg(), tmp_path / "c")
    r = np.load(tmp_path / "c" / "result.npz")
    x_star = np.array(B) / np.diag(A)
    np.testing.assert_allclose(r["x_op"], x_star, rtol=1e-9)
    # time average within 4 sigma of the time-average theory of the realised OU process
    window = float(r["t"][-1] - r["burn_in_s"]) / float(r["tau_s"])
    sd = np.sqrt(np.diag(ideal.time_average_cov(ideal.ou_sde(np.array(A), np.array(B), 0.05), window)))
    assert np.all(np.abs(r["x_mean"] - x_star) < 4 * sd), (r["x_mean"] - x_star) / sd
    assert m["topology"] == "rc_diag" and m["op_rel_err"] < 1e-9
    assert m["cov_rel_err"] < 4 * m["cov_rel_err_expected"]
    assert (tmp_path / "c" / "metrics.json").is_file() and list((tmp_path / "c").glob("*.png"))


def test_a_design_error_of_the_test_topology_is_exit_2(tmp_path, capsys):
    cfg = _cfg()
    cfg["problem"]["matrix"] = [[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 4.0]]
    assert main(["netlist", _write(tmp_path, cfg), "--out", str(tmp_path / "n")]) == 2
    assert "diagonal matrices only" in capsys.readouterr().err


def test_a_problem_kind_and_an_engine_registered_from_tests_run_through_the_chain(tmp_path):
    """The test problem kind on the test topology and the test engine: the operating point is A^-1 b, the engine
    ran once and the result names it; an unknown kind or engine lists the registered ones."""
    cfg = {"problem": {"kind": "diagonal", "diagonal": [2.0, 1.0, 4.0], "vector": B},
           "circuit": {"topology": "rc_diag"}, "simulation": {"t_stop_tau": 5.0, "backend": "linear-counted"}}
    before = CountingLinearEngine.runs
    res = simulate(cfg)
    assert CountingLinearEngine.runs == before + 1
    assert str(res["engine"]) == "linear-counted"
    np.testing.assert_allclose(res["x_op"], np.array(B) / np.diag(A), rtol=1e-9)
    assert main(["netlist", _write(tmp_path, {**cfg, "problem": {**cfg["problem"], "kind": "diagonall"}}),
                 "--out", str(tmp_path / "n")]) == 2
    assert main(["netlist", _write(tmp_path, {**cfg, "simulation": {"backend": "linear-countd"}}),
                 "--out", str(tmp_path / "n")]) == 2
    with pytest.raises(ConfigError, match=r"problem\.kind: 'diagonall' is not a problem kind; choose one of: .*diagonal"):
        load_run_config({**cfg, "problem": {**cfg["problem"], "kind": "diagonall"}})
    with pytest.raises(ConfigError, match=r"simulation\.backend: 'x' is not an engine; choose one of: .*linear-counted"):
        load_run_config({**cfg, "simulation": {"backend": "x"}})


def _write(tmp_path, cfg) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)
