"""Engine ``ngspice-subprocess``: plain ``ngspice -b netlist.cir`` in a subprocess, exactly what a user runs by
hand: the netlist's own control block runs the analyses once and writes netlist.raw (spu_sim.spice), which is
parsed here and removed (isolation, a per-run timeout that kills the process, and the reference for plain use).
A netlist without that block runs as ``ngspice -b -r out.raw FILE``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..circuit import Circuit, Noise
from ..errors import SimulationError
from ..spice import netlist_in, raw_file_of
from .base import ENGINES, Cost, Workload, file_engine_cost
from .raw import Waveforms, errors_in, number_noise_plots, parse_raw_list


@ENGINES.add
class NgspiceSubprocess:
    name = "ngspice-subprocess"
    sign_off = True   # the reference engine results are signed off against
    reads_files = True   # runs the netlist file written into the run folder

    def estimate(self, work: Workload) -> Cost:
        """Noise files and netlist on disk for every run; noise tables and vectors in memory (base.file_engine_cost)."""
        return file_engine_cost(work)

    def check(self, circuit: Circuit) -> None:
        """ngspice runs every element and analysis spu-sim builds: nothing to refuse up front."""
    reports_progress = False

    def run(self, circuit: Circuit, run_dir: Path, *, timeout_s: float | None = None,
            progress=None) -> dict[str, Waveforms]:
        """progress is accepted for interface parity and ignored (ngspice -b reports nothing usable)."""
        plots = self.run_netlist(netlist_in(circuit, run_dir), timeout_s=timeout_s)
        n_noise = sum(isinstance(a, Noise) for a in circuit.analyses)
        got = sum(k.startswith("noise_total_") for k in plots)
        if got != n_noise:
            raise SimulationError(f"expected {n_noise} noise results, got {got}", run_dir=Path(run_dir))
        return plots

    def run_netlist(self, netlist_path: Path, *, timeout_s: float | None = None) -> dict[str, Waveforms]:
        """Run a netlist file as it is (its folder is the working directory): what a user does by hand."""
        netlist_path = Path(netlist_path).resolve()
        run_dir = netlist_path.parent
        exe = shutil.which("ngspice")
        if exe is None:
            raise SimulationError("ngspice is not installed (apt-get install ngspice)", run_dir=run_dir)
        own = raw_file_of(netlist_path.read_text())
        raw = run_dir / (own or "out.raw")
        raw.unlink(missing_ok=True)
        cmd = [exe, "-b", netlist_path.name] if own else [exe, "-b", "-r", raw.name, netlist_path.name]
        try:
            proc = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SimulationError(f"ngspice did not finish within {timeout_s:g} s", run_dir=run_dir,
                                  netlist_path=netlist_path) from None
        lines = (proc.stdout + "\n" + proc.stderr).splitlines()
        errors = errors_in(lines)
        if proc.returncode != 0 or errors or not raw.is_file():
            raise SimulationError("ngspice failed", ngspice_message="\n".join(errors or lines[-5:]),
                                  run_dir=run_dir, netlist_path=netlist_path)
        try:
            plots = parse_raw_list(raw.read_bytes())
        finally:
            raw.unlink(missing_ok=True)
        out = {p.kind: p for p in plots if p.kind not in ("noise", "noise_total")}
        out.update(number_noise_plots(plots))
        return out
