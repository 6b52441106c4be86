"""Rebuild the comparison's report from its MLflow runs.

The comparison (sweeps/compare_cpu_more.yaml, commit 8441f11) trained all 42 runs and then
stopped while summarising: the seed protocol's balanced reference (copies made before its split,
which share their original's file name) tripped the check that folds do not overlap (fixed in
1bbfa3e: one run may hold copies). Every run had logged its test predictions
(evaluation/test_predictions.csv), so the report is rebuilt from them with the fixed
`fersweep.tasks.compare.run.summarise`; nothing is retrained.

    PYTHONPATH=src python results/2026-11-28-compare-more/rebuild.py sqlite:////tmp/cmp/mlruns/mlflow.db OUT_DIR

Runs of that commit did not record the network's own predictions before the post-hoc steps,
so the pooled "network alone" column is not available; `network alone per fold` (the mean of
each run's logged `test_plain/macro_f1`) stands in for it.
"""

import io
import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from fersweep import EMOTIONS
from fersweep.tasks.compare.arms import ArmSummary
from fersweep.tasks.compare.report import json_default, summarise
from fersweep.config.schemas import Bootstrap
from fersweep.evaluation.metrics import SplitPredictions
from fersweep.tasks.train import RunResult

uri, out = sys.argv[1], Path(sys.argv[2])
mlflow.set_tracking_uri(uri)
client = mlflow.MlflowClient()
experiment = client.get_experiment_by_name("fersweep")
(parent,) = client.search_runs(
    [experiment.experiment_id], "attributes.run_name = 'compare-imbalance-methods-cpu-more'"
)
children = client.search_runs(
    [experiment.experiment_id],
    f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    order_by=["attributes.start_time ASC"],
)
definition = json.loads(
    mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/comparison/definition.json")
)


def result(run) -> RunResult:
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/evaluation/test_predictions.csv")
    table = pd.read_csv(io.StringIO(text), dtype={"file": str, "person": str})
    outputs = SplitPredictions(
        table["truth"].to_numpy(), table[[f"p_{e}" for e in EMOTIONS]].to_numpy()
    )
    return RunResult(
        run_id=run.info.run_id,
        metrics=run.data.metrics,
        outputs=outputs,
        prevalence=np.full(len(EMOTIONS), np.nan),  # set below, from the pooled truth
        files=table["file"].to_numpy(),
        people=table["person"].to_numpy(),
    )


by_arm: dict[str, list] = {}
for run in children:
    assert run.info.status == "FINISHED", run.info.run_name
    by_arm.setdefault(run.data.tags["arm"], []).append(run)
arms = {
    name: ArmSummary(name, [[result(r) for r in sorted(by_arm[name], key=lambda r: int(r.data.tags["fold"]))]])
    for name in definition["arms"]
}
references = {name: ArmSummary(name, [[result(r) for r in by_arm[name]]]) for name in definition["references"]}
# Every image is tested once over the folds: the pooled truth's shares are the natural prevalence.
truth = np.concatenate([r.truth for r in next(iter(arms.values())).runs])
prevalence = np.bincount(truth, minlength=len(EMOTIONS)) / len(truth)
for arm in [*arms.values(), *references.values()]:
    for r in arm.runs:
        r.prevalence = prevalence
report, summary, _ = summarise(
    arms, references, Bootstrap(**definition["bootstrap"]), seed=42
)
plain = {
    name: float(np.mean([r.data.metrics["test_plain/macro_f1"] for r in by_arm[name]]))
    for name in definition["arms"]
}
out.mkdir(parents=True, exist_ok=True)
(out / "report.md").write_text(report)
record = summary.as_dict() | {
    "network_alone_per_fold": plain,
    "runs": {r.info.run_name: r.info.run_id for r in children},
    "comparison_run": parent.info.run_id,
}
(out / "summary.json").write_text(json.dumps(record, indent=2, default=json_default))
print(report)
print("network alone, mean of the runs' test_plain/macro_f1:", json.dumps(plain, indent=1))
