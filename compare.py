"""Compare two arms honestly.

    python compare.py [sweeps/compare.yaml] [compare.<key>=<value> ...] [<config override> ...]

`compare.seeds=[1,2]` changes the definition; any other override applies to every run.
"""

import sys
from pathlib import Path

from fersweep.compare import ComparisonDefinition, run_comparison
from fersweep.config import split_arguments
from fersweep.errors import exits_cleanly

ROOT = Path(__file__).resolve().parent


@exits_cleanly
def main(argv: list[str]) -> None:
    path, own, overrides = split_arguments(argv, ROOT / "sweeps/compare.yaml", "compare.")
    run_comparison(ComparisonDefinition.load(path, own), ROOT / "conf", overrides)


if __name__ == "__main__":
    main(sys.argv[1:])
