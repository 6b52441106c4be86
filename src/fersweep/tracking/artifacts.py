"""What a run records: config, data, evaluation, models, comparisons, studies and benchmarks.

Each function logs to the active run, or to `run_id` where it takes one (runs shared by the
workers of a sweep are never any process's active run).
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.types import ColSpec, Schema
from omegaconf import DictConfig, ListConfig, OmegaConf

from fersweep import EMOTIONS
from fersweep.data.preprocess import FACE_STEPS
from fersweep.evaluation.figures import confusion_figure
from fersweep.evaluation.metrics import Evaluation, SplitPredictions
from fersweep.tracking.runs import CLASSIFIER_NAME, quiet_downloads

if TYPE_CHECKING:
    from fersweep.data.datamodule import EmotionDataModule

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value


def log_config(values: Mapping[str, Any], overrides: Sequence[str]) -> None:
    """The config (`own_values`) as parameters and as YAML, and the overrides that re-run it."""
    mlflow.log_params(flatten(values))
    mlflow.log_text(OmegaConf.to_yaml(dict(values)), "config/config.yaml")
    mlflow.set_tag("overrides", " ".join(overrides)[:MAX_PARAM_LENGTH])


def own_values(node: DictConfig) -> dict[str, Any]:
    """The resolved config, without nodes that only repeat another (`optimizer: ${optimizer}`
    inside the model), so every setting is recorded once, under the key that sets it.
    Take it before instantiating: `instantiate` resolves interpolations in place."""
    values: dict[str, Any] = {}
    for key in node:
        value = node[key]
        if OmegaConf.is_interpolation(node, key) and OmegaConf.is_config(value):
            continue
        if isinstance(value, DictConfig):
            values[key] = own_values(value)
        elif isinstance(value, ListConfig):
            values[key] = OmegaConf.to_container(value, resolve=True)
        else:
            values[key] = value
    return values


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys to values, the way Hydra overrides name them; lists become JSON."""
    if isinstance(tree, Mapping):
        flat: dict[str, str] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    value = json.dumps(tree) if isinstance(tree, list) else str(tree)
    return {prefix.rstrip("."): value[:MAX_PARAM_LENGTH]}


def log_params(params: Mapping[str, Any], run_id: str | None = None) -> None:
    flat = flatten(dict(params))
    if run_id is None:
        mlflow.log_params(flat)
        return
    client = mlflow.MlflowClient()
    for key, value in flat.items():
        client.log_param(run_id, key, value)


def log_metrics(metrics: Mapping[str, float], run_id: str | None = None) -> None:
    if run_id is None:
        mlflow.log_metrics(dict(metrics))
        return
    client = mlflow.MlflowClient()
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)


def log_dict(data: Mapping, path: str, run_id: str | None = None) -> None:
    if run_id is None:
        mlflow.log_dict(dict(data), path)
    else:
        mlflow.MlflowClient().log_dict(run_id, dict(data), path)


def log_files(folder: Path, artifact_path: str, run_id: str) -> None:
    """Every file of `folder` under `artifact_path` of the run."""
    mlflow.MlflowClient().log_artifacts(run_id, str(folder), artifact_path)


def log_figure(figure: plt.Figure, path: str) -> None:
    mlflow.log_figure(figure, path)
    plt.close(figure)


def log_data(datamodule: EmotionDataModule, counts: Mapping[str, Mapping[str, int]]) -> None:
    """The data report, class counts per split, the split itself and the data's fingerprint."""
    report = datamodule.report
    mlflow.set_tags({"data_fingerprint": datamodule.fingerprint, "data_root": str(datamodule.root)})
    mlflow.log_dict(report.as_dict(), "data/data_report.json")
    mlflow.log_dict(dict(counts), "data/class_counts.json")
    prevalence = dict(zip(EMOTIONS, datamodule.natural_prevalence().tolist()))
    mlflow.log_dict({"prevalence": prevalence}, "data/prevalence.json")
    mlflow.log_metrics(
        {
            "data/rows_read": report.rows_read,
            "data/images_used": len(datamodule.image_set.records),
            **{f"data/{problem}": count for problem, count in report.counts.items()},
            **{f"data/{split}_images": sum(c.values()) for split, c in counts.items()},
            **{f"data/face_step/{name}": report.steps[step] for step, name in FACE_STEPS.items()},
        }
    )
    table = datamodule.split_table()
    mlflow.log_text(table.to_csv(index=False), "data/split.csv")
    log_inputs(table, datamodule)


# MLflow's names for what a run's data was used for, per split
INPUT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def log_inputs(table: pd.DataFrame, datamodule: EmotionDataModule) -> None:
    """Each split as an MLflow dataset input (its files, people and emotions; the digest is
    MLflow's hash of them), tagged with the data set's fingerprint, so the run's page says what
    the model was trained, validated and tested on."""
    for split, context in INPUT_CONTEXTS.items():
        rows = table.loc[table["split"] == split, ["file", "identity", "emotion"]]
        if rows.empty:
            continue
        with warnings.catch_warnings():  # MLflow registers its local-file source twice
            warnings.filterwarnings("ignore", "The specified dataset source", UserWarning)
            dataset = mlflow.data.from_pandas(
                rows.reset_index(drop=True),
                source=str(datamodule.root),
                name=f"{datamodule.root.name}-{split}",
                targets="emotion",
            )
        tags = {"data_fingerprint": datamodule.fingerprint, "images": str(len(rows))}
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


def log_text(text: str, path: str, run_id: str | None = None) -> None:
    if run_id is None:
        mlflow.log_text(text, path)
    else:
        mlflow.MlflowClient().log_text(run_id, text, path)
