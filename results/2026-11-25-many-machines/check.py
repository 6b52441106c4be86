"""What the two-checkout sweep left behind, read back from the tracking server and the study.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python check.py postgresql://postgres@127.0.0.1:5432/optuna
"""

import sys
from collections import Counter

import mlflow
import optuna

storage = sys.argv[1]
client = mlflow.MlflowClient()
experiment = client.get_experiment_by_name("fersweep")
print(f"experiment artifact_location: {experiment.artifact_location}")
runs = client.search_runs([experiment.experiment_id], max_results=1000)
print(f"runs: {len(runs)}, by kind: {dict(Counter(r.data.tags.get('kind') for r in runs))}")
schemes = Counter(r.info.artifact_uri.split(":")[0] for r in runs)
print(f"artifact URI schemes: {dict(schemes)}")
print(f"runs still RUNNING: {sum(r.info.status == 'RUNNING' for r in runs)}")
for arm in ("original", "balanced"):
    study = optuna.load_study(study_name=f"default-{arm}", storage=storage)
    trials = {r.data.tags["optuna_trial"]: r for r in runs if r.data.tags.get("kind") == "trial"
              and r.data.tags.get("arm") == arm}
    print(f"\n{arm}: {len(study.trials)} trials")
    for t in study.trials:
        run = trials[str(t.number)]
        value = f"{t.value:.4f}" if t.value is not None else "-"
        where = run.data.tags.get("worker_dir", "?")
        print(f"  trial {t.number}: {t.state.name:8s} {value:7s} MLflow {run.info.status:8s} "
              f"ran in {where}  lr={t.params['optimizer.lr']:.2e}")
version = client.get_model_version_by_alias("fersweep-emotion", "champion")
print(f"\nchampion: fersweep-emotion version {version.version} (arm {version.tags.get('arm')}), "
      f"source {version.source}")
