"""What a sweep left in Optuna and MLflow: per arm the trials (state, job), and every run's
kind, status, state tag and job id. python sweep_state.py <storage URL> <sweep name> <mlflow URI>"""

import sys

import mlflow
import optuna

storage, name, tracking = sys.argv[1:4]
optuna.logging.set_verbosity(optuna.logging.WARNING)
for arm in ("original", "balanced"):
    study = optuna.load_study(study_name=f"{name}-{arm}", storage=storage)
    trials = [(t.number, t.state.name, t.user_attrs.get("job_id")) for t in study.trials]
    print(f"{arm}: {trials}")
mlflow.set_tracking_uri(tracking)
client = mlflow.MlflowClient()
experiment = client.get_experiment_by_name("fersweep-demo")
runs = client.search_runs([experiment.experiment_id], f"tags.sweep = '{name}'")
for run in sorted(runs, key=lambda r: r.info.start_time):
    tags = run.data.tags
    print(
        f"{tags.get('kind'):10} {run.info.run_name:24} {run.info.status:9} "
        f"state={tags.get('state', '-'):12} job={tags.get('job_id', '-'):4} "
        f"launcher_jobs={tags.get('launcher_jobs', '-')} finish_job={tags.get('finish_job', '-')}"
    )
print("RUNNING runs:", sum(r.info.status == "RUNNING" for r in runs))
versions = client.search_model_versions("name = 'fersweep-demo'")
print("model versions:", sorted((v.version, v.tags.get("sweep"), v.tags.get("arm")) for v in versions))
