"""The exact linear-circuit engine (engines ``linear`` and ``linear-aggregated``; no ngspice), grouped by role.

    plots = get_engine("linear").run(circuit, run_dir)       # {"op", "tran", "noise_0", ...}: LinearWaveforms
    y = path_at(circuit, times_s)                            # the exact path at arbitrary times (cross-checks)

Each file imports only files above it (no cycle, no import inside a function):

    result.py    what every method is asked (RunOptions) and returns (LinearWaveforms; KrylovRun, KrylovInfo,
                 DcRun), the output grid (output_count), NGSPICE_HINT
    stamp.py     conductance stamps: Triplets, resistors and crossbars, the dense crossbar Blocks
    expmv.py     matrix-free Arnoldi exponential of x' = M x + b (the maths of method krylov)
    chebyshev.py matrix-free Chebyshev propagation with piecewise-linear inputs (method krylov's noisy transient)
    peel.py      the one row-singleton peeling of the algebraic block G22 (solve_algebraic: sparse X = G22^-1 R;
                 PeelSolve: replayable solve)
    state_blocks.py  the dense crossbar blocks of a circuit with capacitor islands (the ideal op-amp subcircuit's
                 integrators): virtual grounds held at 0, state-fed crossbars as G21 blocks (method krylov)
    model.py     the circuit model: MNA assembly, choice of state, floating islands, index-1 reduction,
                 the programmed-switch check
    noise.py     the small-signal .noise; the aggregated noise mode's intensities and seed
    switched.py  method switched: clocked switches and held sources, exact per segment
    krylov.py    method krylov: the reduced model as operators (OperatorModel), .tran by expmv, .op by GMRES
    dense.py     methods modal and loop: exact FOH stepping of the dense model, aggregated noise, path_at
    engine.py    LinearEngine (analyses, the method choice) and LinearAggregatedEngine, registered with
                 @ENGINES.add (engines.base) where they are defined

Every method has one interface, ``(circuit, tran, RunOptions) -> LinearWaveforms`` (and ``(circuit, RunOptions)``
for a .op). The maths, costs and measured numbers: docs/linear_engine.md.
"""

from .dense import path_at
from .engine import METHODS, LinearAggregatedEngine, LinearEngine
from .krylov import path_at_krylov
from .model import MAX_DENSE_STATES
from .noise import noise_intensity_v2_s
from .result import NOISE_MODES, LinearWaveforms, RunOptions
from .switched import needs_switched

__all__ = ["LinearAggregatedEngine", "LinearEngine", "LinearWaveforms", "MAX_DENSE_STATES", "METHODS",
           "NOISE_MODES", "RunOptions", "needs_switched", "noise_intensity_v2_s", "path_at", "path_at_krylov"]
