"""A five-minute look at fersweep: `python demo.py [<override> ...]` (`make demo`)."""

import sys
from pathlib import Path

from fersweep.errors import exits_cleanly
from fersweep.tasks.demo import run_demo

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


@exits_cleanly
def main(argv: list[str]) -> None:
    run_demo(CONFIG_DIR, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
