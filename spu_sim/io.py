"""Result files: written atomically (temp file in the same folder, then os.replace), never half-way.

A run stages everything in a private folder inside OUT and only moves finished files into OUT at the
end, so an interrupted or failed run leaves earlier results untouched. While it runs it holds an exclusive
lock on OUT (a second run into the same folder is refused with one line); publishing removes what an earlier
run of any family left behind (the manifest lists each family's files), so a folder never mixes two runs.

Throw-away runs work in ``temp_folder()``: a ``spu-sim-*`` folder in the system's temporary folder that holds
a lock while in use; a folder whose lock is free belongs to a killed process and is removed by the next one.
"""

from __future__ import annotations

import fnmatch
import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BadInputError, ResultError, SimulationError


def atomic_write_text(path: Path, text: str) -> None:
    """``text`` as UTF-8 into ``path``, atomically (atomic_write_bytes)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def atomic_save_npz(path: Path, **arrays: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def safe_file_name(name: str, field: str) -> str:
    """A name that becomes (part of) a file name inside an out folder: letters, digits, '_', '.', '-', not
    starting with '.', at most 100 characters -- so no '/' or '..' can leave the folder. BadInputError otherwise."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise BadInputError(f"{field}: {name!r:.60} cannot be a file name (use letters, digits, '_', '.', '-'; no "
                            "'/', no '..', not starting with '.')")
    return name


def path_in(out_dir: Path, name: str, field: str) -> Path:
    """out_dir/name for a checked name (see safe_file_name)."""
    return Path(out_dir) / safe_file_name(name, field)


LOCK_NAME = ".spu-sim.lock"
MANIFEST_NAME = ".spu-sim-manifest.json"
_LOCKS: dict[Path, int] = {}   # stage folder -> file descriptor holding the out folder's lock


def check_out_dir(out_dir: Path) -> Path:
    """out_dir as a folder that can be written, created if missing; BadInputError (one line) otherwise."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"--out {out_dir}: is a file, not a folder; give a folder path")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(f"--out {out_dir}: cannot create the folder ({e.strerror}); choose another path") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise BadInputError(f"--out {out_dir}: the folder is not writable; choose another path")
    return out_dir


def _lock(out_dir: Path) -> int:
    """An exclusive lock on out_dir (held until publish/discard); a second run into it is refused."""
    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise BadInputError(f"--out {out_dir}: another spu-sim run is writing into this folder; wait for it to "
                            "finish or choose another --out") from None
    return fd


def _unlock(stage: Path) -> None:
    fd = _LOCKS.pop(Path(stage), None)
    if fd is not None:
        os.close(fd)   # closing the descriptor releases the flock


def new_stage(out_dir: Path) -> Path:
    """A private staging folder inside out_dir, with out_dir locked for this run until publish/discard.

    Holding the lock, every older ``.stage-*`` folder is an orphan of a killed run: removed here.
    """
    out_dir = check_out_dir(out_dir)
    fd = _lock(out_dir)
    try:
        for old in out_dir.glob(".stage-*"):
            shutil.rmtree(old, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(dir=out_dir, prefix=".stage-"))
    except BaseException:
        os.close(fd)
        raise
    _LOCKS[stage] = fd
    return stage


def discard(stage: Path) -> None:
    """Remove a stage that will not be published (and release the out folder)."""
    shutil.rmtree(stage, ignore_errors=True)
    _unlock(stage)


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(out_dir) / MANIFEST_NAME).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


#: (file, key pattern) of the values that are NaN or inf by convention when a quantity was not measured in this run
#: or is absent, never because arithmetic failed: the operating point or the statistics of a run without .op or
#: .tran (its settling, energy, power and run time), the time of a phase that did not run, a supply energy without a supply model, the spread of one
#: replicate or a time that was never reached (a settling time of a run that did not settle), the errors of an
#: array_limits point whose design was refused (its note says why), the measured columns of theory-only rows, the losses of an
#: optimiser marked ``diverged``, an absent noise resistor (inf ohm). Every other number published must be finite
#: (check_finite). Patterns are fnmatch patterns; a JSON key matches at any depth.
NOT_MEASURED: tuple[tuple[str, str], ...] = (
    ("result.npz", "x_op"), ("result.npz", "x_mean"), ("result.npz", "x_cov"), ("result.npz", "timings_s"),
    ("reference.npz", "conv_*_expected"), ("design.json", "r_noise_ohm"),
    ("metrics.json", "energy_supply_j"), ("metrics.json", "time_design_s"),
    ("scaling.json", "*_sem"), ("scaling.json", "t_conv_tau"), ("scaling.json", "loglog_slope"),
    ("sc_clock.npz", "measured_*"), ("sc_clock.npz", "expected_*"), ("sc_clock.npz", "wall_s"),
    ("metrics.json", "settle_measured_*"), ("metrics.json", "energy_resistive_j"), ("metrics.json", "power_*_mean_w"),
    ("metrics.json", "run_time_s"), ("array_limits.npz", "*_rel"),
    ("summary.json", "final_*"), ("summary.json", "best_test_accuracy"), ("summary.json", "mean_nat_grad_rel_error"),
)


def not_measured(file: str, key: str) -> bool:
    """May ``key`` of ``file`` be NaN / inf (NOT_MEASURED)?"""
    return any(file == f and fnmatch.fnmatchcase(key, k) for f, k in NOT_MEASURED)


def _nonfinite_json(value: Any, where: str, file: str, key: str = "") -> str | None:
    """The path of the first NaN / inf number in parsed JSON that is not a NOT_MEASURED key, or None."""
    if not_measured(file, key):
        return None
    if isinstance(value, float) and not np.isfinite(value):
        return f"{where} = {value}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        sub = f"{where}[{k}]" if isinstance(k, int) else f"{where}.{k}" if where else str(k)
        found = _nonfinite_json(v, sub, file, key if isinstance(k, int) else str(k))
        if found:
            return found
    return None


def check_finite(folder: Path) -> None:
    """The finiteness gate of every published result: each number in the folder's .npz and .json files is finite,
    else ResultError naming the file, the key and how many values are not numbers. ``null`` in JSON (a quantity
    not measured) and non-float arrays pass. Called by publish, so no NaN or inf result is ever published."""
    for f in sorted(Path(folder).iterdir()):
        if f.suffix == ".npz":
            with np.load(f, allow_pickle=False) as z:
                for key in z.files:
                    if not_measured(f.name, key):
                        continue
                    a = z[key]
                    if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
                        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
                        raise ResultError(f"{f.name}: {key} holds {bad} of {a.size} values that are not finite "
                                          "numbers (NaN or inf); nothing was published. The engine's arithmetic "
                                          "left floating-point range: check the config's scales (values far from "
                                          "the shipped configs') or report it")
        elif f.suffix == ".json":
            found = _nonfinite_json(json.loads(f.read_text(), parse_constant=float), "", f.name)
            if found:
                raise ResultError(f"{f.name}: {found} is not a finite number; nothing was published (a quantity "
                                  "that cannot be measured is null, not NaN): check the config's scales or report it")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _published_names(manifest: dict[str, Any]) -> set[str]:
    """Every name any family of the manifest recorded (plain names inside the folder only)."""
    names: set[str] = set()
    for entry in manifest.values():
        if isinstance(entry, dict) and isinstance(entry.get("files"), list):
            names.update(n for n in entry["files"] if isinstance(n, str) and "/" not in n and n not in ("", ".", ".."))
    return names - {MANIFEST_NAME, LOCK_NAME}


def claim(out_dir: Path, family: str, names: list[str] | set[str]) -> None:
    """Record ``names`` (files or folders directly in out_dir) as the folder's one run, of ``family``, removing
    every other name an earlier run of any family recorded. Call it holding the folder's lock (publish does;
    a sweep, which writes its files in place, calls it itself)."""
    out_dir = Path(out_dir)
    names = set(names)
    old = _published_names(_read_manifest(out_dir))
    atomic_write_json(out_dir / MANIFEST_NAME, {})       # incomplete until re-recorded
    for name in old - names:
        _remove(out_dir / name)
    atomic_write_json(out_dir / MANIFEST_NAME,
                      {family: {"files": sorted(names), "published_unix_s": time.time()}})


def publish(stage: Path, out_dir: Path, family: str = "run") -> list[Path]:
    """Move every file of the stage (and every folder holding a run published inside it, e.g. OUT/run/ of an
    experiment) into out_dir (each an atomic rename), remove everything an
    earlier run of any family recorded that this one does not replace, record this run's names in the folder's
    manifest (``claim``), then remove the stage and release the lock.

    Families name what produced the folder (``run``: netlist / simulate / compare; ``noise``, ``crosscheck``,
    ``train``, ``sweep``, one per experiment); a folder holds the files of one run only, so e.g. crosscheck's
    noise files of d = 2 never sit beside compare's result of d = 4, nor a sweep's runs/ beside train's summary.
    Nothing is published if a number in the stage is not finite (check_finite: ResultError, the stage removed,
    the folder as it was).
    """
    out_dir = Path(out_dir)
    try:
        check_finite(stage)
    except BaseException:
        discard(stage)
        raise
    manifest = _read_manifest(out_dir)
    old = _published_names(manifest)
    atomic_write_json(out_dir / MANIFEST_NAME, {})       # the folder is incomplete until re-recorded
    moved = []
    try:
        for f in sorted(Path(stage).iterdir()):
            dest = out_dir / f.name
            if f.is_dir() and (f / MANIFEST_NAME).is_file():   # a run published inside the stage: moved whole
                if dest.exists() or dest.is_symlink():
                    _remove(dest)
            elif not f.is_file():
                continue                                       # scratch folders of the run are not results
            os.replace(f, dest)
            moved.append(dest)
        names = {m.name for m in moved}
        for name in old - names:
            _remove(out_dir / name)
        atomic_write_json(out_dir / MANIFEST_NAME, {family: {"files": sorted(names), "published_unix_s": time.time()}})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        _unlock(stage)
    return moved


def keep_failed_stage(stage: Path, out_dir: Path) -> Path:
    """Rename a failed run's stage to out_dir/failed-<time> so the user can rerun it by hand."""
    dest = Path(out_dir) / time.strftime("failed-%Y%m%d-%H%M%S")
    k = 0
    while dest.exists():
        k += 1
        dest = Path(out_dir) / (time.strftime("failed-%Y%m%d-%H%M%S") + f"-{k}")
    os.replace(stage, dest)
    _unlock(stage)
    return dest


TEMP_PREFIX = "spu-sim-"
_TEMP_LOCK = ".in-use"


@contextlib.contextmanager
def temp_folder(prefix: str = TEMP_PREFIX):
    """A private temporary folder (``<tmp>/spu-sim-*``) removed on exit, locked while in use.

    A process killed by SIGKILL or a timed-out worker ended by SIGTERM cannot remove its folder; the lock
    file inside dies with it, so the next call removes every ``spu-sim-*`` folder whose lock is free (never
    one in use by a live process, which holds its lock).
    """
    root = Path(tempfile.gettempdir())
    _remove_orphan_temp_folders(root)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    fd = os.open(path / (_TEMP_LOCK + ".new"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)           # locked before it gets the name the sweep looks for
        os.rename(path / (_TEMP_LOCK + ".new"), path / _TEMP_LOCK)
        yield path
    except SimulationError as err:   # its run folder is about to go: never name it as one to look into
        run_dir = err.run_dir
        if run_dir is None or not Path(run_dir).resolve().is_relative_to(path.resolve()):
            raise
        raise SimulationError(f"{err.message} (a throw-away run: its temporary folder is removed with "
                              "its files)", ngspice_message=err.ngspice_message) from None
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def _remove_orphan_temp_folders(root: Path) -> None:
    for folder in root.glob(TEMP_PREFIX + "*"):
        lock = folder / _TEMP_LOCK
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue              # not ours, or being created / removed right now
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)          # in use by a live process
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)
