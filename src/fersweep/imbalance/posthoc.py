"""After training, before scoring: horizontal-flip test-time augmentation, post-hoc logit
adjustment (the training prior taken out, its strength chosen on the validation split) and
per-class logit offsets fitted on the validation split for macro F1. The same settings travel inside the logged
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
    """`flip`: average the probabilities of each image and its mirror image. `prior`: subtract
    tau times the log of the training prior (the class shares as trained) from the
    log-probabilities, tau chosen from `taus` on the validation split for macro F1 (Menon et
    al., 2021): one number fitted, where `offsets` fits one per class. `offsets`: add a
    per-class offset to the log-probabilities (after the prior's, when both are on), chosen on
    the validation split by coordinate ascent over `grid` (`rounds` passes over the classes)."""

    flip: bool = False
    offsets: bool = False
    grid: list[float] = field(default_factory=lambda: np.linspace(-3, 3, 25).tolist())
    rounds: int = 3
    prior: bool = False
    taus: list[float] = field(default_factory=lambda: np.linspace(0, 2, 9).tolist())

    def __post_init__(self) -> None:
        if self.offsets and not _has_zero(self.grid):
            raise ConfigError(
                f"posthoc.grid={list(self.grid)}: list the candidate offsets, 0 among them "
                "(0 is 'leave this class alone')"
            )
        if self.rounds <= 0:
            raise ConfigError(f"posthoc.rounds={self.rounds}: must be positive")
        if self.prior and not _has_zero(self.taus):
            raise ConfigError(
                f"posthoc.taus={list(self.taus)}: list the candidate strengths, 0 among them "
                "(0 is 'leave the scores alone')"
            )

    @property
    def active(self) -> bool:
        return self.flip or self.offsets or self.prior

    @property
    def fits_on_validation(self) -> bool:
        return self.offsets or self.prior

    def fit(
        self, truth: np.ndarray, probabilities: np.ndarray, train_counts: np.ndarray
    ) -> tuple[np.ndarray | None, float | None]:
        """The offsets to apply (None: none) and the prior's chosen tau (None: prior off),
        fitted on the validation split's `truth` and (flipped, if on) `probabilities`."""
        offsets, tau = None, None
        if self.prior:
            tau, offsets = fit_prior_tau(truth, probabilities, train_counts, self.taus)
        if self.offsets:
            adjusted = apply_offsets(probabilities, offsets)
            per_class = fit_offsets(truth, adjusted, self.grid, self.rounds)
            offsets = per_class if offsets is None else offsets + per_class
        return offsets, tau


def _has_zero(candidates: list[float]) -> bool:
    """Whether 0 ('leave it alone') is among the candidates a fit chooses from."""
    return 0.0 in [float(c) for c in candidates]


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


def fit_prior_tau(
    truth: np.ndarray, probabilities: np.ndarray, train_counts: np.ndarray, taus: list[float]
) -> tuple[float, np.ndarray]:
    """The tau in `taus` whose offsets `-tau * log(prior)` give the best macro F1 on (`truth`,
    `probabilities`), and those offsets; ties go to the smaller tau (the lighter change)."""
    from fersweep.evaluation.metrics import macro_f1  # the served model has no scikit-learn

    counts = np.asarray(train_counts, dtype=float)
    log_prior = np.log(np.clip(counts / counts.sum(), 1e-12, None))
    log_p = np.log(np.clip(probabilities, 1e-12, None))
    scored = [
        (macro_f1(truth, (log_p - tau * log_prior).argmax(axis=1)), -tau)
        for tau in sorted(float(t) for t in taus)
    ]
    tau = -max(scored)[1]
    return tau, -tau * log_prior


def settings(flip: bool, offsets: np.ndarray | None, tau: float | None = None) -> dict[str, Any]:
    """What the logged classifier keeps (and `evaluation/posthoc.json` records): whether to flip,
    the fitted offsets or None, and, for the record, the prior's tau when it was fitted."""
    kept: dict[str, Any] = {"flip": flip, "offsets": None if offsets is None else offsets.tolist()}
    if tau is not None:
        kept["prior_tau"] = tau
    return kept


def from_settings(values: Mapping[str, Any]) -> tuple[bool, np.ndarray | None]:
    """(flip, offsets) from `settings(...)` as the logged model keeps them."""
    offsets = values.get("offsets")
    return bool(values.get("flip", False)), None if offsets is None else np.asarray(offsets)
