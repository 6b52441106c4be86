"""Lightning callbacks that record a training run in MLflow, and the logger bound to that run.

`conf/callbacks/records.yaml` lists the recorders; `conf/logger/mlflow.yaml` the logger.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.loggers import MLFlowLogger

from fersweep.data.report import show_data_report
from fersweep.data.samples import reframed_samples, sample_images
from fersweep.evaluation.console import show_evaluation
from fersweep.evaluation.figures import class_distribution_figure, sample_grid_figure
from fersweep.models.nets import count_parameters
from fersweep.tracking import artifacts


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger writing into the run that `Tracker.run` opened (`run_id`).

    The Tracker ends that run with the status it earned (FINISHED, KILLED when pruned, FAILED
    with its error) after the test, so the logger must not end it when `fit` returns, as
    MLFlowLogger otherwise does.
    """

    def finalize(self, status: str = "success") -> None:
        return None


class RecordData(pl.Callback):
    """Once the data module is set up: the data report (console and MLflow), class counts,
    the split, class distributions before and after balancing, and a grid of samples."""

    def __init__(self, samples_per_emotion: int) -> None:
        self.samples_per_emotion = samples_per_emotion
        self.recorded = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Once a run, at its first stage: fit, or test where a run tests a kept checkpoint.
        if self.recorded:
            return
        self.recorded = True
        datamodule = trainer.datamodule
        data = datamodule.record()
        counts = data.counts
        show_data_report(data.report, counts)
        artifacts.log_data(data)
        for key, name, title in (
            ("train", "original", "training split, original"),
            ("train_balanced", "balanced", "training split, as trained"),
        ):
            figure = class_distribution_figure(counts[key], title)
            artifacts.log_figure(figure, f"data/class_distribution_{name}.png")
        grid = sample_grid_figure(
            sample_images(datamodule, self.samples_per_emotion),
            self.samples_per_emotion,
            "training images: original and augmented",
        )
        artifacts.log_figure(grid, "data/samples.png")


class RecordModelSize(pl.Callback):
    def __init__(self) -> None:
        self.recorded = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.recorded:  # once a run, at fit, or at test where a kept checkpoint is tested
            self.recorded = True
            artifacts.log_params({"model.n_parameters": count_parameters(pl_module.net)})


class KeepBestCheckpoint(pl.Callback):
    """After the test, the checkpoint it tested (the best validation epoch's) kept in the run
    as `checkpoint/best.ckpt`: a sweep tests and registers its best trial's own weights
    (`sweep.best_weights: trial`) instead of training its config again."""

    ARTIFACT = "checkpoint/best.ckpt"

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.best_model_path:
            artifacts.log_file(Path(checkpoint.best_model_path), "checkpoint", "best.ckpt")


class RecordEvaluation(pl.Callback):
    """After the test: metrics, per-class report and confusion matrices of `split` (after the
    post-hoc steps, with the network's own scores as `{split}_plain` and the offsets in
    `evaluation/posthoc.json`), and of its images framed each way when the framing check is on
    (`{split}_<direction>`: `{split}_reframed` with one direction)."""

    def __init__(self, split: str) -> None:
        self.split = split

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        evaluation = pl_module.test_outputs.evaluation
        if self.split == "val" and pl_module.offsets is not None:
            # The offsets were fitted on this very split: its score after them is in-sample.
            plain = pl_module.plain_outputs.evaluation
            show_evaluation(plain, f"{self.split} split, network alone (before post-hoc steps)")
            show_evaluation(
                evaluation, f"{self.split} split after offsets fitted on it (in-sample, optimistic)"
            )
        else:
            show_evaluation(evaluation, f"{self.split} split")
        for name, outputs in pl_module.reframed_outputs.items():  # each framing direction
            show_evaluation(outputs.evaluation, f"{self.split} split, {name} (framing check)")
        files, people = trainer.datamodule.files_and_people(self.split)
        active = pl_module.posthoc.active  # the network's own scores beside, and what was applied
        artifacts.log_scores(
            self.split,
            files,
            people,
            pl_module.test_outputs,
            plain=pl_module.plain_outputs if active else None,
            posthoc=pl_module.posthoc_settings() if active else None,
            reframed=pl_module.reframed_outputs,
        )
        for name in pl_module.reframed_outputs:
            grid = sample_grid_figure(
                reframed_samples(trainer.datamodule, 6, name),
                6,
                f"{name} test images, as the model saw them",
            )
            artifacts.log_figure(grid, f"evaluation/{self.split}_{name}_samples.png")
