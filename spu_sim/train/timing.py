"""Hardware time model of one TNGD step (after TNGD App. C; physics.md section 2).

For N parameters, batch b, d_z outputs, analog time t and delay t_d (units of tau = R C, or the
circuit's ``AnalogSolver.tau_s``), over a link of ``link_bits_per_s``:

    dac_s      = dac_latency_s + N dac_bits / link            upload the gradient through the DACs
    program_s  = b d_z (b d_z + 2N) resistor_bits / link      program the J_f, H_L, J_f^T resistor arrays
    analog_s   = t tau_s                                       run the SPU dynamics
    delay_s    = t_d tau_s                                     the delay window, counted in full (conservative:
                                                               in hardware it overlaps the digital work)
    adc_s      = adc_latency_s + N adc_bits / link             read the state out through the ADCs
    digital_s  = measured wall time of the loss, gradient and Jacobian on this CPU (if include_digital)

The modelled step time is the sum. Digital optimisers have no model: their modelled time is their
measured wall time per step.
"""

from __future__ import annotations

from typing import NamedTuple


class StepTime(NamedTuple):
    """Modelled time of one TNGD step by term, in seconds."""

    digital_s: float
    dac_s: float
    program_s: float
    analog_s: float
    delay_s: float
    adc_s: float

    @property
    def total_s(self) -> float:
        return float(sum(self))


def tngd_step_time(*, n_params: int, batch_size: int, d_z: int, t_stop_tau: float, delay_tau: float, tau_s: float,
                   digital_s: float = 0.0, link_bits_per_s: float = 50e9, dac_bits: int = 16,
                   resistor_bits: int = 16, adc_bits: int = 16, dac_latency_s: float = 0.0,
                   adc_latency_s: float = 0.0, include_digital: bool = True, **_ignored) -> StepTime:
    """The terms of the module docstring for one step (extra keys such as r_ohm are ignored)."""
    bdz = batch_size * d_z
    return StepTime(
        digital_s=digital_s if include_digital else 0.0,
        dac_s=dac_latency_s + n_params * dac_bits / link_bits_per_s,
        program_s=bdz * (bdz + 2 * n_params) * resistor_bits / link_bits_per_s,
        analog_s=t_stop_tau * tau_s,
        delay_s=delay_tau * tau_s,
        adc_s=adc_latency_s + n_params * adc_bits / link_bits_per_s,
    )


def format_step_time(label: str, st: StepTime) -> str:
    """One line: 'label: total = a us (digital b us + dac ... )'."""
    terms = " + ".join(f"{name[:-2]} {value * 1e6:.3g} us" for name, value in st._asdict().items())
    return f"{label}: modelled step {st.total_s * 1e6:.4g} us = {terms}"
