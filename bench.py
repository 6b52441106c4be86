"""Measure fersweep's speed on the real data: `python bench.py [key=value ...]` (bench/default.yaml)."""

import sys
from pathlib import Path

from fersweep.bench import main

if __name__ == "__main__":
    main(Path(__file__).resolve().parent, sys.argv[1:])
