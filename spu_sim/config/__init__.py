"""Validated configuration, a leaf of the package (it imports nothing of spu_sim but errors): the strict base
model, the finiteness check, the YAML reader, one-line error formatting and the section models every run
shares.

    base.py      Strict (every float finite, unit-named fields in PHYSICAL_RANGES), Seed, finite, read_yaml,
                 parse_yaml, load_config(source, model), save_config, format_validation_error
    sections.py  SimulationConfig, ReadoutConfig, AdcConfig

The sections that belong to a registered thing live with it (a problem kind's in spu_sim.problems, a
topology's in its folder); the composite run configuration is spu_sim.run_config.
"""

from .base import (PHYSICAL_RANGES, Seed, Strict, finite, format_validation_error, load_config, parse_yaml, physical,
                   physical_range, read_yaml, save_config)
from .sections import AdcConfig, ReadoutConfig, SimulationConfig

__all__ = ["PHYSICAL_RANGES", "AdcConfig", "ReadoutConfig", "Seed", "SimulationConfig", "Strict", "finite",
           "format_validation_error", "load_config", "parse_yaml", "physical", "physical_range", "read_yaml", "save_config"]
