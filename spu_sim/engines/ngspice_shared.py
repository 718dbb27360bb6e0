"""Engine ``ngspice-shared``: ngspice in-process through PySpice's NgSpiceShared (libngspice).

Loads the netlist without its ``.control`` block (spu_sim.spice.without_control: the block is for plain
``ngspice -b``; here the analyses are run by ``bg_run``, once), runs it in its folder (so relative file names such as noise_1.txt resolve), fetches every
vector of every plot, then sends ``destroy all`` and ``remcirc`` so memory does not grow. One simulator per
process: run parallel work in processes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

import numpy as np

from ..circuit import Circuit
from ..errors import SimulationError
from ..spice import netlist_in, without_control
from .base import ENGINES, Cost, Workload, file_engine_cost, run_in_child
from .raw import Waveforms, errors_in, in_dir, kind_of, number_noise_plots, refine_kind

POLL_S = 0.005   # how often a running simulation is polled (progress, Ctrl-C; at most this much latency at its end)
LIB_CANDIDATES = ("/usr/lib/x86_64-linux-gnu/libngspice.so.0", "/usr/lib/aarch64-linux-gnu/libngspice.so.0",
                  "/usr/lib/x86_64-linux-gnu/libngspice.so", "/usr/lib/aarch64-linux-gnu/libngspice.so")


def _make_shared_class(base):
    """PySpice's NgSpiceShared with two fixes: the background-thread callback returns an int (PySpice 1.5
    returns None, which cffi reports on every bg_run), and simulation status messages ("tran: 45.2%")
    are kept for progress bars."""

    class _Shared(base):
        last_stat = ""

        bg_done = threading.Event()     # set when ngspice's background thread reports that it ended

        @staticmethod
        def _background_thread_running(is_running, ngspice_id, user_data):
            from PySpice.Spice.NgSpice.Shared import ffi  # noqa: PLC0415
            obj = ffi.from_handle(user_data)
            obj._is_running = is_running
            if not is_running:
                obj.bg_done.set()
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


@ENGINES.add
class NgspiceShared:
    """ngspice in-process via PySpice (one simulator per process: run parallel work in processes)."""

    name = "ngspice-shared"
    sign_off = True   # the reference engine results are signed off against
    reads_files = True   # runs the netlist file written into the run folder

    def estimate(self, work: Workload) -> Cost:
        """Noise files and netlist on disk for every run; noise tables and vectors in memory (base.file_engine_cost)."""
        return file_engine_cost(work)

    def check(self, circuit: Circuit) -> None:
        """ngspice runs every element and analysis spu-sim builds: nothing to refuse up front."""
    reports_progress = True
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

    def run(self, circuit: Circuit, run_dir: Path, *, timeout_s: float | None = None,
            progress=None) -> dict[str, Waveforms]:
        """progress: optional callable(fraction in [0, 1]) fed from ngspice's status messages."""
        return self.run_netlist(netlist_in(circuit, run_dir), timeout_s=timeout_s, progress=progress)

    def run_netlist(self, netlist_path: Path, *, timeout_s: float | None = None,
                    progress=None) -> dict[str, Waveforms]:
        """Run a netlist file as it is, in its folder.

        With a timeout the run happens in a forked child process that is killed at the limit: ngspice's own
        halt does not stop an operating point or a netlist load, a killed process does. Without one it runs
        in this process, polled, so that Ctrl-C halts ngspice before the KeyboardInterrupt propagates.
        """
        netlist_path = Path(netlist_path).resolve()
        if timeout_s is not None:
            return self._run_in_child(netlist_path, timeout_s, progress)
        return self._run_here(netlist_path, progress)

    def _run_in_child(self, netlist_path: Path, timeout_s: float, progress) -> dict[str, Waveforms]:
        def fresh_lock() -> None:
            NgspiceShared._lock = threading.Lock()     # the parent held its lock across the fork
        with self._lock:                               # no other thread of ours is inside ngspice while we fork
            return run_in_child(lambda report: self._run_here(netlist_path, progress=report), timeout_s, progress,
                                what="ngspice", run_dir=netlist_path.parent, child_setup=fresh_lock)

    def _run_here(self, netlist_path: Path, progress=None) -> dict[str, Waveforms]:
        run_dir = netlist_path.parent
        text = without_control(netlist_path.read_text())
        with self._lock, in_dir(run_dir):
            ng = self._instance()
            try:
                ng.clear_output()
                ng._error_in_stderr = ng._error_in_stdout = False
                from PySpice.Spice.NgSpice.Shared import ffi, FFI  # noqa: PLC0415
                lines = [ln for ln in text.splitlines() if ln.strip()] + [""]
                keep = [ffi.new("char[]", ln.encode("utf8")) for ln in lines] + [FFI.NULL]
                rc = ng._ngspice_shared.ngSpice_Circ(ffi.new("char *[]", keep))
                out = list(ng._stdout) + list(ng._stderr)
                errors = errors_in(out)
                if rc or errors:
                    raise SimulationError("ngspice could not load the netlist",
                                          ngspice_message="\n".join(errors or out[-5:]), run_dir=run_dir,
                                          netlist_path=netlist_path)
                self._run_polled(run_dir, netlist_path, progress)
                return self._fetch_plots()
            finally:
                with contextlib.suppress(Exception):
                    self._command("destroy all")
                with contextlib.suppress(Exception):
                    self._command("remcirc")

    def _run_polled(self, run_dir: Path, netlist_path: Path, progress=None) -> None:
        """bg_run and poll: progress from ngspice's status; any interruption (Ctrl-C) halts ngspice and waits for
        its thread before it propagates (a live background thread at exit is what crashed the process)."""
        ng = self._instance()
        ng.clear_output()
        ng.bg_done = threading.Event()
        self._command("bg_run")
        try:
            # the thread may not have started when bg_run returns: wait for its end signal, not for "not running"
            # (bounded: a thread that never reports is taken as ended after 2 s of not running). The signal can
            # come while the thread still runs (ngspice 39 reports "not running" as its thread starts: measured),
            # so every pass sleeps POLL_S: polling without it spun a core (2.4 million passes in a 10 s run).
            idle_since = time.monotonic()
            while True:
                ended = ng.bg_done.wait(POLL_S)
                running = ng._ngspice_shared.ngSpice_running()
                if ended and not running:
                    break
                if running:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 2.0:
                    break
                if ended:
                    time.sleep(POLL_S)
                if progress is not None:
                    frac = _stat_fraction(ng.last_stat)
                    if frac is not None:
                        progress(frac)
        except BaseException:
            with contextlib.suppress(Exception):
                self._command("bg_halt")
            t0 = time.monotonic()
            while ng._ngspice_shared.ngSpice_running() and time.monotonic() - t0 < 10.0:
                time.sleep(0.01)
            raise
        out = list(ng._stdout) + list(ng._stderr)
        errors = errors_in(out)
        if errors:
            raise SimulationError("ngspice failed", ngspice_message="\n".join(errors), run_dir=run_dir,
                                  netlist_path=netlist_path)

    def _fetch_plots(self) -> dict[str, Waveforms]:
        ng = self._instance()
        plots: dict[str, Waveforms] = {}
        noise: list[tuple[int, Waveforms]] = []
        for plot_name in ng.plot_names:
            if plot_name == "const":
                continue
            kind = kind_of(plot_name)
            p = ng.plot(None, plot_name)
            vectors = {}
            for name, vec in p.items():
                key = name.lower()
                if not (key.startswith("v(") or key.startswith("i(") or key in ("time", "frequency")
                        or "#" in key or "noise" in key):
                    key = f"v({key})"
                vectors[key] = np.asarray(vec._data)
            kind = refine_kind(kind, vectors)
            axis = None
            for ax in ("time", "frequency"):
                if ax in vectors:
                    axis = np.real(vectors[ax])
            if kind in ("noise", "noise_total"):  # noise1, noise2, ...: ngspice's creation (execution) order
                digits = "".join(c for c in plot_name if c.isdigit())
                noise.append((int(digits or 0), Waveforms(kind, axis, vectors)))
            else:
                plots[kind] = Waveforms(kind, axis, vectors)
        plots.update(number_noise_plots([w for _, w in sorted(noise, key=lambda nw: nw[0])]))
        return plots



