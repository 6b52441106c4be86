"""Run or resume a sweep.

    python sweep.py [sweeps/default.yaml] [sweep.<key>=<value> ...] [<config override> ...]

`sweep.trials=10 sweep.workers=2 sweep.storage=postgresql://...` change the definition; any
other override applies to every trial (e.g. `trainer.max_epochs=3`).
"""

import sys
from pathlib import Path

from fersweep.config import split_arguments
from fersweep.errors import exits_cleanly
from fersweep.sweep import Sweep, SweepDefinition, run_sweep

ROOT = Path(__file__).resolve().parent


@exits_cleanly
def main(argv: list[str]) -> None:
    path, own, overrides = split_arguments(argv, ROOT / "sweeps/default.yaml", "sweep.")
    run_sweep(Sweep(SweepDefinition.load(path, own), ROOT / "conf", overrides))


if __name__ == "__main__":
    main(sys.argv[1:])
