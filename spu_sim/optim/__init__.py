"""Optimisers of the NGD loop, one module each (``build(**hyper) -> Transform(init, update)``).

``OPTIMIZERS`` maps the config name to the module; ``build(name, **hyper)`` builds one.
"""

from __future__ import annotations

from types import ModuleType

from spu_sim.optim import adam, kfac, ngd, ngd_cg, ngd_woodbury, sgd, tkfac, tngd, tngd_adam
from spu_sim.optim.base import LocalProblem, Transform

OPTIMIZERS: dict[str, ModuleType] = {
    "sgd": sgd, "adam": adam, "ngd": ngd, "ngd_cg": ngd_cg, "ngd_woodbury": ngd_woodbury,
    "tngd": tngd, "tngd_adam": tngd_adam, "kfac": kfac, "tkfac": tkfac,
}


def build(name: str, **hyper) -> Transform:
    """``OPTIMIZERS[name].build(**hyper)``."""
    return OPTIMIZERS[name].build(**hyper)


__all__ = ["OPTIMIZERS", "build", "LocalProblem", "Transform"]
