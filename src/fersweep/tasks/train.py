"""The training task: one config in, one tracked MLflow run and its metrics out.

Sweeps and comparisons call the same `train`, so every trial is exactly a training run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
from omegaconf import DictConfig

from fersweep.config.compose import build
from fersweep.config.values import own_values
from fersweep.errors import ConfigError
from fersweep.evaluation.metrics import Evaluation, SplitPredictions
from fersweep.models.classical import Reference
from fersweep.tasks.fitting import fit_classical, fit_network
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


@dataclass(kw_only=True)
class RunResult:
    """A finished run: its metrics, and the evaluated split's truth and probabilities."""

    run_id: str
    metrics: dict[str, float]
    outputs: SplitPredictions  # after the post-hoc steps, if any
    prevalence: np.ndarray  # each emotion's share of the original images
    # The framing check's, by direction (`reframed` with one), when it is on.
    reframed: dict[str, SplitPredictions] = field(default_factory=dict)
    face_step: bool = False  # whether its preprocessing cut out faces
    files: np.ndarray | None = None  # the evaluated images, in the order of `outputs`
    people: np.ndarray | None = None  # whose face each evaluated image shows
    plain: SplitPredictions | None = None  # the network's own scores, before post-hoc steps
    reused: bool = False  # read back from an earlier run's records, not trained now

    @classmethod
    def recorded(
        cls,
        run_id: str,
        metrics: dict[str, float],
        split: str,
        face_step: bool,
        framings: Sequence[str] = (),
    ) -> RunResult | None:
        """A finished run read back from what it recorded in MLflow (the predictions of `split`,
        before the post-hoc steps and framed each way of `framings`), or None where its records
        cannot tell the whole result (a run from before these records existed)."""
        scored = artifacts.recorded_predictions(run_id, split)
        prevalence = artifacts.recorded_prevalence(run_id)
        if scored is None or prevalence is None:
            return None
        files, people, outputs = scored
        plain = artifacts.recorded_predictions(run_id, f"{split}_plain")
        reframed = {
            name: artifacts.recorded_predictions(run_id, f"{split}_{name}") for name in framings
        }
        if any(found is None for found in reframed.values()):
            return None
        return cls(
            run_id=run_id,
            metrics=metrics,
            outputs=outputs,
            prevalence=prevalence,
            reframed={name: found[2] for name, found in reframed.items()},
            face_step=face_step,
            files=files,
            people=people,
            plain=plain[2] if plain else None,
            reused=True,
        )

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
    checkpoint: Path | None = None,
) -> RunResult:
    """Fit `cfg.model` on `cfg.data`, test the best checkpoint on `cfg.eval_split`, and record
    it all in one MLflow run (the callbacks in `cfg.callbacks` and the loggers in `cfg.logger`).
    Given a `checkpoint` of a network of this config (an earlier run's best epoch), it is tested
    instead of fitted. A reference (`model=hog_svm`, `fer_probe`, `fer_off_the_shelf`) is fitted
    and recorded the same way, without Lightning."""
    placement = placement or RunPlacement()
    pl.seed_everything(cfg.seed, workers=True)
    settings = own_values(cfg)
    # Everything that can reject the config is built before any data is read or run opened.
    datamodule = build(cfg.data)
    model = build(cfg.model)
    classical = isinstance(model, Reference)
    all_callbacks = [] if classical else [*(build(c) for c in cfg.callbacks.values()), *callbacks]
    validates = _validates(cfg, all_callbacks)
    tracker: Tracker = build(cfg.tracking)
    datamodule.check_at_start()  # then what the legend can refuse (reads it, or downloads it)
    name = placement.name or cfg.run_name
    with tracker.run(name, placement.parent_run_id, placement.tags, placement.killed_by) as run:
        if placement.on_start:
            placement.on_start(run.info.run_id)
        artifacts.log_config(settings, overrides)
        if classical:
            scores = fit_classical(model, datamodule, cfg.eval_split)
        else:
            scores = fit_network(
                cfg, model, datamodule, all_callbacks, validates, run.info.run_id, checkpoint
            )
    metrics = {f"{cfg.eval_split}/{k}": v for k, v in scores.outputs.evaluation.metrics.items()}
    metrics["val/macro_f1_best"] = scores.best_val_f1
    for name, reframed in scores.reframed.items():
        framed = reframed.evaluation.metrics
        metrics.update({f"{cfg.eval_split}_{name}/{k}": v for k, v in framed.items()})
    files, people = datamodule.files_and_people(cfg.eval_split)
    return RunResult(
        run_id=run.info.run_id,
        metrics=metrics,
        outputs=scores.outputs,
        prevalence=datamodule.natural_prevalence(),
        reframed=scores.reframed,
        face_step=datamodule.preprocessor.face is not None,
        files=files,
        people=people,
        plain=scores.plain,
    )


def _validates(cfg: DictConfig, callbacks: list[pl.Callback]) -> bool:
    """Whether the run validates; without a validation split nothing may monitor it."""
    if cfg.data.split.val_fraction > 0:
        return True
    posthoc = cfg.model.get("posthoc", {})
    if posthoc.get("offsets") or posthoc.get("prior"):
        raise ConfigError(
            "posthoc=offsets (or prior) fits on the validation split, but "
            "data.split.val_fraction=0 leaves none: use a positive validation fraction"
        )
    monitoring = [type(c).__name__ for c in callbacks if getattr(c, "monitor", None)]
    if monitoring:
        raise ConfigError(
            f"data.split.val_fraction=0 leaves nothing to validate on, but {monitoring} "
            "monitor validation: use callbacks=last_epoch or a positive validation fraction"
        )
    return False
