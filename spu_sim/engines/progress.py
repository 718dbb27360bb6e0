"""What a terminal shows while an engine runs that does not report its progress (ngspice-subprocess, the linear
engines, any analysis but a shared-library transient): after DELAY_S, one line ``<what>: running, 12 s``
rewritten every second and cleared at the end. Nothing at all when stderr is not a terminal (logs, pipes,
tests) or the run ends first.

    with elapsed_line("engine linear"):
        plots = engine.run(circuit, folder)

The line is written with os.write on the stream's descriptor from a daemon thread (no Python stream lock held
across an engine's fork: spu_sim.engines.base.run_in_child forks while it runs).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import IO, Iterator

DELAY_S = 3.0      # runs shorter than this show nothing
EVERY_S = 1.0


@contextlib.contextmanager
def elapsed_line(what: str, stream: IO | None = None, delay_s: float | None = None,
                 every_s: float | None = None) -> Iterator[None]:
    """Show ``<what>: running, <s> s`` on the terminal stream (default sys.stderr) while the block runs (module
    doc); delay_s, every_s: default DELAY_S, EVERY_S."""
    stream = sys.stderr if stream is None else stream
    delay_s = DELAY_S if delay_s is None else delay_s
    every_s = EVERY_S if every_s is None else every_s
    try:
        fd = stream.fileno() if stream.isatty() else None
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is None:
        yield
        return
    stop = threading.Event()
    t0 = time.monotonic()
    width = [0]

    def tick() -> None:
        if stop.wait(delay_s):
            return
        while True:
            text = f"\r{what}: running, {time.monotonic() - t0:.0f} s"
            width[0] = len(text)
            with contextlib.suppress(OSError):
                os.write(fd, text.encode())
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=tick, name="spu-sim-elapsed", daemon=True)
    with contextlib.suppress(Exception):
        stream.flush()
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if width[0]:
            with contextlib.suppress(OSError):
                os.write(fd, ("\r" + " " * width[0] + "\r").encode())
