"""The training task: one config in, one tracked MLflow run and its metrics out.

Sweeps call the same `train`, so every trial is exactly a training run.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import lightning.pytorch as pl
import numpy as np
import torch
from omegaconf import DictConfig

from fersweep import EMOTIONS
from fersweep.config import build
from fersweep.console import show_data_report, show_evaluation
from fersweep.data.datamodule import EmotionDataModule
from fersweep.errors import ConfigError
from fersweep.figures import class_distribution_figure, sample_grid_figure
from fersweep.metrics import Evaluation, evaluate
from fersweep.model import EmotionClassifier, count_parameters
from fersweep.tracking import Tracker

log = logging.getLogger(__name__)
SAMPLES_PER_EMOTION = 6


@dataclass
class RunResult:
    """A finished run: its metrics, and the evaluated split's truth and predictions."""

    run_id: str
    metrics: dict[str, float]
    evaluation: Evaluation
    truth: np.ndarray
    probabilities: np.ndarray
    prevalence: np.ndarray  # each emotion's share of the original images

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def train(
    cfg: DictConfig,
    overrides: Sequence[str] = (),
    extra_callbacks: Sequence[pl.Callback] = (),
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    on_run_start: Callable[[str], None] | None = None,
) -> RunResult:
    """Train `cfg.model` on `cfg.data`, evaluate on `cfg.eval_split`, record it all in MLflow."""
    pl.seed_everything(cfg.seed, workers=True)
    # Everything that can reject the config is built before any data is read.
    net = build(cfg.model)
    optimizer = build(cfg.optimizer)
    balancing = build(cfg.augment)
    # Partial, so Hydra does not turn the Balancing dataclass back into a config node.
    datamodule: EmotionDataModule = build(cfg.data, _partial_=True)(balancing=balancing)
    tracker: Tracker = build(cfg.tracking)
    callbacks = [build(c) for c in cfg.callbacks.values()]
    validating = _check_validation(cfg, callbacks)

    with tracker.run(run_name or cfg.run_name, parent_run_id, tags) as run:
        if on_run_start:
            on_run_start(run.info.run_id)
        tracker.log_config(cfg, list(overrides))
        tracker.log_model_size(count_parameters(net))
        datamodule.setup("fit")
        _record_data(tracker, datamodule)
        module = EmotionClassifier(net, optimizer, len(EMOTIONS), datamodule.loss_weights())
        with tempfile.TemporaryDirectory(prefix="fersweep-ckpt-") as checkpoint_dir:
            for callback in callbacks:
                if isinstance(callback, pl.callbacks.ModelCheckpoint):
                    callback.dirpath = checkpoint_dir
            trainer: pl.Trainer = build(
                cfg.trainer,
                callbacks=[*callbacks, tracker.epoch_logger(), *extra_callbacks],
                default_root_dir=checkpoint_dir,
                **({} if validating else {"limit_val_batches": 0}),
            )
            trainer.fit(module, datamodule=datamodule)
            best_val_f1 = float(trainer.callback_metrics.get("val/macro_f1_best", float("nan")))
            _restore_best_weights(module, trainer)
        split = cfg.eval_split
        probabilities = torch.cat(
            trainer.predict(module, dataloaders=datamodule.eval_dataloader(split))
        ).numpy()
        truth = datamodule.image_set.labels[datamodule.indices(split)]
        evaluation = evaluate(truth, probabilities.argmax(axis=1))
        show_evaluation(evaluation, f"{split} split")
        tracker.log_evaluation(evaluation, split)
        tracker.log_model(
            module.net,
            datamodule.example_input(),
            asdict(datamodule.preprocessor),
            datamodule.example_image_bytes(),
        )
        metrics = {f"{split}/{k}": v for k, v in evaluation.metrics.items()}
        metrics["val/macro_f1_best"] = best_val_f1
    return RunResult(
        run.info.run_id, metrics, evaluation, truth, probabilities, datamodule.natural_prevalence()
    )


def _check_validation(cfg: DictConfig, callbacks: list[pl.Callback]) -> bool:
    """Whether the run validates; without a validation split nothing may monitor it."""
    if cfg.data.split.val_fraction > 0:
        return True
    monitoring = [type(c).__name__ for c in callbacks if getattr(c, "monitor", None)]
    if monitoring:
        raise ConfigError(
            f"data.split.val_fraction=0 leaves nothing to validate on, but {monitoring} "
            "monitor validation: use callbacks=none or a positive validation fraction"
        )
    return False


def _restore_best_weights(module: EmotionClassifier, trainer: pl.Trainer) -> None:
    """Evaluate the best validation epoch's weights, not the last epoch's."""
    path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if path:
        state = torch.load(path, map_location=module.device, weights_only=True)["state_dict"]
        module.load_state_dict(state)


def _record_data(tracker: Tracker, datamodule: EmotionDataModule) -> None:
    counts = {split: datamodule.class_counts(split) for split in ("train", "val", "test")}
    counts["train balanced"] = datamodule.balanced_train_counts()
    show_data_report(datamodule.report, counts)
    tracker.log_data(datamodule)
    tracker.log_figure(
        class_distribution_figure(counts["train"], "training split, original"),
        "data/class_distribution_original.png",
    )
    tracker.log_figure(
        class_distribution_figure(counts["train balanced"], "training split, as trained"),
        "data/class_distribution_balanced.png",
    )
    tracker.log_figure(_sample_grid(datamodule), "data/samples.png")


def _sample_grid(datamodule: EmotionDataModule):
    """Originals per emotion, then augmented copies of them where the balancing makes copies."""
    train = datamodule.train_dataset()
    rows: dict[str, list[np.ndarray]] = {}
    labels = train.labels[train.index]
    for label, emotion in enumerate(EMOTIONS):
        originals = np.flatnonzero((labels == label) & ~train.is_copy)[:SAMPLES_PER_EMOTION]
        copies = np.flatnonzero((labels == label) & train.is_copy)[:SAMPLES_PER_EMOTION]
        rows[emotion] = [train[i][0].numpy().transpose(1, 2, 0) for i in originals]
        rows[f"{emotion} (aug)"] = [train[i][0].numpy().transpose(1, 2, 0) for i in copies]
    rows = {k: v for k, v in rows.items() if v}
    return sample_grid_figure(rows, SAMPLES_PER_EMOTION, "training images: original and augmented")
