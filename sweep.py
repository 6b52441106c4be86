"""Run or resume a sweep.

    python sweep.py [sweeps@sweep=<name>] [sweep.<key>=<value> ...] [<config override> ...]

`sweeps@sweep=tiny` picks sweeps/tiny.yaml (default: sweeps/default.yaml);
`sweep.trials=10 sweep.workers=2 sweep.storage=postgresql://...` change the definition; any
other override applies to every trial (e.g. `trainer.max_epochs=3`).
"""

import sys
from pathlib import Path

from fersweep.errors import exits_cleanly
from fersweep.tasks.sweep import Sweep, run_sweep

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


@exits_cleanly
def main(argv: list[str]) -> None:
    run_sweep(Sweep.compose(CONFIG_DIR, argv))


if __name__ == "__main__":
    main(sys.argv[1:])
