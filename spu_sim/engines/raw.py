"""Waveforms and ngspice's raw files: what every engine returns, and how ngspice's output is read.

``Waveforms(kind, axis, vectors)``: one analysis' vectors by lower-case name (``v(x1)``, ``i(voi1)``,
``onoise_spectrum``); the axis is time or frequency (None for op). Engines return a dict of them keyed by
``op``, ``tran`` and, for the k-th ``Noise`` analysis of a circuit (0-based, in circuit order),
``noise_<k>`` (spectrum) and ``noise_total_<k>`` (integrated).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
