"""Optimisers of the NGD loop, one module each (``build(**hyper) -> Transform(init, update)``).

``OPTIMIZERS`` (the registry, in base.py) holds each module under its config name, registered by the module
itself; importing this package imports every optimiser module, in the order of the choices listed in errors:

    OPTIMIZERS.get("tngd").build(lr=0.1, t_stop_tau=50.0)     # or ConfigError listing the optimisers
"""

from __future__ import annotations

# the import order is the registration order (the order of OPTIMIZERS.names())
from spu_sim.optim import sgd, adam, ngd, ngd_cg, ngd_woodbury, tngd, tngd_adam, kfac, tkfac  # noqa: I001
from spu_sim.optim.base import OPTIMIZERS, LocalProblem, Transform

__all__ = ["OPTIMIZERS", "LocalProblem", "Transform", "adam", "kfac", "ngd", "ngd_cg", "ngd_woodbury", "sgd", "tkfac",
           "tngd", "tngd_adam"]
