"""spu-sim: circuit-level simulator of thermodynamic computing hardware (stochastic processing units).

Entry points (the chain problem -> design -> circuit -> engine -> waveforms -> readout -> compare):

    spu_sim.simulate(config, out_dir=None)   run the configured engine, return the result arrays (spu_sim.pipeline)
    spu_sim.run_compare(config, out_dir)     simulate + exact OU reference + metrics + plots (spu_sim.compare)
    spu_sim.write_netlist(config, out_dir)   the netlist only
    spu_sim.load_config(path_or_dict)        the validated run config (spu_sim.run_config)

``config`` is a YAML path, a dict with the same sections, or a loaded Config.
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

# numpy's and scipy's wheels each carry their own OpenBLAS, and after every call each pool's worker threads spin
# for 2^28 cycles (about 0.1 s) before they sleep. The linear engine and the designs alternate the two (LAPACK
# from scipy, products from numpy), so on two cores the spinning pool takes the core the other one needs: a
# Cholesky and a Lanczos at d = 1000 took 16 + 17 ms in sequence against 8 + 9 ms each alone, and the dense TNGD
# step at N = 1000 fell from 0.20 s to 0.16-0.17 s with 2^16 cycles (about 30 us). OpenBLAS reads the variable
# when it loads, so this only acts on libraries loaded after spu_sim; a value set by the user is kept.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")


def simulate(config, out_dir=None, **kw):
    from .pipeline import simulate as _simulate
    return _simulate(config, out_dir, **kw)


def run_compare(config, out_dir, **kw):
    from .compare import compare as _compare
    return _compare(config, out_dir, **kw)


def write_netlist(config, out_dir):
    from .pipeline import write_netlist as _write
    return _write(config, out_dir)


def load_config(source):
    from .run_config import load_run_config as _load
    return _load(source)
