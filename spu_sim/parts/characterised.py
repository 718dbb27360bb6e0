"""The characterised macromodel of a transistor-level op-amp (``circuit.opamp.characterised``).

    macro = read_characterised(oc, temp_c)      # the folder `spu-sim characterise` wrote for this op-amp, checked
    macro.section                               # its circuit.opamp section (model: macro, gain, gbw_hz, r_out_ohm, ...)

``circuit.opamp.characterised`` names the output folder of ``spu-sim characterise`` (or the ``opamp_macro.yaml`` in
it) for the run's own transistor-level op-amp (a shipped cell or ``model: subckt``). ``spu-sim compare`` then runs the
same design with that macromodel beside the transistor-level run (spu_sim.compare, docs/opamp_cells.md). The folder
must be the characterisation of this op-amp as the run uses it: the same cell (or subcircuit name and file), corner
and temperature (its metrics.json says which); anything else is a BadInputError (exit 2) naming the mismatch and the
fix, raised when the run is prepared, before any engine runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import BadInputError
from .config import OpampConfig
from .opamp_cells import CELL_NAMES, cell_spec

KEY = "circuit.opamp.characterised"
MACRO_YAML = "opamp_macro.yaml"     # the names spu_sim.analyses.characterise writes
METRICS_JSON = "metrics.json"


@dataclass(frozen=True)
class CharacterisedMacro:
    """A characterisation read back: its folder, the circuit.opamp section, and what was characterised."""

    folder: str
    section: dict[str, Any]
    cell: str
    corner: str | None
    temp_c: float
    engine: str


def _read(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)
    except FileNotFoundError:
        raise BadInputError(f"{KEY}: {path.parent} has no {path.name}; give the folder that `spu-sim characterise "
                            f"CONFIG --out DIR` wrote for this op-amp") from None
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise BadInputError(f"{KEY}: {path} is not a readable {what} ({type(e).__name__}); rerun spu-sim "
                            "characterise") from None


def read_characterised(oc: OpampConfig, temp_c: float) -> CharacterisedMacro | None:
    """The characterisation ``oc.characterised`` names (an absolute path: spu_sim.pipeline resolves it against the
    config file's folder), checked against the run's op-amp ``oc`` and temperature; None when the key is not set."""
    if oc.characterised is None:
        return None
    folder = Path(oc.characterised)
    if folder.is_file() or folder.suffix == ".yaml":
        folder = folder.parent
    if not folder.is_dir():
        raise BadInputError(f"{KEY}: {folder} is not a folder; give the folder `spu-sim characterise CONFIG --out "
                            "DIR` wrote for this op-amp")
    data = _read(folder / MACRO_YAML, "circuit.opamp section")
    metrics = _read(folder / METRICS_JSON, "characterisation")
    try:
        section = dict(data["circuit"]["opamp"])
        OpampConfig(**section)
        got = (str(metrics["cell"]), metrics.get("corner"), float(metrics["temp_c"]), str(metrics["engine"]))
    except (KeyError, TypeError, ValueError) as e:
        raise BadInputError(f"{KEY}: {folder} does not hold a characterisation ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:120]}); rerun spu-sim characterise") from None
    if oc.model == "subckt":
        want_cell, want_corner = oc.subckt.name, oc.corner
        if Path(str(metrics.get("subckt_file", ""))).resolve() != Path(oc.subckt.file).resolve():
            raise BadInputError(f"{KEY}: {folder} characterises {metrics.get('subckt_file')}, the run's op-amp is "
                                f"{oc.subckt.file}; characterise this subcircuit (spu-sim characterise)")
    else:
        want_cell = oc.model
        want_corner = oc.corner or (cell_spec(oc.model).default_corner if oc.model in CELL_NAMES else None)
    cell, corner, temp, engine = got
    for what, have, want in (("op-amp", cell, want_cell), ("corner", corner, want_corner),
                             ("temperature (C)", temp, float(temp_c))):
        if have != want:
            raise BadInputError(f"{KEY}: {folder} characterises {what} {have}, the run has {want}; run spu-sim "
                                f"characterise with the run's circuit.opamp and circuit.temperature")
    return CharacterisedMacro(str(folder), section, cell, corner, temp, engine)
