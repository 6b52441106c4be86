import json, sys, mlflow
sys.path.insert(0, "/work/main/src")
from fersweep.tasks.bench.parts import time_split
c = mlflow.MlflowClient("sqlite:////tmp/clone-sweep/mlruns/mlflow.db")
exp = [e for e in c.search_experiments() if e.name.startswith("fersweep-bench-parts")][0]
runs = c.search_runs([exp.experiment_id], max_results=10000)
old = json.load(open(sys.argv[1]))["sweep_parts"]
start = old["_start"] if "_start" in old else None
# the sweep's start and end as the bench measured them: end = first + ..., recovered from the old split
first = min(r.info.start_time for r in runs if r.data.tags.get("kind") in ("trial","best","gate")) / 1000
start = first - old["before_first_run_seconds"]; end = start + old["seconds"]
split = time_split(c, runs, start, end)
print(json.dumps({k: v for k, v in split.items() if k != "runs"}, indent=1))
for r in split["runs"]:
    print(r["part"], r["run"], round(r["seconds"]/60,2), "first epoch", round(r["first_epoch_seconds"]/60,2), "after training", round(r["after_training_seconds"]/60,2))
