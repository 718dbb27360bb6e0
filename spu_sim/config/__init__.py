"""Validated configuration: one pydantic model per YAML section, unknown keys rejected (see base.py).

base: Strict, read_yaml, load_config, save_config, format_validation_error; problem: the problem section;
run: the run config (its ``circuit`` section comes from the topology registry, spu_sim.topologies).
"""

from .base import Strict, finite, format_validation_error, load_config, read_yaml, save_config
from .problem import ProblemConfig, RandomMatrix, RandomMatrixSpec, RandomVector, RandomVectorSpec
from .run import AdcConfig, Config, ReadoutConfig, SimulationConfig

__all__ = ["AdcConfig", "Config", "ProblemConfig", "RandomMatrix", "RandomMatrixSpec", "RandomVector",
           "RandomVectorSpec", "ReadoutConfig", "SimulationConfig", "Strict", "finite", "format_validation_error",
           "load_config", "read_yaml", "save_config"]
