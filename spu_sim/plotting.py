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


def integer_ticks(axis) -> None:
    """Ticks at whole numbers only on ``axis`` (ax.yaxis / ax.xaxis): for counts (a histogram's runs)."""
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415 - optional heavy dependency, loaded only to draw

    axis.set_major_locator(MaxNLocator(integer=True))


def no_minor_labels(axis) -> None:
    """No labels at the minor ticks of a log ``axis`` (matplotlib labels them when a range spans under a decade,
    and they overlap)."""
    from matplotlib.ticker import NullFormatter  # noqa: PLC0415 - optional heavy dependency, loaded only to draw

    axis.set_minor_formatter(NullFormatter())


def variable_ticks(ax, d: int) -> None:
    """Heat-map axes named like the waveforms and the netlist's nodes: x1 .. xd (1-based), at most 10 labels."""
    step = max(1, -(-d // 10))
    idx = list(range(0, d, step))
    ax.set_xticks(idx, [f"x{k + 1}" for k in idx])
    ax.set_yticks(idx, [f"x{k + 1}" for k in idx])
    ax.set_xlabel("variable j")
    ax.set_ylabel("variable i")


def save_png(fig, path: Path) -> Path:
    """tight_layout, write atomically (temp file + rename), close the figure."""
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    pyplot().close(fig)
    tmp.replace(path)
    return path
