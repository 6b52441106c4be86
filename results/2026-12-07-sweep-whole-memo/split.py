"""A whole sweep's time by part, in minutes, from make bench's sweep_parts JSON:
python split.py <bench-*.json> → the parts, then every run (its first epoch, what followed training)."""

import json
import sys

parts = json.load(open(sys.argv[1]))["sweep_parts"]
machine = json.load(open(sys.argv[1]))["machine"]
print(machine.get("cpu_model"), machine.get("cpu_capability"), machine.get("torch"))
print("whole", round(parts["seconds"] / 60, 1), "min;",
      {k: round(v / 60, 2) for k, v in parts["by_part_seconds"].items()})
for run in parts["runs"]:
    print(run["part"], run["run"], run["status"], round(run["seconds"] / 60, 2),
          "first epoch", round(run["first_epoch_seconds"] / 60, 2),
          "after training", round(run["after_training_seconds"] / 60, 2))
