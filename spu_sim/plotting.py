"""matplotlib, loaded only when a plot is drawn (it is an optional heavy dependency for a command that plots
nothing), always on the Agg backend and without LaTeX; and the one way a figure is written.

    plt = pyplot()
    fig, ax = plt.subplots()
    ...
    save_png(fig, out / "waveforms.png")
"""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use)."""
    import matplotlib  # noqa: PLC0415 - optional heavy dependency, loaded only to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def save_png(fig, path: Path) -> Path:
    """tight_layout, write atomically (temp file + rename), close the figure."""
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    pyplot().close(fig)
    tmp.replace(path)
    return path
