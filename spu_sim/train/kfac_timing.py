"""Time model of K-FAC: digital against thermodynamic (the SPU inverts the factors); constants of
``spu_sim.train.timing`` (TNGD App. C: 50 Gb/s link, 16-bit DAC/resistors/ADC, tau = R C = 1 us).

Thermodynamic refresh of one damped factor M (n x n), inverted column by column (spu_sim.optim.tkfac):

    program_s = n^2 resistor_bits / link                      upload M into the resistor array
    dac_s     = n (dac_latency_s + n dac_bits / link)         the right-hand side e_j and x0, per column
    analog_s  = n t tau_s                                     the dynamics, per column
    adc_s     = n (adc_latency_s + n adc_bits / link)         read x(t) out, per column

(the x0 of the warm start goes through the same DACs as e_j and is not counted twice). Digital refresh:
the SPD inverse, about n^3 flops (Cholesky n^3/3 + inverse 2n^3/3). Both spend, per step and layer,
the factor build (2 b (n_in^2 + n_out^2) flops) and the application D = M_A^-1 dWbar M_G^-1
(2 n_in n_out (n_in + n_out) flops), at this CPU's measured rates.

``asymptotics`` also models the variant in which the SPU applies the inverse as well (solve
M_A X = dWbar and M_G Y^T = X^T with the gradient columns as right-hand sides: 2n SPU runs per step and
no O(n^3) digital work); that variant is a model only (tkfac simulates the inverse form).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from spu_sim.train.timing import StepTime


def factor_refresh_time(n: int, *, t_stop_tau: float, tau_s: float, link_bits_per_s: float = 50e9,
                        dac_bits: int = 16, resistor_bits: int = 16, adc_bits: int = 16,
                        dac_latency_s: float = 0.0, adc_latency_s: float = 0.0) -> StepTime:
    """The terms of the module docstring for one n x n factor (digital_s = delay_s = 0)."""
    return StepTime(
        digital_s=0.0,
        dac_s=n * (dac_latency_s + n * dac_bits / link_bits_per_s),
        program_s=n * n * resistor_bits / link_bits_per_s,
        analog_s=n * t_stop_tau * tau_s,
        delay_s=0.0,
        adc_s=n * (adc_latency_s + n * adc_bits / link_bits_per_s),
    )


def tkfac_refresh_time(sizes: list[int], *, t_stop_tau: float, tau_s: float, **timing: Any) -> StepTime:
    """Sum of ``factor_refresh_time`` over the factors of sizes ``sizes`` (extra keys such as r_ohm are
    ignored, as in ``tngd_step_time``)."""
    keys = ("link_bits_per_s", "dac_bits", "resistor_bits", "adc_bits", "dac_latency_s", "adc_latency_s")
    kw = {k: timing[k] for k in keys if k in timing}
    total = np.zeros(6)
    for n in sizes:
        total += np.array(factor_refresh_time(int(n), t_stop_tau=t_stop_tau, tau_s=tau_s, **kw))
    return StepTime(*map(float, total))


def _best_time(fn, min_repeats: int, min_total_s: float) -> float:
    fn()  # warm-up (thread pools, first-touch allocation)
    best, total, k = np.inf, 0.0, 0
    while k < min_repeats or total < min_total_s:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total, k = min(best, dt), total + dt, k + 1
    return best


def measure_flop_rates(ns: list[int], min_repeats: int = 5, min_total_s: float = 0.2,
                       threads: int | None = 1) -> list[dict[str, float]]:
    """Measured rate of this CPU for the two digital kernels, per n: the product of two n x n matrices
    (2 n^3 flops) and the SPD inverse by Cholesky (n^3 flops); the best of at least ``min_repeats`` runs
    and ``min_total_s`` seconds, after a warm-up (the minimum rejects interruptions by other processes).
    ``threads``: BLAS threads while measuring (1 by default: multi-threaded BLAS on a shared 2-core machine
    gave erratic minima, e.g. 12 ms for a 32 x 32 inverse; None leaves the library default)."""
    if threads is not None:
        with threadpool_limits(limits=threads):
            return measure_flop_rates(ns, min_repeats, min_total_s, threads=None)
    rng = np.random.default_rng(0)
    rows = []
    for n in ns:
        x = rng.standard_normal((n, n))
        m = x @ x.T / n + np.eye(n)
        eye = np.eye(n)
        t_mm = _best_time(lambda: x @ m, min_repeats, min_total_s)
        t_inv = _best_time(lambda: scipy.linalg.cho_solve(scipy.linalg.cho_factor(m, lower=True), eye),
                           min_repeats, min_total_s)
        rows.append({"n": int(n), "matmul_s": t_mm, "inverse_s": t_inv,
                     "matmul_flops_per_s": 2.0 * n ** 3 / t_mm, "inverse_flops_per_s": float(n) ** 3 / t_inv})
    return rows


def asymptotics(ns: list[int], *, batch: int, inverse_every: int, t_stop_tau: float, tau_s: float,
                matmul_flops_per_s: float, inverse_flops_per_s: float, **timing: Any) -> list[dict[str, float]]:
    """Modelled seconds per step of one square layer (n_in + 1 = n_out = n) for every n:
    ``digital`` K-FAC, ``thermo`` (tkfac: SPU inverts, digital application) and ``thermo_apply`` (the
    SPU also applies the inverse); refreshes amortised over ``inverse_every`` steps."""
    rows = []
    for n in ns:
        n = float(n)
        build = 2 * batch * (2 * n * n) / matmul_flops_per_s
        apply = 2 * n * n * (2 * n) / matmul_flops_per_s
        inv = 2 * n ** 3 / inverse_flops_per_s
        hw = factor_refresh_time(int(n), t_stop_tau=t_stop_tau, tau_s=tau_s, **timing)
        spu_refresh = 2 * (hw.total_s)
        # SPU applies: program per refresh; per step 2 factors x n columns (DAC, analog, ADC)
        per_step_cols = 2 * (hw.dac_s + hw.analog_s + hw.adc_s)
        rows.append({
            "n": int(n), "digital_build_s": build, "digital_apply_s": apply, "digital_inverse_s": inv / inverse_every,
            "spu_refresh_s": spu_refresh / inverse_every,
            "digital_s": build + apply + inv / inverse_every,
            "thermo_s": build + apply + spu_refresh / inverse_every,
            "thermo_apply_s": build + 2 * hw.program_s / inverse_every + per_step_cols,
        })
    return rows


def power_law_exponent(ns: list[int], ts: list[float]) -> float:
    """Slope of log t against log n over the last decade-ish of points (the largest half)."""
    ns, ts = np.asarray(ns, float), np.asarray(ts, float)
    k = len(ns) // 2
    return float(np.polyfit(np.log(ns[k:]), np.log(ts[k:]), 1)[0])
