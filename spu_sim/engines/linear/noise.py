"""Noise in the linear engine: the exact small-signal ``.noise`` (ngspice 39's conventions) and the intensities of
the aggregated noise mode.

    spectrum, totals = noise_analysis(circuit, a, mna, opts)    # LinearWaveforms, method "adjoint"
    q = noise_intensity_v2_s(samples_v, dt_s)                   # V^2 s, the aggregated mode's white-noise intensity

The .noise: noise generators (as ngspice's): each noisy Resistor and each Switch (its programmed r_on or r_off) is
a thermal current source of one-sided density 4 k T / R between its nodes, T = temp_c (27 C when unset) + 273.15 K,
k = 1.38064852e-23 J/K (ngspice's CONSTboltz). The filesource noise DACs, controlled sources and capacitors are
noiseless; voltage sources are shorts at AC, the analysis' input source is the unit AC excitation.

At each frequency one sparse adjoint solve (G_m + j w C_m)^T w = e_out - e_ref gives every generator's transfer
H_s = w_a - w_b and the input gain w_src:

    onoise_spectrum = sqrt(sum_s |H_s|^2 S_s)              (V/sqrt(Hz))
    inoise_spectrum = onoise_spectrum / |gain|
    onoise_total    = sqrt(sum_s int |H_s|^2 S_s df)        (ngspice's power-law rule between grid points)
    inoise_total    = the same with each interval's density divided by |gain|^2 at its upper point

The integral over [f1, f2] of a density known at both ends assumes S(f) = a f^e through the two values, as
ngspice's Nintegrate does; ngspice divides both ends by the gain at f2 for the input-referred total. The grid
is ngspice's: f_start multiplied by 10^(1/points_per_decade) while f <= f_stop (1 + 10^(1/ppd) reltol).
Cost: one sparse complex LU per frequency point.

Aggregated noise (noise_mode ``aggregated``, dense.py): each NoiseSource is replaced by white noise of two-sided
intensity q = dt_s * sum_{|l|<=2} r_l (r_l: the samples' autocovariance at lag l, zero mean assumed), the
low-frequency intensity of the piecewise-linear signal: exact for white samples and for the project's
pre-emphasised samples u_k = w_k + (w_k - w_{k-1})/3 (r_0 = 17/9 v^2, r_1 = -4/9 v^2: q = v_rms^2 dt, while the
samples' rms^2 dt would be 17/9 too large). Its default seed is derived from the samples' bytes (``seed_of``), so
the same config and seed give the same numbers.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse.linalg as spla

from ...circuit import Circuit, Noise, NoiseSource, Resistor, ResistorArray
from ...errors import BadInputError
from .model import MNA
from .result import LinearWaveforms, RunOptions

BOLTZMANN_J_PER_K = 1.38064852e-23
KELVIN_AT_0C = 273.15
DEFAULT_TEMP_C = 27.0
N_MINLOG = 1e-38
N_MINGAIN = 1e-20


def frequency_grid(a: Noise, reltol: float) -> np.ndarray:
    """ngspice's decade grid (successive multiplication, as ngspice steps it)."""
    delta = np.exp(np.log(10.0) / a.points_per_decade)
    tol = delta * a.f_stop_hz * reltol
    f, out = a.f_start_hz, []
    while f <= a.f_stop_hz + tol:
        out.append(f)
        f *= delta
    return np.array(out)


def _power_law_integral(S_hi: np.ndarray, ln_hi: np.ndarray, ln_lo: np.ndarray, f: np.ndarray) -> np.ndarray:
    """int_{f_{i-1}}^{f_i} a f^e df per interval (rows: generators), e from the two log densities."""
    lnf = np.log(f)
    dln = np.diff(lnf)
    e = (ln_hi - ln_lo) / dln
    a = np.exp(ln_hi - e * lnf[1:])
    e1 = e + 1.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        general = a * (np.exp(e1 * lnf[1:]) - np.exp(e1 * lnf[:-1])) / e1
    out = np.where(np.abs(e1) < N_MINGAIN, a * dln, general)
    return np.where(np.abs(e) < N_MINGAIN, S_hi * np.diff(f), out)


def noise_analysis(circuit: Circuit, a: Noise, mna: MNA, opts: RunOptions) -> tuple[LinearWaveforms, LinearWaveforms]:
    """(spectrum, totals) of one Noise analysis, keyed as ngspice's raw files name them (method "adjoint")."""
    nodes, br = mna.nodes, mna.branches
    if a.source not in br:
        raise BadInputError(f".noise input {a.source} is not a voltage source of the circuit")
    for name in (a.output, a.reference):
        if name is not None and name != "0" and name not in nodes:
            raise BadInputError(f".noise output node {name} is not in the circuit")
    temp_k = (DEFAULT_TEMP_C if circuit.temp_c is None else circuit.temp_c) + KELVIN_AT_0C
    gens = [(e.n_pos, e.n_neg, e.r_ohm) for e in circuit.of_type(Resistor) if e.noisy]
    for arr in circuit.of_type(ResistorArray):
        if arr.has_wires:
            raise BadInputError(f".noise with crossbar {arr.prefix} on wires (circuit.wires): the linear engine's "
                                "small-signal noise takes plain crossbars only; use simulation.backend ngspice")
        if arr.noisy:
            i, j, r = arr.entries()
            gens += [(arr.col_nodes[b], arr.row_nodes[a], v) for a, b, v in zip(i.tolist(), j.tolist(), r.tolist())]
    gens += [(sw.n_pos, sw.n_neg, m.r_on_ohm if sw.on else m.r_off_ohm) for sw, m in mna.switches]
    S = np.array([4 * BOLTZMANN_J_PER_K * temp_k / r for _, _, r in gens])
    ia = np.array([nodes.get(p, -1) for p, _, _ in gens], dtype=int)
    ib = np.array([nodes.get(q, -1) for _, q, _ in gens], dtype=int)
    n = mna.G.shape[0]
    sel = np.zeros(n, dtype=complex)
    if a.output in nodes:
        sel[nodes[a.output]] += 1.0
    if a.reference is not None and a.reference in nodes:
        sel[nodes[a.reference]] -= 1.0
    f = frequency_grid(a, circuit.options.get("reltol", 1e-3))
    dens = np.empty((len(gens), len(f)))
    gain2 = np.empty(len(f))
    for k, fk in enumerate(f):
        A = (mna.G + 2j * np.pi * fk * mna.C).T.tocsc()
        w = spla.splu(A).solve(sel)
        wa = np.where(ia >= 0, w[np.maximum(ia, 0)], 0.0)
        wb = np.where(ib >= 0, w[np.maximum(ib, 0)], 0.0)
        dens[:, k] = np.abs(wa - wb) ** 2 * S
        gain2[k] = abs(w[br[a.source]]) ** 2
    if np.any(gain2 == 0):
        raise BadInputError(f".noise input {a.source} has no gain to the output: input-referred noise undefined")
    onoise = np.sqrt(dens.sum(axis=0))
    mark = dict(engine=opts.engine, noise_mode="none", method="adjoint")
    spectrum = LinearWaveforms("noise", f, {"frequency": f, "onoise_spectrum": onoise,
                                            "inoise_spectrum": onoise / np.sqrt(gain2)}, **mark)
    ln = np.log(np.maximum(dens, N_MINLOG))
    out_total = _power_law_integral(dens[:, 1:], ln[:, 1:], ln[:, :-1], f).sum()
    ln_gi = -np.log(gain2[1:])
    in_total = _power_law_integral(dens[:, 1:] / gain2[1:], ln[:, 1:] + ln_gi, ln[:, :-1] + ln_gi, f).sum()
    on, inn = np.array([np.sqrt(out_total)]), np.array([np.sqrt(in_total)])
    totals = LinearWaveforms("noise_total", None, {"v(onoise_total)": on, "v(inoise_total)": inn,
                                                   "onoise_total": on, "inoise_total": inn}, **mark)
    return spectrum, totals


def noise_intensity_v2_s(samples_v: np.ndarray, dt_s: float) -> float:
    """Low-frequency two-sided intensity (V^2 s) of a piecewise-linear noise signal: dt * sum_{|l|<=2} r_l."""
    u = np.asarray(samples_v, dtype=float)[1:]
    n = len(u)
    r = [float(u[: n - l] @ u[l:]) / n for l in range(3)]
    return dt_s * max(r[0] + 2 * r[1] + 2 * r[2], 0.0)


def seed_of(srcs: list[NoiseSource]) -> int:
    """The aggregated noise's default seed: a hash of the sources' sample bytes."""
    h = hashlib.blake2b(digest_size=8)
    for src in srcs:
        h.update(np.ascontiguousarray(src.samples_v, dtype=float).tobytes())
    return int.from_bytes(h.digest(), "little")
