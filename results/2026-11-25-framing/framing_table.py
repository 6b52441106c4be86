"""The framing table from the finished runs of one or more comparisons, read back from MLflow.

The framing comparison of 2026-11-25 stopped on its ninth run (see RUN.md), so its table is
assembled from the runs that finished, beside those of the eye-levelling comparison:
    python framing_table.py sqlite:///mlruns/mlflow.db <parent run id> [<parent run id> ...]
"""

import sys

import mlflow
import numpy as np
import pandas as pd


def main(uri: str, parents: list[str]) -> None:
    client = mlflow.MlflowClient(uri)
    rows = []
    for parent in parents:
        experiment = client.get_run(parent).info.experiment_id
        for run in client.search_runs(
            [experiment], f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'FINISHED'"
        ):
            metrics, tags = run.data.metrics, run.data.tags
            rows.append(
                {
                    "comparison": parent[:8],
                    "arm": tags["arm"],
                    "seed": int(tags["seed"]),
                    "face step": "data.preprocess.face._target_" in run.data.params,
                    "original": metrics["test/macro_f1"],
                    "reframed": metrics["test_reframed/macro_f1"],
                    "run": run.info.run_id,
                }
            )
    runs = pd.DataFrame(rows).sort_values(["comparison", "arm", "seed"])
    runs["difference"] = runs["reframed"] - runs["original"]
    table = runs.groupby(["comparison", "arm", "face step"], sort=False).agg(
        seeds=("seed", lambda s: ",".join(map(str, s))),
        original=("original", "mean"),
        original_sd=("original", lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0),
        reframed=("reframed", "mean"),
        reframed_sd=("reframed", lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0),
        difference=("difference", "mean"),
        difference_sd=("difference", lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0),
    )
    print("## Per run\n")
    print(runs.to_markdown(index=False, floatfmt=".4f"))
    print("\n## Per arm (mean and sd over seeds; macro F1 on the 1,933 test images)\n")
    print(table.reset_index().to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
