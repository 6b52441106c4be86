"""The two runs of trial.sh (the latest of each experiment) side by side: every metric but the
system ones, and the per-epoch validation macro F1. usage: compare_runs.py <mlflow.db>"""

import sys

import mlflow

mlflow.set_tracking_uri(f"sqlite:///{sys.argv[1]}")
client = mlflow.MlflowClient()


def latest(experiment: str):
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"])[0]


on, off = latest("fill-on-check"), latest("fill-off-check")
keys = sorted(k for k in set(on.data.metrics) & set(off.data.metrics) if not k.startswith("system/"))
print("metrics compared:", len(keys), "differing:", [k for k in keys if on.data.metrics[k] != off.data.metrics[k]])
print("val/macro_f1_best:", on.data.metrics["val/macro_f1_best"], off.data.metrics["val/macro_f1_best"])
history = [[(m.step, m.value) for m in client.get_metric_history(r.info.run_id, "val/macro_f1")] for r in (on, off)]
print("val/macro_f1 at every epoch equal:", history[0] == history[1], f"({len(history[0])} epochs)")
for run, side in ((on, "fill on"), (off, "fill off")):
    print(side, run.info.run_id, "minutes", round((run.info.end_time - run.info.start_time) / 60000, 2))
