"""Error types of spu-sim.

Every error a user can cause or meet carries one readable line (``str(err)``). The CLI maps
``BadInputError`` (and its subclasses) to exit code 2 and every other ``SpuSimError`` to exit code 1,
printing only that line -- never a traceback.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np


MAX_MESSAGE_CHARS = 600
_LONG_INTEGER = re.compile(r"(?<![\w.])\d{22,}(?![\w.])")    # longer than any count a message means to show


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """text as one bounded line: newlines joined with ' | '; beyond limit characters the middle is cut (the head
    names the field, the tail usually the fix), saying how much."""
    line = " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
    line = _LONG_INTEGER.sub(lambda m: f"{float(m.group()):.6g}", line)   # a 200-digit integer reads as 1e+199
    if len(line) > limit:
        head, tail = line[:2 * limit // 3], line[-(limit // 3):]
        line = f"{head} ... ({len(line) - len(head) - len(tail)} characters cut) ... {tail}"
    return line


class SpuSimError(Exception):
    """Base class of every error spu-sim raises on purpose; its message is one bounded line."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(one_line(str(message)), *args)


class BadInputError(SpuSimError):
    """The user's input (config, matrix, vector, option) cannot be used. CLI exit code 2."""


class ConfigError(BadInputError):
    """A config file or dict failed validation; the message names the field path and the fix."""


class DesignError(BadInputError):
    """The problem cannot be realised with the configured component ranges (values, swing, bits)."""


class SimulationError(SpuSimError):
    """ngspice failed (no convergence, parse error, crash). CLI exit code 1.

    Carries ngspice's own message, the run folder and the netlist path so the user can rerun by hand.
    """

    def __init__(self, message: str, *, ngspice_message: str = "", run_dir: Path | None = None,
                 netlist_path: Path | None = None):
        self.message = str(message)     # without ngspice's message and the run folder (a caller re-raising it)
        self.ngspice_message = ngspice_message.strip()
        self.run_dir = run_dir
        self.netlist_path = netlist_path
        line = message
        if self.ngspice_message:
            first = " | ".join(l.strip() for l in self.ngspice_message.splitlines() if l.strip())[:500]
            line += f" (ngspice: {first})"
        if run_dir is not None:
            line += f" [run folder: {run_dir}]"
        super().__init__(line)


class ResultError(SpuSimError):
    """A result that is not a number (NaN or inf) reached publication: nothing is published. CLI exit code 1."""


class TrainingDiverged(SpuSimError):
    """An optimiser of ``spu-sim train`` diverged: the outputs are published with it marked, and the command says so
    (CLI exit code 1) so that no script takes its numbers for a result."""


@contextlib.contextmanager
def numbers_checked(where: str, fix: str) -> Iterator[None]:
    """Run a block whose arithmetic follows from the user's input (a design, a problem's matrices, an engine's
    set-up) with every floating-point overflow, division by zero, invalid operation and RuntimeWarning raised as an
    error, and report it as BadInputError naming ``where`` (the config key or section) and ``fix``: so a value
    that overflows float64 stops at its cause with exit 2, instead of a NaN result, an internal failure or
    warning lines on stderr.

        with numbers_checked("circuit.sc", "bring f_clk_hz, c_unit_farad, r_on_ohm into a realistic range"):
            design = topology.design(problem, cfg.circuit, cfg.simulation)
    """
    try:
        with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
            warnings.simplefilter("error", RuntimeWarning)
            yield
    except (FloatingPointError, OverflowError, ZeroDivisionError, RuntimeWarning, np.linalg.LinAlgError) as e:
        raise BadInputError(f"{where}: the values given leave floating-point range or make a matrix singular "
                            f"({type(e).__name__}: {one_line(str(e), 120)}); {fix}") from None
