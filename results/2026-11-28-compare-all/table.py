"""Print the README's tables from the comparison's summary.json (the numbers are copied, not typed):
the arms and per-emotion tables as results/2026-11-28-compare-folds/table.py prints them, then
the seed-protocol references.

    python results/2026-11-28-compare-all/table.py results/2026-11-28-compare-all/summary.json
"""

import json
import runpy
import sys
from pathlib import Path

runpy.run_path(str(Path(__file__).parent.parent / "2026-11-28-compare-folds" / "table.py"))
print()
for ref in json.load(open(sys.argv[1]))["references"]:
    print(
        f"- {ref['experiment']}: {ref['test images']} test images, accuracy "
        f"{ref['accuracy mean']:.3f}, macro F1 {ref['macro F1 mean']:.3f} ({ref['runs']} run)"
    )
