"""Fitting one model inside an open MLflow run: a network through Lightning, or the classical
reference through scikit-learn, each scored on the evaluated split and recorded alike."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.utils.deterministic
from omegaconf import DictConfig

from fersweep import EMOTIONS
from fersweep.config.compose import build
from fersweep.data.report import show_data_report
from fersweep.evaluation.console import show_evaluation
from fersweep.evaluation.metrics import SplitPredictions
from fersweep.models.classical import Reference
from fersweep.tracking import artifacts


@dataclass
class FitScores:
    """What a fitted model scored: the evaluated split (after post-hoc steps), the best
    validation macro F1, the framing check's reframed images, the network's own scores."""

    outputs: SplitPredictions
    best_val_f1: float
    reframed: dict[str, SplitPredictions] = field(default_factory=dict)  # by direction
    plain: SplitPredictions | None = None


def build_trainer(trainer_cfg: DictConfig, **settings) -> pl.Trainer:
    """The configured Trainer, torch's memory left unfilled (`without_nan_fill`)."""
    without_nan_fill()
    return build(trainer_cfg, **settings)


def without_nan_fill() -> None:
    """With deterministic algorithms on (`trainer.deterministic`), torch also fills every tensor
    it allocates with NaN, so a kernel reading memory it never wrote gives NaN rather than
    garbage: a debugging aid that changes no result of a correct kernel, and cost a CPU
    training step of the mini-Xception 13-25% (results/2026-12-07-deterministic-cpu). The
    deterministic algorithms themselves stay on."""
    torch.utils.deterministic.fill_uninitialized_memory = False


def fit_network(
    cfg: DictConfig,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    callbacks: list[pl.Callback],
    validates: bool,
    run_id: str,
    checkpoint: Path | None = None,
) -> FitScores:
    """Fit, then test the best validation epoch; given a `checkpoint` (a run's kept best epoch),
    only test it: the same weights, scored and recorded as a run of their own."""
    loggers = [build(logger, run_id=run_id) for logger in cfg.logger.values()]
    with tempfile.TemporaryDirectory(prefix="fersweep-run-") as checkpoints, quiet_library():
        trainer = build_trainer(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers,
            default_root_dir=checkpoints,
            **({} if validates else {"limit_val_batches": 0}),
        )
        if checkpoint is None:
            trainer.fit(model, datamodule=datamodule)
            best_val_f1 = float(trainer.callback_metrics.get("val/macro_f1_best", float("nan")))
            tested = "best"
        else:
            best_val_f1, tested = best_score(checkpoint), str(checkpoint)
        trainer.test(model, datamodule=datamodule, ckpt_path=tested, verbose=False)
    return FitScores(
        outputs=model.test_outputs,
        best_val_f1=best_val_f1,
        reframed=model.reframed_outputs,
        plain=model.plain_outputs,
    )


def best_score(checkpoint: Path) -> float:
    """The monitored score of the epoch a Lightning checkpoint kept (its ModelCheckpoint's)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    for key, state in saved.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return float("nan")


@contextmanager
def quiet_library() -> Iterator[None]:
    """Notices a user can do nothing about, not passed on: Lightning's own use of torch's
    deprecated `LeafSpec` (a FutureWarning every run); Lightning's note that modules start
    training in eval mode, which is what a frozen backbone's batch norm is meant to do; and its
    hint to prepend `srun` wherever Slurm is installed (every `fit` asks whether it runs under
    Slurm): a run is one process, and the sweep's Slurm jobs start it through srun already;
    testing a kept checkpoint, its note that the folder the checkpoint was saved in (the
    training run's temporary one) is another."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode at the start")
        warnings.filterwarnings("ignore", r"The `srun` command is available on your system")
        warnings.filterwarnings("ignore", r"The dirpath has changed from")
        yield


def fit_classical(model: Reference, datamodule, split: str) -> FitScores:
    """Fit on the original training images (no copies: the SVM's class weights balance), score
    the validation split and `split` (and its reframed images with the framing check), then
    record data and scores in the active MLflow run as a network's run records them (the same
    functions of fersweep.tracking.artifacts its callbacks call)."""
    datamodule.setup("fit")
    data = datamodule.record()
    show_data_report(data.report, data.counts)
    artifacts.log_data(data)
    images, labels = datamodule.image_set.images, datamodule.image_set.labels

    def scored(index: np.ndarray, pictures: np.ndarray | None = None) -> SplitPredictions:
        pictures = images[index] if pictures is None else pictures
        return SplitPredictions(labels[index], model.probabilities(pictures, len(EMOTIONS)))

    train = datamodule.indices("train")
    model.fit(images[train], labels[train])
    validation = datamodule.indices("val")
    best_val_f1 = scored(validation).evaluation.metrics["macro_f1"] if len(validation) else np.nan
    evaluated = datamodule.indices(split)
    outputs = scored(evaluated)
    reframed = {  # the framing check, each direction
        name: scored(evaluated, datamodule.reframed_images(evaluated, name))
        for name in datamodule.framings
    }
    show_evaluation(outputs.evaluation, f"{split} split")
    artifacts.log_metrics({"val/macro_f1": best_val_f1, "val/macro_f1_best": best_val_f1})
    files, people = datamodule.files_and_people(split)
    artifacts.log_scores(split, files, people, outputs, reframed=reframed)
    return FitScores(outputs=outputs, best_val_f1=float(best_val_f1), reframed=reframed)
