"""The waveform file of a run: every engine's plots kept as ngspice's binary raw file or as CSV.

    paths = write_waveforms(folder, plots, "raw", title="spu-sim op-amp integrator SPU, d = 4")
    plots = read_waveforms(folder)                     # back, from whichever file the folder holds

File names start with a stem: ``waveforms`` for a simulate run, ``noise_waveforms`` for a noise run (whose
folder may hold a simulate run too).

- ``raw``: <stem>.raw (waveforms.raw), every plot in ngspice's binary raw format (spu_sim.engines.raw:
  byte for byte what ngspice writes for the same vectors; ngspice's ``load``, spicelib and waveform viewers
  read it). The linear engines' plots are written the same way.
- ``csv``: one <stem>_<key>.csv per plot (op, tran, noise_<k>, noise_total_<k>): a header row of vector
  names as in the raw file (``time``, ``v(x1)``, ``i(vo1)``), then one row per point, each value written with
  17 significant digits (a float64 round-trips exactly). A complex vector takes two columns,
  ``re(<name>)`` and ``im(<name>)``.
- ``none``: nothing.

Sizes (``bytes_per_value``) feed the run's disk estimate (spu_sim.pipeline.estimates).
"""

from __future__ import annotations

import csv
import io as _io
from pathlib import Path

import numpy as np

from .. import io
from .raw import Waveforms, number_noise_plots, parse_raw_list, raw_name, write_raw

STEM = "waveforms"
WAVEFORMS_RAW = f"{STEM}.raw"
FORMATS = ("raw", "csv", "none")
#: bytes one value takes in the file (a CSV value: 17 digits, sign, point, exponent, separator)
BYTES_PER_VALUE = {"raw": 8, "csv": 25, "none": 0}


def csv_name(key: str, stem: str = STEM) -> str:
    """<stem>_<key>.csv."""
    return f"{stem}_{key}.csv"


def format_csv(w: Waveforms) -> str:
    """One plot as CSV text (module doc); the vectors in their order, the axis first where it is a vector."""
    names, cols = [], []
    for k, v in w.vectors.items():
        v = np.asarray(v).ravel()
        if np.iscomplexobj(v):
            names += [f"re({raw_name(k)})", f"im({raw_name(k)})"]
            cols += [v.real, v.imag]
        else:
            names.append(raw_name(k))
            cols.append(v.astype(float))
    if len({len(c) for c in cols}) > 1:
        raise ValueError(f"the {w.kind} plot has vectors of different lengths: not one table")
    head = ",".join(names) + "\n"
    if not cols:
        return head
    data = np.column_stack(cols)
    row = ",".join(["%.17g"] * data.shape[1]) + "\n"
    # one C-level formatting call for the whole table (np.savetxt formats row by row in Python: 10x slower)
    return head + (row * data.shape[0]) % tuple(data.ravel().tolist())


def parse_csv(text: str, kind: str) -> Waveforms:
    """A waveforms_<key>.csv back into a Waveforms of that kind (``re(v)``/``im(v)`` pairs made complex; the
    axis: the time or frequency column)."""
    rows = list(csv.reader(_io.StringIO(text)))
    names = rows[0]
    data = np.array([[float(x) for x in r] for r in rows[1:] if r], dtype=float).reshape(-1, len(names))
    vectors: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        if name.startswith("im(") and name.endswith(")"):
            continue
        if name.startswith("re(") and name.endswith(")"):
            base = name[3:-1]
            vectors[base] = data[:, j] + 1j * data[:, names.index(f"im({base})")]
        else:
            vectors[name] = data[:, j].copy()
    axis = next((np.real(vectors[a]) for a in ("time", "frequency") if a in vectors), None)
    return Waveforms(kind, axis, vectors)


def _kind(key: str) -> str:
    return "noise_total" if key.startswith("noise_total_") else "noise" if key.startswith("noise_") else key


def write_waveforms(folder: Path, plots: dict[str, Waveforms], fmt: str, title: str,
                    stem: str = STEM) -> list[Path]:
    """The run's waveform file(s) in folder (each written whole: temporary file, then rename); returns the
    paths (none for fmt ``none``). title: the raw file's Title line (the circuit's title)."""
    folder = Path(folder)
    if fmt == "none" or not plots:
        return []
    if fmt == "raw":
        return [write_raw(folder / f"{stem}.raw", plots, title=f"* {title}")]
    if fmt == "csv":
        paths = []
        for key, w in plots.items():
            path = folder / csv_name(key, stem)
            io.atomic_write_text(path, format_csv(w))
            paths.append(path)
        return paths
    raise ValueError(f"waveform format {fmt!r}: choose one of {', '.join(FORMATS)}")


def read_waveforms(folder: Path, stem: str = STEM) -> dict[str, Waveforms]:
    """The plots of a run folder's waveform file(s), keyed like the engines' (op, tran, noise_<k>, ...):
    <stem>.raw if present, else the <stem>_<key>.csv files; {} when there are none."""
    folder = Path(folder)
    raw = folder / f"{stem}.raw"
    if raw.is_file():
        plots = parse_raw_list(raw.read_bytes())
        out = {p.kind: p for p in plots if p.kind not in ("noise", "noise_total")}
        out.update(number_noise_plots(plots))
        return out
    n = len(stem) + 1
    return {p.stem[n:]: parse_csv(p.read_text(), _kind(p.stem[n:])) for p in sorted(folder.glob(f"{stem}_*.csv"))}
