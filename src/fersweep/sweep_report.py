"""A study's record in its arm's MLflow run: best trial, all trials, and Optuna's plots."""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import optuna
from optuna.trial import TrialState

from fersweep.tracking import Tracker, flatten

log = logging.getLogger(__name__)

# Each as optuna.visualization.plot_<name> (HTML) and its matplotlib twin (PNG).
PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values")


def log_study(tracker: Tracker, study: optuna.Study, run_id: str) -> None:
    client = mlflow.MlflowClient()
    tracker.connect()
    trials = study.trials_dataframe(
        attrs=("number", "value", "state", "params", "duration", "user_attrs")
    )
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "trials.csv"
        trials.to_csv(table, index=False)
        client.log_artifact(run_id, str(table), "study")
        for name in PLOTS:
            interactive = getattr(optuna.visualization, f"plot_{name}")
            static = getattr(optuna.visualization.matplotlib, f"plot_{name}")
            _log_plot(client, run_id, study, name, interactive, static, Path(folder))
    counts = {
        state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    for state, count in counts.items():
        client.log_metric(run_id, f"trials/{state}", count)
    if counts["complete"]:
        best = study.best_trial
        client.log_metric(run_id, "best/value", best.value)
        client.log_metric(run_id, "best/trial", best.number)
        for key, value in flatten(best.params).items():
            client.log_param(run_id, f"best.{key}", value)


def _log_plot(client, run_id, study, name, interactive, static, folder: Path) -> None:
    """HTML (interactive, plotly) and PNG (matplotlib) of one of Optuna's plots, when the study
    has what it needs (e.g. importances need two completed trials)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
            html = folder / f"{name}.html"
            interactive(study).write_html(html, include_plotlyjs=True)
            client.log_artifact(run_id, str(html), "study/plots")
            axes = static(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            png = folder / f"{name}.png"
            figure.savefig(png, dpi=100, bbox_inches="tight")
            plt.close(figure)
            client.log_artifact(run_id, str(png), "study/plots")
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        log.info("no %s plot for %s: %s", name, study.study_name, error)
