"""Measure fersweep's speed on the real data.

    python bench.py [bench.<key>=<value> ...] [<config override> ...]

`bench.epochs=2` changes what is measured (bench/default.yaml); any other override applies to
every measurement (e.g. `trainer=gpu`).
"""

import sys
from pathlib import Path

from fersweep.tasks.bench import main

if __name__ == "__main__":
    main(Path(__file__).resolve().parent, sys.argv[1:])
