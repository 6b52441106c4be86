"""The training task: one config in, one tracked MLflow run and its metrics out.

Sweeps and comparisons call the same `train`, so every trial is exactly a training run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import lightning.pytorch as pl
import numpy as np
from omegaconf import DictConfig

from fersweep.config import build
from fersweep.errors import ConfigError
from fersweep.metrics import Evaluation, SplitPredictions
from fersweep.tracking import Tracker, artifacts


@dataclass
class RunPlacement:
    """Where a run sits in MLflow: its parent, name and tags, which exceptions end it as
    KILLED rather than FAILED, and who wants its id once it exists."""

    parent_run_id: str | None = None
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    killed_by: tuple[type[BaseException], ...] = ()
    on_start: Callable[[str], None] | None = None


@dataclass
class RunResult:
    """A finished run: its metrics, and the evaluated split's truth and probabilities."""

    run_id: str
    metrics: dict[str, float]
    outputs: SplitPredictions
    prevalence: np.ndarray  # each emotion's share of the original images
    reframed: SplitPredictions | None = None  # the framing check's, when it is on
    face_step: bool = False  # whether its preprocessing cut out faces

    @property
    def truth(self) -> np.ndarray:
        return self.outputs.truth

    @property
    def predicted(self) -> np.ndarray:
        return self.outputs.predicted

    @property
    def evaluation(self) -> Evaluation:
        return self.outputs.evaluation


def train(
    cfg: DictConfig,
    overrides: Sequence[str] = (),
    callbacks: Sequence[pl.Callback] = (),
    placement: RunPlacement | None = None,
) -> RunResult:
    """Fit `cfg.model` on `cfg.data`, test the best checkpoint on `cfg.eval_split`, and record
    it all in one MLflow run (the callbacks in `cfg.callbacks` and the loggers in `cfg.logger`)."""
    placement = placement or RunPlacement()
    pl.seed_everything(cfg.seed, workers=True)
    settings = artifacts.own_values(cfg)
    # Everything that can reject the config is built before any data is read or run opened.
    datamodule = build(cfg.data)
    model = build(cfg.model)
    all_callbacks = [*(build(c) for c in cfg.callbacks.values()), *callbacks]
    trainer_settings = {} if _validates(cfg, all_callbacks) else {"limit_val_batches": 0}
    tracker: Tracker = build(cfg.tracking)
    datamodule.check_at_start()  # then what the legend can refuse (reads it, or downloads it)
    name = placement.name or cfg.run_name
    with tracker.run(name, placement.parent_run_id, placement.tags, placement.killed_by) as run:
        if placement.on_start:
            placement.on_start(run.info.run_id)
        artifacts.log_config(settings, overrides)
        loggers = [build(logger, run_id=run.info.run_id) for logger in cfg.logger.values()]
        with tempfile.TemporaryDirectory(prefix="fersweep-run-") as checkpoints:
            trainer: pl.Trainer = build(
                cfg.trainer,
                callbacks=all_callbacks,
                logger=loggers,
                default_root_dir=checkpoints,
                **trainer_settings,
            )
            trainer.fit(model, datamodule=datamodule)
            best_val_f1 = float(trainer.callback_metrics.get("val/macro_f1_best", float("nan")))
            trainer.test(model, datamodule=datamodule, ckpt_path="best", verbose=False)
    outputs = model.test_outputs
    metrics = {f"{cfg.eval_split}/{k}": v for k, v in outputs.evaluation.metrics.items()}
    metrics["val/macro_f1_best"] = best_val_f1
    if model.reframed_outputs is not None:
        reframed = model.reframed_outputs.evaluation.metrics
        metrics.update({f"{cfg.eval_split}_reframed/{k}": v for k, v in reframed.items()})
    return RunResult(
        run.info.run_id,
        metrics,
        outputs,
        datamodule.natural_prevalence(),
        model.reframed_outputs,
        datamodule.preprocessor.face is not None,
    )


def _validates(cfg: DictConfig, callbacks: list[pl.Callback]) -> bool:
    """Whether the run validates; without a validation split nothing may monitor it."""
    if cfg.data.split.val_fraction > 0:
        return True
    monitoring = [type(c).__name__ for c in callbacks if getattr(c, "monitor", None)]
    if monitoring:
        raise ConfigError(
            f"data.split.val_fraction=0 leaves nothing to validate on, but {monitoring} "
            "monitor validation: use callbacks=last_epoch or a positive validation fraction"
        )
    return False
