"""The names a netlist may carry (re-exported by spu_sim.circuit): letters, digits and underscores only, so no text
from a config can smuggle a SPICE card into a netlist."""

from __future__ import annotations

import re

_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def check_name(name: str) -> str:
    """A node or element name as it may appear in a netlist (letters, digits, underscores)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{name!r} is not a valid circuit name (letters, digits and underscores only)")
    return name
