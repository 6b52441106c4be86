"""Print the README's tables from the comparison's summary.json (the numbers are copied, not typed).

    python results/2026-11-28-compare-all/table.py results/2026-11-28-compare-all/summary.json
"""

import json
import sys

summary = json.load(open(sys.argv[1]))
arms = summary["arms"]
print("| arm | pooled macro F1 | balanced accuracy | network alone | Δ vs original [95% interval, people] | per fold (mean ± sd) |")
print("| --- | --- | --- | --- | --- | --- |")
for row in arms:
    d = summary["differences"].get(row["arm"])
    delta = f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d else "—"
    print(
        f"| {row['arm']} | {row['macro F1']:.3f} | {row['balanced accuracy']:.3f} | "
        f"{row['network alone']:.3f} | {delta} | {row['per run mean']:.3f} ± {row['per run sd']:.3f} |"
    )
print()
print("| emotion | test images | " + " | ".join(r["arm"] for r in arms) + " |")
print("| --- | --- | " + " | ".join("---" for _ in arms) + " |")
for row in summary["per_class"]:
    cells = " | ".join(f"{row[r['arm']]:.2f}" for r in arms)
    print(f"| {row['emotion']} | {row['test images']} | {cells} |")
print()
for ref in summary["references"]:
    print(
        f"- {ref['experiment']}: {ref['test images']} test images, accuracy "
        f"{ref['accuracy mean']:.3f}, macro F1 {ref['macro F1 mean']:.3f} ({ref['runs']} run)"
    )
