"""Design: Problem -> element values for one topology (one module per topology)."""

from __future__ import annotations

from ..config import Config
from ..problem import Problem


def make_design(problem: Problem, cfg: Config):
    """Dispatch on circuit.topology; returns the topology's design dataclass."""
    if cfg.circuit.topology == "opamp":
        from .opamp import design_opamp
        return design_opamp(problem, cfg)
    from .rlc import design_rlc  # noqa: PLC0415 - optional topology
    return design_rlc(problem, cfg)
