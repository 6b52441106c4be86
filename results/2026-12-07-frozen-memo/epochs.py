"""Each run of an MLflow experiment: the frozen memo's setting, every epoch's end (seconds from
the run's start), validation macro F1 by epoch (full digits) and the test macro F1, oldest
run first.
usage: python epochs.py <tracking uri> <experiment>"""
import sys

import mlflow

uri, name = sys.argv[1:3]
client = mlflow.MlflowClient(uri)
experiment = client.get_experiment_by_name(name)
for run in sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.info.start_time):
    start = run.info.start_time
    history = lambda key: sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
    ends = [round((m.timestamp - start) / 1000, 1) for m in history("train/loss")]
    f1 = [m.value for m in history("val/macro_f1")]
    print(
        f"{run.info.run_name} memo_mb={run.data.params.get('model.net.frozen_memo_mb')} "
        f"whole={((run.info.end_time or start) - start) / 1000:.1f}s epochs_end={ends}"
    )
    print(f"   val/macro_f1 {f1}")
    print(f"   test/macro_f1 {run.data.metrics.get('test/macro_f1')}")
