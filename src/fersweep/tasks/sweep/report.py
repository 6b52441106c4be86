"""A study's record for its arm's MLflow run: the trial table, Optuna's plots, the best trial.

Written again each time the sweep finishes (a resumed sweep's arm run is the same run), so what
can change is a metric, a tag or an overwritten artifact, never a parameter."""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import optuna
from optuna.trial import TrialState

from fersweep.tracking import artifacts

log = logging.getLogger(__name__)

# Each as optuna.visualization.plot_<name> (HTML) and its matplotlib twin (PNG).
PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values")


def log_study(study: optuna.Study, run_id: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        trials = study.trials_dataframe(
            attrs=("number", "value", "state", "params", "duration", "user_attrs")
        )
        trials.to_csv(Path(folder) / "trials.csv", index=False)
        artifacts.log_files(Path(folder), "study", run_id)
    with tempfile.TemporaryDirectory() as folder:
        for name in PLOTS:
            _write_plot(study, name, Path(folder))
        artifacts.log_files(Path(folder), "study/plots", run_id)
    counts = {
        f"trials/{state.name.lower()}": len(study.get_trials(deepcopy=False, states=(state,)))
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    artifacts.log_metrics(counts, run_id)
    if counts["trials/complete"]:
        best = study.best_trial
        artifacts.log_metrics({"best/value": best.value, "best/trial": best.number}, run_id)
        artifacts.log_tags({"best": best.params}, run_id)  # a resumed sweep may find another


def _write_plot(study: optuna.Study, name: str, folder: Path) -> None:
    """HTML (interactive, plotly) and PNG (matplotlib) of one of Optuna's plots, when the study
    has what it needs (e.g. importances need two completed trials)."""
    interactive = getattr(optuna.visualization, f"plot_{name}")
    static = getattr(optuna.visualization.matplotlib, f"plot_{name}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
            interactive(study).write_html(folder / f"{name}.html", include_plotlyjs=True)
            axes = static(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
            plt.close(figure)
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        log.info("no %s plot for %s: %s", name, study.study_name, error)
