"""Result files: written atomically (temp file in the same folder, then os.replace), never half-way.

A run stages everything in a private folder inside OUT and only moves finished files into OUT at the
end, so an interrupted or failed run leaves earlier results untouched. While it runs it holds an exclusive
lock on OUT (a second run into the same folder is refused with one line); publishing removes what an earlier
run of the same family left behind, so a folder never mixes two runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BadInputError


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    import fcntl  # noqa: PLC0415
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


def publish(stage: Path, out_dir: Path, family: str = "run") -> list[Path]:
    """Move every file of the stage into out_dir (each an atomic rename), remove the files an earlier publish
    of the same family left that this one does not replace, record the family's files in the folder's
    manifest, then remove the stage and release the lock.

    Families: ``run`` (netlist / simulate / compare share the same files), ``noise``, one per experiment. So a
    folder never holds outputs of two runs of one family (e.g. noise_5..8.txt of a d = 8 run beside a d = 4
    result, or the plots of an earlier compare beside a new simulate's result).
    """
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    old = set(manifest.get(family, {}).get("files", []))
    manifest.pop(family, None)
    atomic_write_json(out_dir / MANIFEST_NAME, manifest)       # the family is incomplete until re-recorded
    moved = []
    try:
        for f in sorted(Path(stage).iterdir()):
            if f.is_file():
                dest = out_dir / f.name
                os.replace(f, dest)
                moved.append(dest)
        names = {m.name for m in moved}
        for name in old - names:
            if "/" not in name and name not in (MANIFEST_NAME, LOCK_NAME):
                (out_dir / name).unlink(missing_ok=True)
        manifest[family] = {"files": sorted(names), "published_unix_s": time.time()}
        atomic_write_json(out_dir / MANIFEST_NAME, manifest)
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
