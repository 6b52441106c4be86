"""Print the README's table from the comparison's summary.json (the numbers are copied, not typed).

    python results/2026-11-28-compare-folds/table.py results/2026-11-28-compare-folds/summary.json
"""

import json
import sys

summary = json.load(open(sys.argv[1]))
print("| arm | pooled macro F1 | balanced accuracy | network alone | Δ vs original [95% interval, people] | per fold (mean ± sd) |")
print("| --- | --- | --- | --- | --- | --- |")
for row in summary["arms"]:
    d = summary["differences"].get(row["arm"])
    delta = f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d else "—"
    print(
        f"| {row['arm']} | {row['macro F1']:.3f} | {row['balanced accuracy']:.3f} | "
        f"{row['network alone']:.3f} | {delta} | {row['per run mean']:.3f} ± {row['per run sd']:.3f} |"
    )
print()
print("| emotion | test images | " + " | ".join(r["arm"] for r in summary["arms"]) + " |")
print("| --- | --- | " + " | ".join("---" for _ in summary["arms"]) + " |")
for row in summary["per_class"]:
    cells = " | ".join(f"{row[r['arm']]:.3f}" for r in summary["arms"])
    print(f"| {row['emotion']} | {row['test images']} | {cells} |")
