"""The sigmoid element of topology posterior_logistic: one behavioural source per line (spu_sim.circuit.BehavioralVoltage).

The summer k gives V(r<k>) = -z_k / s_z with z_k = X_k theta, so the element on node s<k> is

    logistic   V(s<k>) = v_sig / (1 + exp(s_z V(r<k>)))                 = v_sig sigmoid(z_k)    (exact)
    hard       V(s<k>) = v_sig min(max(1/2 - s_z V(r<k>) / 4, 0), 1)     = v_sig clip(1/2 + z_k/4, 0, 1)

``hard`` is what a clipped amplifier (gain 1/4, limited at 0 and full scale) realises: the logistic's value
and slope at z = 0, at most 0.119 v_sig off it (at |z| = 2, where it saturates).
"""

from __future__ import annotations

from ...circuit import BehavioralVoltage, Comment, add, call, div, mul, num, volt


def sigmoid_expr(design, k: int):
    z_scale = float(design.s_line)
    if design.link == "hard":
        lin = add(num(0.5), mul(num(-0.25 * z_scale), volt(f"r{k}")))
        return mul(num(design.v_sig), call("min", call("max", lin, num(0.0)), num(1.0)))
    return div(num(design.v_sig), add(num(1.0), call("exp", mul(num(z_scale), volt(f"r{k}")))))


def sigmoid_output(design, k: int) -> tuple[list, str]:
    """The sigmoid element of line k and its output node s<k>."""
    return [Comment(f"sigmoid element of line {k} ({design.link})"),
            BehavioralVoltage(f"BSIG{k}", f"s{k}", "0", sigmoid_expr(design, k))], f"s{k}"
