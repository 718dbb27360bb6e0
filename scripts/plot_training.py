"""Re-make the plots of a training run from its saved files (history.csv, config.yaml); never trains.

    python scripts/plot_training.py runs/train
"""

from __future__ import annotations

import sys

from spu_sim.train.plots import plot_run


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in plot_run(argv[0]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
