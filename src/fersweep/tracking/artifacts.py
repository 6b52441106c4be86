"""What a run records: config, data, evaluation, models, comparisons, studies and benchmarks.

Each function logs to the active run, or to `run_id` where it takes one (runs shared by the
workers of a sweep are never any process's active run).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.types import ColSpec, Schema
from omegaconf import OmegaConf

from fersweep import EMOTIONS
from fersweep.config.values import MAX_PARAM_LENGTH, flatten
from fersweep.data.preprocess import FACE_STEPS
from fersweep.data.record import DataRecord
from fersweep.evaluation.figures import confusion_figure
from fersweep.evaluation.metrics import Evaluation, SplitPredictions
from fersweep.tracking.runs import CLASSIFIER_NAME, quiet_downloads


def log_config(values: Mapping[str, Any], overrides: Sequence[str]) -> None:
    """The config (`config.values.own_values`) as parameters and as YAML, and the overrides
    that re-run it."""
    log_params(values)
    mlflow.log_text(OmegaConf.to_yaml(dict(values)), "config/config.yaml")
    mlflow.set_tag("overrides", " ".join(overrides)[:MAX_PARAM_LENGTH])


def log_params(params: Mapping[str, Any], run_id: str | None = None) -> None:
    """Parameters (nested ones flattened to dotted keys), in one batch."""
    batch = [Param(key, value) for key, value in flatten(dict(params)).items()]
    mlflow.MlflowClient().log_batch(_run(run_id), params=batch)


def log_tags(tags: Mapping[str, Any], run_id: str | None = None) -> None:
    """Tags (nested ones flattened to dotted keys), in one batch: for what may change during a
    run's life, as a resumed sweep's best trial does (MLflow never lets a parameter change)."""
    batch = [RunTag(key, value) for key, value in flatten(dict(tags)).items()]
    mlflow.MlflowClient().log_batch(_run(run_id), tags=batch)


def log_metrics(metrics: Mapping[str, float], run_id: str | None = None) -> None:
    """Metrics at step 0, in one batch (MLflow splits it where it is over its limits)."""
    now = int(time.time() * 1000)
    batch = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
    mlflow.MlflowClient().log_batch(_run(run_id), metrics=batch)


def log_dict(data: Mapping, path: str, run_id: str | None = None) -> None:
    mlflow.MlflowClient().log_dict(_run(run_id), dict(data), path)


def log_text(text: str, path: str, run_id: str | None = None) -> None:
    mlflow.MlflowClient().log_text(_run(run_id), text, path)


def _run(run_id: str | None) -> str:
    """The run to record in: the one named, or the active one (a sweep's runs shared by its
    workers are never any process's active run, so those are named)."""
    return run_id if run_id is not None else mlflow.active_run().info.run_id


def log_files(folder: Path, artifact_path: str, run_id: str) -> None:
    """Every file of `folder` under `artifact_path` of the run."""
    mlflow.MlflowClient().log_artifacts(run_id, str(folder), artifact_path)


def log_file(path: Path, artifact_path: str, name: str, run_id: str | None = None) -> None:
    """One file, under `artifact_path/name` of the run."""
    with tempfile.TemporaryDirectory() as folder:
        named = Path(folder) / name
        shutil.copyfile(path, named)
        mlflow.MlflowClient().log_artifact(_run(run_id), str(named), artifact_path)


def downloaded(run_id: str, path: str, folder: Path) -> Path | None:
    """A run's artifact fetched into `folder`, or None where the run has none at `path`."""
    parent = str(Path(path).parent)
    listed = mlflow.MlflowClient().list_artifacts(run_id, "" if parent == "." else parent)
    if path not in {entry.path for entry in listed}:
        return None
    with quiet_downloads():
        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=str(folder)
            )
        )


def copy_metric_history(source_run: str, target_run: str) -> list[str]:
    """Every metric of `source_run` that `target_run` lacks, each with its whole history (a
    run that tested another's weights shows the curves of the training that made them)."""
    client = mlflow.MlflowClient()
    has = set(client.get_run(target_run).data.metrics)
    keys = [key for key in client.get_run(source_run).data.metrics if key not in has]
    history = [m for key in keys for m in client.get_metric_history(source_run, key)]
    client.log_batch(target_run, metrics=history)
    return keys


def log_figure(figure: plt.Figure, path: str) -> None:
    mlflow.log_figure(figure, path)
    plt.close(figure)


def log_data(data: DataRecord) -> None:
    """The data report, class counts per split, the split itself and the data's fingerprint."""
    report = data.report
    mlflow.set_tags({"data_fingerprint": data.fingerprint, "data_root": str(data.root)})
    mlflow.log_dict(report.as_dict(), "data/data_report.json")
    mlflow.log_dict(data.counts, "data/class_counts.json")
    prevalence = dict(zip(EMOTIONS, data.prevalence.tolist()))
    mlflow.log_dict({"prevalence": prevalence}, "data/prevalence.json")
    log_metrics(
        {
            "data/rows_read": report.rows_read,
            "data/images_used": data.images_used,
            **{f"data/{problem}": count for problem, count in report.counts.items()},
            **{f"data/{split}_images": sum(c.values()) for split, c in data.counts.items()},
            **{f"data/face_step/{name}": report.steps[step] for step, name in FACE_STEPS.items()},
        }
    )
    mlflow.log_text(data.split_table.to_csv(index=False), "data/split.csv")
    log_inputs(data)


# MLflow's names for what a run's data was used for, per split
INPUT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def log_inputs(data: DataRecord) -> None:
    """Each split as an MLflow dataset input (its files, people and emotions; the digest is
    MLflow's hash of them), tagged with the data set's fingerprint, so the run's page says what
    the model was trained, validated and tested on."""
    table = data.split_table
    for split, context in INPUT_CONTEXTS.items():
        rows = table.loc[table["split"] == split, ["file", "identity", "emotion"]]
        if rows.empty:
            continue
        with warnings.catch_warnings():  # MLflow registers its local-file source twice
            warnings.filterwarnings("ignore", "The specified dataset source", UserWarning)
            dataset = mlflow.data.from_pandas(
                rows.reset_index(drop=True),
                source=str(data.root),
                name=f"{data.root.name}-{split}",
                targets="emotion",
            )
        tags = {"data_fingerprint": data.fingerprint, "images": str(len(rows))}
        mlflow.log_input(dataset, context=context, tags=tags)


def log_evaluation(evaluation: Evaluation, split: str) -> None:
    """Headline metrics, the per-class report (CSV, JSON, text) and confusion matrices."""
    mlflow.log_metrics({f"{split}/{name}": value for name, value in evaluation.metrics.items()})
    table = evaluation.per_class.reset_index()
    mlflow.log_text(table.to_csv(index=False), f"evaluation/{split}_report.csv")
    mlflow.log_dict(table.to_dict(orient="records"), f"evaluation/{split}_report.json")
    mlflow.log_text(evaluation.text, f"evaluation/{split}_report.txt")
    mlflow.log_dict(
        {
            "class_names": list(evaluation.class_names),
            "counts": evaluation.confusion.tolist(),
            "row_normalised": evaluation.confusion_normalised.round(4).tolist(),
        },
        f"evaluation/{split}_confusion.json",
    )
    for normalised, suffix in ((False, "counts"), (True, "normalised")):
        figure = confusion_figure(evaluation, normalised, f"{split}: confusion ({suffix})")
        log_figure(figure, f"evaluation/{split}_confusion_{suffix}.png")


def log_predictions(
    files: np.ndarray, people: np.ndarray, outputs: SplitPredictions, split: str
) -> None:
    """Each evaluated image's file, person, truth, prediction and probabilities: enough to pool
    folds or bootstrap over people again from MLflow alone."""
    table = pd.DataFrame({"file": files, "person": people, "truth": outputs.truth})
    table["predicted"] = outputs.predicted
    for column, emotion in enumerate(EMOTIONS):  # unrounded: read back, the argmax is the same
        table[f"p_{emotion}"] = outputs.probabilities[:, column]
    mlflow.log_text(table.to_csv(index=False), f"evaluation/{split}_predictions.csv")


def log_scores(
    split: str,
    files: np.ndarray,
    people: np.ndarray,
    outputs: SplitPredictions,
    plain: SplitPredictions | None = None,
    posthoc: Mapping[str, Any] | None = None,
    reframed: Mapping[str, SplitPredictions] | None = None,
) -> None:
    """An evaluated split as every run records it, a network's or a reference's: its metrics,
    report, confusion matrices and predictions (`{split}`); with post-hoc steps, the scores
    before them and what they applied (`{split}_plain`, evaluation/posthoc.json); with the
    framing check, the same images framed each way (`{split}_<direction>`)."""
    log_evaluation(outputs.evaluation, split)
    log_predictions(files, people, outputs, split)
    if plain is not None:
        log_metrics({f"{split}_plain/{k}": v for k, v in plain.evaluation.metrics.items()})
        log_predictions(files, people, plain, f"{split}_plain")
        log_dict(dict(posthoc or {}), "evaluation/posthoc.json")
    for name, framed in (reframed or {}).items():
        log_evaluation(framed.evaluation, f"{split}_{name}")
        log_predictions(files, people, framed, f"{split}_{name}")


def recorded_predictions(
    run_id: str, split: str
) -> tuple[np.ndarray, np.ndarray, SplitPredictions] | None:
    """What `log_predictions` recorded for `split` in a run (files, people, predictions), or
    None where the run has no such file."""
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/evaluation/{split}_predictions.csv")
    except (MlflowException, OSError):
        return None
    table = pd.read_csv(io.StringIO(text), dtype={"file": str, "person": str})
    probabilities = table[[f"p_{emotion}" for emotion in EMOTIONS]].to_numpy()
    outputs = SplitPredictions(table["truth"].to_numpy(), probabilities)
    return table["file"].to_numpy(), table["person"].to_numpy(), outputs


def recorded_prevalence(run_id: str) -> np.ndarray | None:
    """Each emotion's share of the original images, as the run's data report recorded it."""
    try:
        recorded = mlflow.artifacts.load_dict(f"runs:/{run_id}/data/prevalence.json")
    except (MlflowException, OSError):
        return None
    return np.array([recorded["prevalence"][emotion] for emotion in EMOTIONS])


@dataclass
class PyfuncSpec:
    """What the raw-image classifier needs to be logged beside its network: the models-from-code
    file that builds it, the package copied into the model, its `model_config`, a request and
    answer to infer the signature from, its parameters with their defaults and the values the
    example request uses, and the request's columns: binary (required) and text (optional)."""

    model_code: Path
    code_package: Path
    model_config: dict[str, Any]
    request: pd.DataFrame
    answer: pd.DataFrame
    params: dict[str, Any]
    example_params: dict[str, Any]
    binary_columns: list[str]
    optional_text_columns: list[str]


def log_model(
    net: torch.nn.Module, example: np.ndarray, output: np.ndarray, classifier: PyfuncSpec
) -> None:
    """Two models: `model`, the network in eval mode on the CPU (mlflow.pytorch; preprocessed
    uint8 tensors in, `output` its answer to `example`), and `classifier`, the pyfunc of
    `classifier` with the network as its artifact."""
    requirements = [
        f"torch=={torch.__version__.split('+')[0]}",
        "numpy",
        "pandas",
        "opencv-python-headless",
        "pillow",
        "hydra-core",  # rebuilds the preprocessing (and face step) from its config
    ]
    network = mlflow.pytorch.log_model(
        net,
        name="model",
        signature=infer_signature(example, output),
        input_example=example,
        pip_requirements=requirements,
    )
    with warnings.catch_warnings():  # the box columns are integers, with null where no face
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
        signature = infer_signature(classifier.request, classifier.answer, params=classifier.params)
    signature.inputs = Schema(
        [
            *(ColSpec("binary", name) for name in classifier.binary_columns),
            *(ColSpec("string", name, required=False) for name in classifier.optional_text_columns),
        ]
    )
    with quiet_downloads():
        mlflow.pyfunc.log_model(
            name=CLASSIFIER_NAME,
            python_model=str(classifier.model_code),
            artifacts={"network": network.model_uri},
            model_config=classifier.model_config,
            code_paths=[str(classifier.code_package)],
            signature=signature,
            input_example=(classifier.request, dict(classifier.example_params)),
            pip_requirements=requirements,
        )


def log_comparison(
    report: str,
    summary: Mapping[str, Any],
    metrics: Mapping[str, float],
    figures: Mapping[str, plt.Figure],
) -> None:
    """A comparison's Markdown report, its numbers (`summary`), headline metrics and figures."""
    mlflow.log_text(report, "comparison/report.md")
    mlflow.log_dict(dict(summary), "comparison/summary.json")
    for name, figure in figures.items():
        log_figure(figure, f"comparison/{name}.png")
    mlflow.log_metrics(dict(metrics))
