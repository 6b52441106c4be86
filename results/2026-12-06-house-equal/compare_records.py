"""Two folders' MLflow runs (by run name order: the network's, then the reference's) compared:
metrics equal, and the same keys of parameters, metrics and tags and the same artifact files.
python compare_records.py <before folder> <after folder>"""

import sys

import mlflow

IGNORED_TAGS = {"git_commit", "mlflow.source.name", "mlflow.runName", "mlflow.user", "data_root",
                "mlflow.log-model.history", "mlflow.source.git.commit"}


def runs(folder):
    client = mlflow.MlflowClient(f"sqlite:///{folder}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("fersweep")
    found = sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.info.start_time)
    return client, found


def artifacts(client, run_id, path=""):
    files = set()
    for item in client.list_artifacts(run_id, path):
        files |= artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return files


(before_client, before), (after_client, after) = runs(sys.argv[1]), runs(sys.argv[2])
assert len(before) == len(after) == 2, (len(before), len(after))
for old, new in zip(before, after):
    model = old.data.params["model._target_"].rsplit(".", 1)[-1]
    print(f"== {model} ({old.data.params.get('model.net._target_', '').rsplit('.', 1)[-1]})")
    keys = {"params": (set(old.data.params), set(new.data.params)),
            "metrics": (set(old.data.metrics), set(new.data.metrics)),
            "tags": (set(old.data.tags) - IGNORED_TAGS, set(new.data.tags) - IGNORED_TAGS),
            "artifacts": (artifacts(before_client, old.info.run_id), artifacts(after_client, new.info.run_id))}
    for kind, (a, b) in keys.items():
        print(f"{kind}: {len(a)} before, {len(b)} after; only before {sorted(a - b)}; only after {sorted(b - a)}")
    differing = {k: (v, new.data.metrics.get(k)) for k, v in old.data.metrics.items()
                 if not k.startswith("system/") and new.data.metrics.get(k) != v}
    print(f"metrics not equal (system metrics aside): {differing}")
    for k in ("test/macro_f1", "test/accuracy", "val/macro_f1_best"):
        print(f"  {k}: {old.data.metrics.get(k)} / {new.data.metrics.get(k)}")
