"""Waveforms and ngspice's raw files: what every engine returns, and how ngspice's raw files are read and written.

``Waveforms(kind, axis, vectors)``: one analysis' vectors by lower-case name (``v(x1)``, ``i(voi1)``,
``onoise_spectrum``); the axis is time or frequency (None for op). Engines return a dict of them keyed by
``op``, ``tran`` and, for the k-th ``Noise`` analysis of a circuit (0-based, in circuit order),
``noise_<k>`` (spectrum) and ``noise_total_<k>`` (integrated).

    plots = parse_raw(path.read_bytes())              # ngspice's own file (binary or ascii)
    write_raw(path, plots, title="* my circuit")      # the same binary format, for any engine's plots

The binary format, as ngspice 39 writes it (``ngspice -b -r`` and the ``write`` command; read back by its
``load``): per plot a text header ``Title:``, ``Date:``, ``Plotname:``, ``Flags: real|complex``,
``No. Variables:``, ``No. Points:`` (padded to 8 places), ``Variables:`` (one ``\t<index>\t<name>\t<type>``
line each: the scale first; a frequency scale adds ``grid=3``, log), then ``Binary:`` and the points row by row, each value a little-endian float64 (complex plots: real
and imaginary part of every value, the scale too). Several plots follow one another in one file.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import io

ERROR_MARKERS = ("error", "timestep too small", "singular matrix", "no convergence", "aborted",
                 "simulation(s) aborted", "could not find", "unknown", "fatal")
BENIGN_MARKERS = ("unsupported ngspice version", "no compatibility mode", "can't find init file",
                  "using spice options", "warning:", "note:")


@dataclass
class Waveforms:
    """One analysis' vectors: ``kind`` (op, tran, noise, ac), the x axis (time or frequency; None for
    op) and a dict of lower-case vector names (``v(x1)``, ``onoise_spectrum``) to arrays."""

    kind: str
    axis: np.ndarray | None
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def node(self, name: str) -> np.ndarray:
        """The voltage of a node by bare name (``x1``) or vector name (``v(x1)``)."""
        for key in (name.lower(), f"v({name.lower()})"):
            if key in self.vectors:
                return self.vectors[key]
        raise KeyError(f"no vector {name!r} in the {self.kind} results; have {sorted(self.vectors)[:10]}")


def kind_of(plot_name: str) -> str:
    p = plot_name.lower()
    for prefix, kind in (("op", "op"), ("tran", "tran"), ("noise", "noise"), ("ac", "ac"), ("dc", "dc")):
        if p.startswith(prefix):
            return kind
    if "operating point" in p:
        return "op"
    if "transient" in p:
        return "tran"
    if "integrated noise" in p:
        return "noise_total"
    if "noise" in p:
        return "noise"
    if "ac analysis" in p:
        return "ac"
    return p


def refine_kind(kind: str, vectors: dict[str, np.ndarray]) -> str:
    """ngspice numbers plots (noise1, noise2, ...): tell the integrated-noise plot by its vectors."""
    if kind == "noise" and any("total" in k for k in vectors):
        return "noise_total"
    return kind


def errors_in(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        low = line.lower().strip()
        if not low or any(m in low for m in BENIGN_MARKERS):
            continue
        if any(m in low for m in ERROR_MARKERS):
            out.append(line.strip())
    return out


@contextlib.contextmanager
def in_dir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# ---------------------------------------------------------------- raw files


def parse_raw(data: bytes) -> dict[str, Waveforms]:
    """Parse an ngspice raw file (binary or ascii, one or more plots) into Waveforms keyed by kind
    (a later plot of the same kind replaces an earlier one; see parse_raw_list for all of them)."""
    return {w.kind: w for w in parse_raw_list(data)}


def parse_raw_list(data: bytes) -> list[Waveforms]:
    """Every plot of an ngspice raw file in file order (several .noise lines give noise, noise_total,
    noise, noise_total, ...)."""
    plots: list[Waveforms] = []
    pos = 0
    while pos < len(data):
        header: dict[str, str] = {}
        names: list[str] = []
        while True:
            end = data.index(b"\n", pos)
            line = data[pos:end].decode("latin-1")
            pos = end + 1
            if line.startswith("Variables:"):
                nvar = int(header["no. variables"])
                for _ in range(nvar):
                    end = data.index(b"\n", pos)
                    parts = data[pos:end].decode("latin-1").split()
                    pos = end + 1
                    names.append(parts[1].lower())
                continue
            if line.startswith("Binary:") or line.startswith("Values:"):
                binary = line.startswith("Binary:")
                break
            key, _, val = line.partition(":")
            header[key.strip().lower()] = val.strip()
        npts = int(header["no. points"])
        nvar = len(names)
        complex_ = "complex" in header.get("flags", "").lower()
        width = 2 if complex_ else 1
        if binary:
            count = npts * nvar * width
            arr = np.frombuffer(data, dtype="<f8", count=count, offset=pos).reshape(npts, nvar * width)
            pos += count * 8
        else:
            vals: list[float] = []
            for _ in range(npts):
                for v in range(nvar):
                    end = data.index(b"\n", pos)
                    tok = data[pos:end].decode().split()[-1 if v else 1]
                    pos = end + 1
                    vals.extend(float(t) for t in tok.split(","))
            arr = np.array(vals).reshape(npts, nvar * width)
        if complex_:
            arr = arr[:, 0::2] + 1j * arr[:, 1::2]
        while pos < len(data) and data[pos:pos + 1] in (b"\n", b"\r"):
            pos += 1
        vectors = {n: np.array(arr[:, k]) for k, n in enumerate(names)}
        kind = refine_kind(kind_of(header.get("plotname", "")), vectors)
        axis = None
        if kind != "op" and names:
            axis = np.real(vectors[names[0]])
        plots.append(Waveforms(kind, axis, vectors))
    return plots




def number_noise_plots(plots: list[Waveforms]) -> dict[str, Waveforms]:
    """Noise plots in execution order -> ``noise_<k>`` / ``noise_total_<k>`` in circuit order.

    ngspice 39 runs several .noise lines of one netlist in REVERSE order (its parser prepends each analysis
    to a list): the first result belongs to the last line (checked by tests/test_noise_analysis.py).
    """
    spectra = [p for p in plots if p.kind == "noise"][::-1]
    totals = [p for p in plots if p.kind == "noise_total"][::-1]
    out: dict[str, Waveforms] = {}
    for k, (s, t) in enumerate(zip(spectra, totals)):
        out[f"noise_{k}"], out[f"noise_total_{k}"] = s, t
    return out


# ---------------------------------------------------------------- writing

#: ngspice's plot names by kind (the ``Plotname:`` of its raw files; kind_of reads them back)
PLOT_NAMES = {"op": "Operating Point", "tran": "Transient Analysis", "noise": "Noise Spectral Density Curves",
              "noise_total": "Integrated Noise", "ac": "AC Analysis", "dc": "DC transfer characteristic"}


def raw_name(key: str) -> str:
    """A vector name as ngspice's raw files spell it: ``vsum1#branch`` (the shared library's name of a branch
    current) -> ``i(vsum1)``, ``onoise_total`` (its name of an integrated noise) -> ``v(onoise_total)``; other
    names unchanged (lower case)."""
    key = key.lower()
    if key.endswith("#branch"):
        return f"i({key[:-len('#branch')]})"
    if key.endswith("noise_total") and not key.startswith("v("):
        return f"v({key})"
    return key


def vector_type(name: str) -> str:
    """ngspice's type of a vector by its name: time, frequency, current (i(...)), voltage-density (a noise
    spectrum), else voltage."""
    if name in ("time", "frequency"):
        return name
    if name.startswith("i("):
        return "current"
    if name.endswith("noise_spectrum"):
        return "voltage-density"
    return "voltage"


def plot_order(plots: dict[str, Waveforms]) -> list[Waveforms]:
    """The plots in ngspice's execution order: op, tran, other kinds, then the noise pairs from the last
    ``noise_<k>`` to the first (ngspice 39 runs several .noise lines in reverse; number_noise_plots undoes it),
    so that parse_raw_list + number_noise_plots give back the same keys."""
    noise_k = sorted((int(k.rsplit("_", 1)[1]) for k in plots if k.startswith("noise_") and k[6:].isdigit()),
                     reverse=True)
    head = [plots[k] for k in ("op", "tran") if k in plots]
    rest = [w for k, w in plots.items() if k not in ("op", "tran") and not k.startswith("noise_")]
    noise = [w for k in noise_k for w in (plots[f"noise_{k}"], plots[f"noise_total_{k}"])]
    return head + rest + noise


def format_raw_plot(w: Waveforms, title: str, date: str) -> bytes:
    """One plot in ngspice's binary raw format (module doc): the scale first (time of a tran, frequency of a
    noise spectrum or ac plot: the vector of that name, else the axis), then the other vectors in their order. Raises ValueError for vectors of unequal lengths."""
    names = [raw_name(k) for k in w.vectors]
    cols = [np.asarray(v).ravel() for v in w.vectors.values()]
    scale = next((i for i, n in enumerate(names) if n in ("time", "frequency")), None)
    axis_name = {"tran": "time", "noise": "frequency", "ac": "frequency"}.get(w.kind)
    if scale is None and w.axis is not None and axis_name is not None:
        names.insert(0, axis_name)
        cols.insert(0, np.asarray(w.axis).ravel())
    elif scale is not None:
        names.insert(0, names.pop(scale))
        cols.insert(0, cols.pop(scale))
    n = {len(c) for c in cols}
    if len(n) != 1:
        raise ValueError(f"the {w.kind} plot has vectors of different lengths {sorted(n)}: not one raw plot")
    complex_ = any(np.iscomplexobj(c) for c in cols)
    head = [f"Title: {title}", f"Date: {date}", f"Plotname: {PLOT_NAMES.get(w.kind, w.kind)}",
            f"Flags: {'complex' if complex_ else 'real'}", f"No. Variables: {len(names)}",
            f"No. Points: {n.pop():<8d}", "Variables:"]
    head += [f"\t{i}\t{name}\t{vector_type(name)}" + ("\tgrid=3" if name == "frequency" else "")
             for i, name in enumerate(names)]
    head.append("Binary:")
    if complex_:
        data = np.column_stack([np.asarray(c, dtype=complex) for c in cols]).view(float)
    else:
        data = np.column_stack([np.asarray(c, dtype=float) for c in cols])
    return ("\n".join(head) + "\n").encode("latin-1") + np.ascontiguousarray(data, dtype="<f8").tobytes()


def format_raw(plots: dict[str, Waveforms], title: str, date: str | None = None) -> bytes:
    """Every plot (plot_order) in one binary raw file. title: the ``Title:`` line (ngspice: the netlist's first
    line); date: the ``Date:`` line (default: now, in ngspice's format)."""
    date = time.strftime("%a %b %d %H:%M:%S  %Y") if date is None else date
    if any(c in title for c in "\r\n"):
        raise ValueError("a raw file's title is one line")
    return b"".join(format_raw_plot(w, title, date) for w in plot_order(plots))


def write_raw(path: Path, plots: dict[str, Waveforms], title: str, date: str | None = None) -> Path:
    """format_raw into path (written whole: a temporary file renamed, spu_sim.io); returns path."""
    io.atomic_write_bytes(Path(path), format_raw(plots, title, date))
    return Path(path)
