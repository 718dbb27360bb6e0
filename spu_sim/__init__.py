"""spu-sim: circuit-level simulator of thermodynamic computing hardware (stochastic processing units).

Entry points (the chain problem -> design -> circuit -> engine -> waveforms -> readout -> compare):

    spu_sim.simulate(config, out_dir=None)   run the configured engine, return the result arrays (spu_sim.pipeline)
    spu_sim.run_compare(config, out_dir)     simulate + exact OU reference + metrics + plots (spu_sim.compare)
    spu_sim.write_netlist(config, out_dir)   the netlist only
    spu_sim.load_config(path_or_dict)        the validated config

``config`` is a YAML path, a dict with the same sections, or a loaded Config.
"""

from __future__ import annotations

__version__ = "0.1.0"


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
    from .config import load_config as _load
    return _load(source)
