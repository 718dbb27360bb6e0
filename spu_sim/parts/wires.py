"""The limit of circuit.wires every topology checks before it builds its arrays on lines (the layout and the line
solve: spu_sim.circuit.ResistorArray; the config section: spu_sim.parts.config.WiresConfig)."""

from __future__ import annotations

from ..errors import DesignError

WIRE_DROP_MAX = 0.5   # the largest line resistance, as a fraction of the smallest cross-point resistor


def check_wires(n_segments: int, r_seg_ohm: float, r_min_ohm: float) -> None:
    """Refuse wires whose line resistance reaches the cells': a line of n segments carrying the current of its
    cross-points drops about r_seg n G_cell n / 2 of the drive, so an entry of the smallest programmed resistor
    r_min is unrealisable (its own line takes the voltage meant for it) once n r_seg > WIRE_DROP_MAX r_min.
    A DesignError (exit 2) naming the key and the largest segment resistance that passes.

    Args:
        n_segments: the longest line of the topology's arrays (segments).
        r_seg_ohm: circuit.wires.r_ohm_per_segment.
        r_min_ohm: circuit.integrator.r_min_ohm (the smallest cross-point resistor).
    """
    if n_segments * r_seg_ohm > WIRE_DROP_MAX * r_min_ohm:
        raise DesignError(f"circuit.wires.r_ohm_per_segment = {r_seg_ohm:g} ohm: a line of {n_segments} segments reaches "
                          f"{n_segments * r_seg_ohm:.4g} ohm, more than {WIRE_DROP_MAX:g} x the smallest cell resistor "
                          f"circuit.integrator.r_min_ohm = {r_min_ohm:g} ohm, so entries are unrealisable; use at most "
                          f"{WIRE_DROP_MAX * r_min_ohm / n_segments:.4g} ohm per segment or raise r_min_ohm")
