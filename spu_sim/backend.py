"""Backend: netlist file -> waveforms. Two implementations behind one small interface.

    backend = get_backend("ngspice-shared" | "ngspice-subprocess")
    plots = backend.run(netlist_path, timeout_s=None)   # {"op": Waveforms, "tran": Waveforms, ...}

- ``NgspiceShared``: ngspice in-process through PySpice's NgSpiceShared (libngspice). Loads the
  netlist, runs it in the netlist's folder (so relative file names such as noise_1.txt resolve), fetches
  every vector of every plot, then sends ``destroy all`` and ``remcirc`` so memory does not grow.
- ``NgspiceSubprocess``: plain ``ngspice -b -r out.raw netlist.cir`` in a subprocess, raw file parsed
  here (isolation, a per-run timeout, and the reference for plain use).

Failures raise ``SimulationError`` with ngspice's own message, the run folder and the netlist.
``available()`` probes whether ngspice can be used at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SimulationError

LIB_CANDIDATES = ("/usr/lib/x86_64-linux-gnu/libngspice.so.0", "/usr/lib/aarch64-linux-gnu/libngspice.so.0",
                  "/usr/lib/x86_64-linux-gnu/libngspice.so", "/usr/lib/aarch64-linux-gnu/libngspice.so")
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


def _kind_of(plot_name: str) -> str:
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


def _refine_kind(kind: str, vectors: dict[str, np.ndarray]) -> str:
    """ngspice numbers plots (noise1, noise2, ...): tell the integrated-noise plot by its vectors."""
    if kind == "noise" and any("total" in k for k in vectors):
        return "noise_total"
    return kind


def _errors_in(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        low = line.lower().strip()
        if not low or any(m in low for m in BENIGN_MARKERS):
            continue
        if any(m in low for m in ERROR_MARKERS):
            out.append(line.strip())
    return out


@contextlib.contextmanager
def _in_dir(path: Path):
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
        kind = _refine_kind(_kind_of(header.get("plotname", "")), vectors)
        axis = None
        if kind != "op" and names:
            axis = np.real(vectors[names[0]])
        plots.append(Waveforms(kind, axis, vectors))
    return plots


# ---------------------------------------------------------------- backends


class NgspiceSubprocess:
    """``ngspice -b -r out.raw netlist.cir`` in the netlist's folder."""

    name = "ngspice-subprocess"

    def run(self, netlist_path: Path, timeout_s: float | None = None, progress=None) -> dict[str, Waveforms]:
        """progress is accepted for interface parity and ignored (ngspice -b reports nothing usable)."""
        netlist_path = Path(netlist_path).resolve()
        run_dir = netlist_path.parent
        exe = shutil.which("ngspice")
        if exe is None:
            raise SimulationError("ngspice is not installed (apt-get install ngspice)", run_dir=run_dir)
        raw = run_dir / "out.raw"
        raw.unlink(missing_ok=True)
        try:
            proc = subprocess.run([exe, "-b", "-r", raw.name, netlist_path.name], cwd=run_dir,
                                  capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SimulationError(f"ngspice did not finish within {timeout_s:g} s", run_dir=run_dir,
                                  netlist_path=netlist_path) from None
        lines = (proc.stdout + "\n" + proc.stderr).splitlines()
        errors = _errors_in(lines)
        if proc.returncode != 0 or errors or not raw.is_file():
            raise SimulationError("ngspice failed", ngspice_message="\n".join(errors or lines[-5:]),
                                  run_dir=run_dir, netlist_path=netlist_path)
        try:
            return parse_raw(raw.read_bytes())
        finally:
            raw.unlink(missing_ok=True)


def _make_shared_class(base):
    """PySpice's NgSpiceShared with two fixes: the background-thread callback returns an int (PySpice 1.5
    returns None, which cffi reports on every bg_run), and simulation status messages ("tran: 45.2%")
    are kept for progress bars."""

    class _Shared(base):
        last_stat = ""

        @staticmethod
        def _background_thread_running(is_running, ngspice_id, user_data):
            from PySpice.Spice.NgSpice.Shared import ffi  # noqa: PLC0415
            ffi.from_handle(user_data)._is_running = is_running
            return 0

        def send_stat(self, message, ngspice_id):
            self.last_stat = message
            return 0

    return _Shared


def _stat_fraction(message: str) -> float | None:
    """'tran: 45.2%' -> 0.452."""
    if "%" not in message:
        return None
    try:
        return float(message.split(":")[-1].strip().rstrip("%")) / 100.0
    except ValueError:
        return None


class NgspiceShared:
    """ngspice in-process via PySpice (one simulator per process: run parallel work in processes)."""

    name = "ngspice-shared"
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._ng = None

    def _instance(self):
        if self._ng is None:
            logging.getLogger("PySpice").setLevel(logging.CRITICAL)
            from PySpice.Spice.NgSpice.Shared import NgSpiceShared as _NS  # noqa: PLC0415 - heavy import
            if not any(Path(p).exists() for p in LIB_CANDIDATES[2:]):
                for cand in LIB_CANDIDATES[:2]:
                    if Path(cand).exists():
                        _NS.LIBRARY_PATH = cand
            try:
                self._ng = _make_shared_class(_NS).new_instance()
            except OSError as e:
                raise SimulationError(f"cannot load libngspice ({e}); apt-get install libngspice0-dev") from None
        return self._ng

    def _command(self, cmd: str) -> list[str]:
        ng = self._instance()
        ng.clear_output()
        ng._error_in_stderr = ng._error_in_stdout = False
        rc = ng._ngspice_shared.ngSpice_Command(cmd.encode("ascii"))
        out = list(ng._stdout) + list(ng._stderr)
        if rc:
            raise SimulationError(f"ngspice command {cmd!r} returned {rc}", ngspice_message="\n".join(out))
        return out

    def run(self, netlist_path: Path, timeout_s: float | None = None, progress=None) -> dict[str, Waveforms]:
        """progress: optional callable(fraction in [0, 1]) fed from ngspice's status messages."""
        netlist_path = Path(netlist_path).resolve()
        run_dir = netlist_path.parent
        text = netlist_path.read_text()
        with self._lock, _in_dir(run_dir):
            ng = self._instance()
            try:
                ng.clear_output()
                ng._error_in_stderr = ng._error_in_stdout = False
                from PySpice.Spice.NgSpice.Shared import ffi, FFI  # noqa: PLC0415
                lines = [ln for ln in text.splitlines() if ln.strip()] + [""]
                keep = [ffi.new("char[]", ln.encode("utf8")) for ln in lines] + [FFI.NULL]
                rc = ng._ngspice_shared.ngSpice_Circ(ffi.new("char *[]", keep))
                out = list(ng._stdout) + list(ng._stderr)
                errors = _errors_in(out)
                if rc or errors:
                    raise SimulationError("ngspice could not load the netlist",
                                          ngspice_message="\n".join(errors or out[-5:]), run_dir=run_dir,
                                          netlist_path=netlist_path)
                self._run_with_timeout(timeout_s, run_dir, netlist_path, progress)
                return self._fetch_plots()
            finally:
                with contextlib.suppress(Exception):
                    self._command("destroy all")
                with contextlib.suppress(Exception):
                    self._command("remcirc")

    def _run_with_timeout(self, timeout_s: float | None, run_dir: Path, netlist_path: Path, progress=None) -> None:
        ng = self._instance()
        ng.clear_output()
        if timeout_s is None and progress is None:
            out = self._command("run")
        else:
            self._command("bg_run")
            t0 = time.monotonic()
            time.sleep(0.01)
            while ng._ngspice_shared.ngSpice_running():
                if progress is not None:
                    frac = _stat_fraction(ng.last_stat)
                    if frac is not None:
                        progress(frac)
                if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                    self._command("bg_halt")
                    while ng._ngspice_shared.ngSpice_running():
                        time.sleep(0.01)
                    raise SimulationError(f"ngspice did not finish within {timeout_s:g} s", run_dir=run_dir,
                                          netlist_path=netlist_path)
                time.sleep(0.02)
            out = list(ng._stdout) + list(ng._stderr)
        errors = _errors_in(out)
        if errors:
            raise SimulationError("ngspice failed", ngspice_message="\n".join(errors), run_dir=run_dir,
                                  netlist_path=netlist_path)

    def _fetch_plots(self) -> dict[str, Waveforms]:
        ng = self._instance()
        plots: dict[str, Waveforms] = {}
        for plot_name in ng.plot_names:
            if plot_name == "const":
                continue
            kind = _kind_of(plot_name)
            p = ng.plot(None, plot_name)
            vectors = {}
            for name, vec in p.items():
                key = name.lower()
                if not (key.startswith("v(") or key.startswith("i(") or key in ("time", "frequency")
                        or "#" in key or "noise" in key):
                    key = f"v({key})"
                vectors[key] = np.asarray(vec._data)
            kind = _refine_kind(kind, vectors)
            axis = None
            for ax in ("time", "frequency"):
                if ax in vectors:
                    axis = np.real(vectors[ax])
            plots[kind] = Waveforms(kind, axis, vectors)
        return plots


_BACKENDS = {"ngspice-shared": NgspiceShared, "ngspice-subprocess": NgspiceSubprocess}
_INSTANCES: dict[str, object] = {}


def get_backend(name: str):
    """The backend instance of that name (one per process)."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(_BACKENDS)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _BACKENDS[name]()
    return _INSTANCES[name]


def available() -> bool:
    """True when the ngspice executable is on PATH (the shared library is probed on first use)."""
    return shutil.which("ngspice") is not None
