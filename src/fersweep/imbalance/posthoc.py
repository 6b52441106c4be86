"""After training, before scoring: horizontal-flip test-time augmentation and per-class logit
offsets fitted on the validation split for macro F1. The same settings travel inside the logged
classifier, so `fersweep predict` and `mlflow models serve` answer as the evaluation did."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fersweep.errors import ConfigError


@dataclass
class PostHoc:
    """`flip`: average the probabilities of each image and its mirror image. `offsets`: add a
    per-class offset to the log-probabilities, chosen on the validation split by coordinate
    ascent over `grid` (`rounds` passes over the classes) to maximise macro F1."""

    flip: bool = False
    offsets: bool = False
    grid: list[float] = field(default_factory=lambda: np.linspace(-3, 3, 25).tolist())
    rounds: int = 3

    def __post_init__(self) -> None:
        if self.offsets and (not self.grid or 0.0 not in [float(g) for g in self.grid]):
            raise ConfigError(
                f"posthoc.grid={list(self.grid)}: list the candidate offsets, 0 among them "
                "(0 is 'leave this class alone')"
            )
        if self.rounds <= 0:
            raise ConfigError(f"posthoc.rounds={self.rounds}: must be positive")

    @property
    def active(self) -> bool:
        return self.flip or self.offsets


Net = Callable[[torch.Tensor], torch.Tensor]


def probabilities(net: Net, images: torch.Tensor, flip: bool) -> torch.Tensor:
    """Softmax of `net` on a batch (N x C x H x W), averaged with its mirror image's if `flip`."""
    own = torch.softmax(net(images).float(), dim=1)
    return flip_averaged(net, images, own) if flip else own


def flip_averaged(net: Net, images: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """`own` (the softmax of `net` on `images`) averaged with the mirror images' softmax."""
    return (own + torch.softmax(net(images.flip(-1)).float(), dim=1)) / 2


def apply_offsets(probabilities: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """Probabilities re-normalised after adding `offsets` to their logarithms (argmax moves
    towards the classes with positive offsets); unchanged when `offsets` is None."""
    if offsets is None:
        return probabilities
    logits = np.log(np.clip(probabilities, 1e-12, None)) + offsets
    logits -= logits.max(axis=1, keepdims=True)
    adjusted = np.exp(logits)
    return adjusted / adjusted.sum(axis=1, keepdims=True)


def fit_offsets(
    truth: np.ndarray, probabilities: np.ndarray, grid: list[float], rounds: int
) -> np.ndarray:
    """Per-class offsets maximising macro F1 of `apply_offsets(probabilities, offsets)` on
    (`truth`, `probabilities`): coordinate ascent, one class at a time, over `grid`. A change
    is kept only if it strictly improves, so with nothing to gain the offsets stay at zero."""
    from fersweep.evaluation.metrics import (
        macro_f1,
    )  # not at the top: the served model has no scikit-learn

    log_p = np.log(np.clip(probabilities, 1e-12, None))
    offsets = np.zeros(probabilities.shape[1])

    def score(candidate: np.ndarray) -> float:
        return macro_f1(truth, (log_p + candidate).argmax(axis=1))

    best = score(offsets)
    for _ in range(rounds):
        improved = False
        for label in range(len(offsets)):
            for value in grid:
                candidate = offsets.copy()
                candidate[label] = value
                candidate_score = score(candidate)
                if candidate_score > best + 1e-12:
                    best, offsets, improved = candidate_score, candidate, True
        if not improved:
            break
    return offsets


def settings(flip: bool, offsets: np.ndarray | None) -> dict[str, Any]:
    """What the logged classifier keeps (and `evaluation/posthoc.json` records): whether to flip,
    and the fitted offsets or None."""
    return {"flip": flip, "offsets": None if offsets is None else offsets.tolist()}


def from_settings(values: Mapping[str, Any]) -> tuple[bool, np.ndarray | None]:
    """(flip, offsets) from `settings(...)` as the logged model keeps them."""
    offsets = values.get("offsets")
    return bool(values.get("flip", False)), None if offsets is None else np.asarray(offsets)
