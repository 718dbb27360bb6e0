"""Result files: written atomically (temp file in the same folder, then os.replace), never half-way.

A run stages everything in a private folder inside OUT and only moves finished files into OUT at the
end, so an interrupted or failed run leaves earlier results untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


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


def new_stage(out_dir: Path) -> Path:
    """A private staging folder inside out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out_dir, prefix=".stage-"))


def publish(stage: Path, out_dir: Path) -> list[Path]:
    """Move every file of the stage into out_dir (each an atomic rename), then remove the stage."""
    moved = []
    for f in sorted(Path(stage).iterdir()):
        if f.is_file():
            dest = Path(out_dir) / f.name
            os.replace(f, dest)
            moved.append(dest)
    shutil.rmtree(stage, ignore_errors=True)
    return moved


def keep_failed_stage(stage: Path, out_dir: Path) -> Path:
    """Rename a failed run's stage to out_dir/failed-<time> so the user can rerun it by hand."""
    dest = Path(out_dir) / time.strftime("failed-%Y%m%d-%H%M%S")
    k = 0
    while dest.exists():
        k += 1
        dest = Path(out_dir) / (time.strftime("failed-%Y%m%d-%H%M%S") + f"-{k}")
    os.replace(stage, dest)
    return dest
