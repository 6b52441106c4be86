"""Balancing: fighting the class skew with augmented copies of rare classes, class weights or a
weighted sampler. How a copy is made is the augment module's business."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import WeightedRandomSampler

from fersweep.errors import ConfigError
from fersweep.imbalance import augment

BALANCE_METHODS = ("none", "augment", "class_weights", "sampler")


@dataclass
class Balancing:
    """How the training split is balanced; validation and test always stay original images.

    method: `none` (the original skewed data), `augment` (the seed's idea: rare classes grown by
    up to `factor` augmented copies of each image, at most up to `target` images per class, where
    `target` is `max` for the largest class's size or a number), `class_weights` (loss weighted by
    inverse class frequency) or `sampler` (a weighted random sampler).
    `before_split` reproduces the seed's leaky protocol: copies are made once, before splitting.
    `pipeline` makes each copy, fresh every epoch: the `augment` config group (fersweep.imbalance.augment).
    """

    method: str
    factor: int
    target: int | str
    before_split: bool
    pipeline: Any

    def __post_init__(self) -> None:
        if self.method not in BALANCE_METHODS:
            raise ConfigError(f"balancing.method={self.method!r}: use one of {BALANCE_METHODS}")
        if self.factor < 0:
            raise ConfigError(f"balancing.factor={self.factor}: must be 0 or more")
        if self.target != "max" and (not isinstance(self.target, int) or self.target <= 0):
            raise ConfigError(f"balancing.target={self.target!r}: use 'max' or a positive count")
        if self.before_split and self.method != "augment":
            raise ConfigError(
                "balancing.before_split=true only applies to balancing.method=augment"
            )

    def copies_per_image(self, labels: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
        """How many augmented copies each image gets (0 unless method is `augment`)."""
        copies = np.zeros(len(labels), dtype=np.int64)
        if self.method != "augment" or self.factor == 0:
            return copies
        counts = np.bincount(labels, minlength=num_classes)
        target = int(counts.max()) if self.target == "max" else int(self.target)
        rng = np.random.default_rng(seed)
        for label in np.flatnonzero(counts):
            members = np.flatnonzero(labels == label)
            wanted = min(max(target - counts[label], 0), self.factor * counts[label])
            copies[members] = wanted // counts[label]
            # The remainder goes to a seeded random choice of images, one extra copy each.
            extra = rng.choice(members, size=wanted % counts[label], replace=False)
            copies[extra] += 1
        return copies

    def loss_weights(self, labels: np.ndarray, num_classes: int) -> torch.Tensor | None:
        """Per-class loss weights for `class_weights` (classes absent from training weigh 0)."""
        if self.method != "class_weights":
            return None
        present = np.unique(labels)
        weights = np.zeros(num_classes, dtype=np.float32)
        weights[present] = compute_class_weight("balanced", classes=present, y=labels)
        return torch.from_numpy(weights)

    def sampler(self, labels: np.ndarray, seed: int) -> WeightedRandomSampler | None:
        """A sampler drawing every class equally often, for `sampler`."""
        if self.method != "sampler":
            return None
        counts = np.bincount(labels)
        weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.double)
        generator = torch.Generator().manual_seed(seed)
        return WeightedRandomSampler(weights, len(labels), replacement=True, generator=generator)

    def augment(self, images: np.ndarray) -> np.ndarray:
        """Fresh augmented copies of N x H x W x C uint8 images."""
        if len(images) == 0:
            return images.copy()
        return augment.apply(self.pipeline, images)


def expand_with_copies(copies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source index and is-copy flag for every item of the balanced set: originals, then copies."""
    originals = np.arange(len(copies))
    repeated = np.repeat(originals, copies)
    index = np.concatenate([originals, repeated])
    is_copy = np.concatenate([np.zeros(len(copies), bool), np.ones(len(repeated), bool)])
    return index, is_copy
