"""Compare two arms honestly.

    python compare.py [sweeps/compare.yaml] [compare.<key>=<value> ...] [<config override> ...]

`compare.seeds=[1,2]` changes the definition; any other override applies to every run.
"""

import sys
from pathlib import Path

from fersweep.compare import ComparisonDefinition, run_comparison
from fersweep.errors import exits_cleanly

ROOT = Path(__file__).resolve().parent
PREFIX = "compare."


@exits_cleanly
def main(argv: list[str]) -> None:
    path = argv.pop(0) if argv and argv[0].endswith(".yaml") else ROOT / "sweeps/compare.yaml"
    own = [a.removeprefix(PREFIX) for a in argv if a.startswith(PREFIX)]
    overrides = [a for a in argv if not a.startswith(PREFIX)]
    run_comparison(ComparisonDefinition.load(path, own), ROOT / "conf", overrides)


if __name__ == "__main__":
    main(sys.argv[1:])
