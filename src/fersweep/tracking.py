"""Everything fersweep records in MLflow goes through here, so a run's contents live in one place."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import optuna
import pandas as pd
import torch
from mlflow.entities import Run
from mlflow.models import infer_signature
from omegaconf import DictConfig, OmegaConf

from fersweep.metrics import Evaluation

log = logging.getLogger(__name__)
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
CLASSIFIER_NAME = "classifier"  # the raw-image pyfunc that the registry and `fersweep` use


class Tracker:
    """One MLflow experiment in one store: a SQLite file under mlruns/ unless the URI says otherwise."""

    def __init__(
        self, tracking_uri: str, artifact_root: str, experiment: str, log_model: bool
    ) -> None:
        self.tracking_uri, self.artifact_root = tracking_uri, artifact_root
        self.experiment, self.log_model_enabled = experiment, log_model

    def connect(self) -> str:
        """Point MLflow at the store and return the experiment's id, creating it if needed."""
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        mlflow.set_tracking_uri(self.tracking_uri)
        found = mlflow.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = Path(self.artifact_root).expanduser().resolve().as_uri()
        try:
            return mlflow.create_experiment(self.experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            # Another worker created it between our lookup and our create.
            return mlflow.get_experiment_by_name(self.experiment).experiment_id

    @contextmanager
    def run(
        self,
        name: str | None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[Run]:
        """An MLflow run that always ends: FINISHED, KILLED when pruned, or FAILED with its error."""
        experiment_id = self.connect()
        active = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=name,
            parent_run_id=parent_run_id,
            nested=mlflow.active_run() is not None,
            tags={"git_commit": git_commit(), **(tags or {})},
        )
        try:
            yield active
        except optuna.TrialPruned:
            mlflow.set_tag("state", "pruned")
            mlflow.end_run("KILLED")
            raise
        except BaseException as error:
            mlflow.set_tags({"state": "failed", "error": f"{type(error).__name__}: {error}"[:5000]})
            mlflow.end_run("FAILED")
            raise
        else:
            mlflow.set_tag("state", "complete")
            mlflow.end_run("FINISHED")

    # --- runs that outlive one process (a sweep's parents) ------------------------------------

    def start_detached_run(
        self, name: str, parent_run_id: str | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        """A RUNNING run that is not this process's active run; several workers log under it."""
        experiment_id = self.connect()
        all_tags = {"git_commit": git_commit(), **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = mlflow.MlflowClient().create_run(experiment_id, run_name=name, tags=all_tags)
        return run.info.run_id

    def end_detached_run(self, run_id: str, status: str) -> None:
        mlflow.MlflowClient().set_terminated(run_id, status)

    def fail_detached_run(self, run_id: str, reason: str) -> None:
        client = mlflow.MlflowClient()
        client.set_tag(run_id, "state", "failed")
        client.set_tag(run_id, "error", reason)
        client.set_terminated(run_id, "FAILED")

    def run_status(self, run_id: str) -> str:
        self.connect()
        return mlflow.MlflowClient().get_run(run_id).info.status

    @contextmanager
    def resumed(self, run_id: str) -> Iterator[Run]:
        """Make an existing run the active one for a while, leaving its status as it was."""
        self.connect()
        status = mlflow.get_run(run_id).info.status
        with mlflow.start_run(run_id=run_id) as run:
            yield run
        mlflow.MlflowClient().set_terminated(run_id, status)

    def log_definition(self, run_id: str, definition: Mapping) -> None:
        client = mlflow.MlflowClient()
        client.log_dict(run_id, dict(definition), "sweep/definition.json")
        for key, value in flatten(dict(definition)).items():
            client.log_param(run_id, f"sweep.{key}", value)

    def log_dict_to(self, run_id: str, data: Mapping, path: str) -> None:
        mlflow.MlflowClient().log_dict(run_id, dict(data), path)

    def register(self, run_id: str, name: str, tags: Mapping[str, str]) -> str:
        """Register the model a run logged; returns the new version number."""
        self.connect()
        version = mlflow.register_model(f"runs:/{run_id}/{CLASSIFIER_NAME}", name, tags=dict(tags))
        return str(version.version)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version)

    # --- what a training run records ---------------------------------------------------------

    def log_config(self, cfg: DictConfig, overrides: list[str]) -> None:
        container = OmegaConf.to_container(cfg, resolve=True)
        mlflow.log_params(flatten(container))
        mlflow.log_text(OmegaConf.to_yaml(container), "config/config.yaml")
        mlflow.set_tag("overrides", " ".join(overrides)[:MAX_PARAM_LENGTH])

    def log_data(self, datamodule) -> None:
        report = datamodule.report
        mlflow.set_tags(
            {"data_fingerprint": datamodule.fingerprint, "data_root": str(datamodule.root)}
        )
        mlflow.log_dict(report.as_dict(), "data/data_report.json")
        counts = {split: datamodule.class_counts(split) for split in ("train", "val", "test")}
        counts["train_balanced"] = datamodule.balanced_train_counts()
        mlflow.log_dict(counts, "data/class_counts.json")
        mlflow.log_metrics(
            {
                "data/rows_read": report.rows_read,
                "data/images_used": len(datamodule.image_set.records),
                **{f"data/{problem}": count for problem, count in report.counts.items()},
                **{f"data/{split}_images": sum(c.values()) for split, c in counts.items()},
            }
        )
        mlflow.log_text(datamodule.split_table().to_csv(index=False), "data/split.csv")

    def log_figure(self, figure: plt.Figure, path: str) -> None:
        mlflow.log_figure(figure, path)
        plt.close(figure)

    def log_dict(self, data: Mapping, path: str) -> None:
        mlflow.log_dict(dict(data), path)

    def log_comparison(self, report: str, summary: Mapping, figure: plt.Figure) -> None:
        mlflow.log_text(report, "comparison/report.md")
        mlflow.log_dict(dict(summary), "comparison/summary.json")
        self.log_figure(figure, "comparison/confusion_side_by_side.png")
        difference = summary["difference"]
        mlflow.log_metrics(
            {
                "comparison/macro_f1_difference": difference["difference"],
                "comparison/macro_f1_difference_low": difference["low"],
                "comparison/macro_f1_difference_high": difference["high"],
                **{
                    f"comparison/{arm['arm']}/macro_f1_mean": arm["macro F1 mean"]
                    for arm in summary["arms"]
                },
            }
        )

    def log_model_size(self, parameters: int) -> None:
        mlflow.log_param("model.n_parameters", parameters)

    def log_evaluation(self, evaluation: Evaluation, split: str) -> None:
        from fersweep.figures import confusion_figure

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
            self.log_figure(figure, f"evaluation/{split}_confusion_{suffix}.png")

    def log_model(
        self, net: torch.nn.Module, example: np.ndarray, preprocess: Mapping, example_image: bytes
    ) -> None:
        """Two models: `model`, the network (mlflow.pytorch; preprocessed uint8 tensors in), and
        `classifier`, a pyfunc taking raw image bytes that preprocesses them as training did."""
        if not self.log_model_enabled:
            return
        from fersweep.serving import probability_table

        net = net.cpu().eval()
        with torch.no_grad():
            output = net(torch.from_numpy(example)).numpy()
        requirements = [
            f"torch=={torch.__version__.split('+')[0]}",
            "numpy",
            "pandas",
            "opencv-python-headless",
            "pillow",
        ]
        network = mlflow.pytorch.log_model(
            net,
            name="model",
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=requirements,
        )
        image_frame = pd.DataFrame({"image": [example_image]})
        probabilities = torch.softmax(torch.from_numpy(output[:1]), dim=1).numpy()
        mlflow.pyfunc.log_model(
            name=CLASSIFIER_NAME,
            python_model=str(Path(__file__).with_name("serving_model.py")),
            artifacts={"network": network.model_uri},
            model_config={"preprocess": dict(preprocess), "batch_size": 256},
            code_paths=[str(Path(__file__).parent)],
            signature=infer_signature(image_frame, probability_table(probabilities, [""])),
            input_example=image_frame,
            pip_requirements=requirements,
        )

    def epoch_logger(self) -> EpochMetricsToMlflow:
        return EpochMetricsToMlflow()


class EpochMetricsToMlflow(pl.Callback):
    """Logs the epoch's train/ and val/ metrics to the active MLflow run, with the epoch as step."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, "train/")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, "val/")

    @staticmethod
    def _log(trainer: pl.Trainer, prefix: str) -> None:
        values = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith(prefix)
        }
        if values:
            mlflow.log_metrics(values, step=trainer.current_epoch)


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys to values, the way Hydra overrides name them; lists become JSON."""
    if isinstance(tree, Mapping):
        flat: dict[str, str] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    value = json.dumps(tree) if isinstance(tree, list) else str(tree)
    return {prefix.rstrip("."): value[:MAX_PARAM_LENGTH]}


def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
