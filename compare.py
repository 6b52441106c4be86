"""Compare two arms honestly.

    python compare.py [compare.<key>=<value> ...] [<config override> ...]

`compare.seeds=[1,2]` changes the definition (comparisons/compare.yaml); any other override applies
to every run.
"""

import sys
from pathlib import Path

from fersweep.errors import exits_cleanly
from fersweep.tasks.compare import run_comparison

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


@exits_cleanly
def main(argv: list[str]) -> None:
    run_comparison(CONFIG_DIR, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
