"""Each fresh run of fresh.sh: the commit it ran (as the run recorded it), the memo setting, the trial's value
(val/macro_f1_best, full digits) and validation macro F1 at every epoch.
usage: python fresh_values.py <checkout> ..."""
import sys

import mlflow

for checkout in sys.argv[1:]:
    client = mlflow.MlflowClient(f"sqlite:///{checkout}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("memo-check")
    for run in sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.info.start_time):
        history = sorted(client.get_metric_history(run.info.run_id, "val/macro_f1"), key=lambda m: (m.step, m.timestamp))
        commit = run.data.tags.get("git_commit", "?")[:7]
        print(f"{commit} memo_mb={run.data.params.get('model.net.frozen_memo_mb')} value={run.data.metrics['val/macro_f1_best']!r}")
        print(f"   val/macro_f1 by step {[(m.step, m.value) for m in history]}")
