"""Fighting the class skew: augmented copies of rare classes, class weights or a weighted sampler."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import WeightedRandomSampler

from fersweep.errors import ConfigError

BALANCE_METHODS = ("none", "augment", "class_weights", "sampler")


@dataclass
class Balancing:
    """How the training split is balanced; validation and test always stay original images.

    method: `none` (the original skewed data), `augment` (the seed's idea: rare classes grown by
    up to `factor` augmented copies of each image, at most up to `target` images per class, where
    `target` is `max` for the largest class's size or a number), `class_weights` (loss weighted by
    inverse class frequency) or `sampler` (a weighted random sampler).
    `before_split` reproduces the seed's leaky protocol: copies are made once, before splitting.
    `pipeline` makes each copy, fresh every epoch: a `BatchAugment` (a batch at a time) or an
    albumentations transform (an image at a time).
    """

    method: str
    factor: int
    target: int | str
    before_split: bool
    pipeline: Any

    def __post_init__(self) -> None:
        if self.method not in BALANCE_METHODS:
            raise ConfigError(f"augment.method={self.method!r}: use one of {BALANCE_METHODS}")
        if self.factor < 0:
            raise ConfigError(f"augment.factor={self.factor}: must be 0 or more")
        if self.target != "max" and (not isinstance(self.target, int) or self.target <= 0):
            raise ConfigError(f"augment.target={self.target!r}: use 'max' or a positive count")
        if self.before_split and self.method != "augment":
            raise ConfigError("augment.before_split=true only applies to augment.method=augment")

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
        if isinstance(self.pipeline, BatchAugment):
            batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
            return self.pipeline(batch).numpy().transpose(0, 2, 3, 1)
        squeeze = images.shape[3] == 1
        return np.stack(
            [
                self.pipeline(image=image[:, :, 0] if squeeze else image)["image"].reshape(
                    image.shape
                )
                for image in images
            ]
        )


class BatchAugment:
    """The balanced arm's augmentation for a whole batch at once, in torch, on the batch's device.

    The same operations as the albumentations pipeline (flip; rotate, scale and shift with black
    borders; brightness and contrast; Gaussian noise; black rectangles), each drawn per image
    with its own probability. At 50x50 on a CPU, albumentations and kornia spend 200-240 us per
    image, mostly in Python overhead; this spends under 50 us, which keeps augmentation from
    slowing training.
    Ranges are [low, high]; shifts and hole sizes are fractions of the image side, noise and
    brightness fractions of the full intensity range.
    """

    def __init__(
        self,
        flip_p: float,
        affine_p: float,
        rotate_degrees: float,
        scale: tuple[float, float],
        translate: float,
        brightness_contrast_p: float,
        brightness: float,
        contrast: float,
        noise_p: float,
        noise_std: tuple[float, float],
        dropout_p: float,
        dropout_holes: tuple[int, int],
        dropout_size: tuple[float, float],
    ) -> None:
        for key, p in (
            ("flip_p", flip_p),
            ("affine_p", affine_p),
            ("brightness_contrast_p", brightness_contrast_p),
            ("noise_p", noise_p),
            ("dropout_p", dropout_p),
        ):
            if not 0 <= p <= 1:
                raise ConfigError(f"augment.pipeline.{key}={p}: a probability is within [0, 1]")
        for key, (low, high) in (
            ("scale", scale),
            ("noise_std", noise_std),
            ("dropout_holes", dropout_holes),
            ("dropout_size", dropout_size),
        ):
            if not 0 <= low <= high:
                raise ConfigError(f"augment.pipeline.{key}=[{low}, {high}]: need 0 <= low <= high")
        self.flip_p, self.affine_p = flip_p, affine_p
        self.rotate, self.scale, self.translate = math.radians(rotate_degrees), scale, translate
        self.brightness_contrast_p, self.brightness, self.contrast = (
            brightness_contrast_p,
            brightness,
            contrast,
        )
        self.noise_p, self.noise_std = noise_p, noise_std
        self.dropout_p, self.dropout_holes, self.dropout_size = (
            dropout_p,
            dropout_holes,
            dropout_size,
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """N x C x H x W uint8 images in, augmented copies out."""
        x = images.float().div_(255)
        for p, operation in (
            (self.flip_p, lambda part: part.flip(-1)),
            (self.affine_p, self._affine),
            (self.brightness_contrast_p, self._brightness_contrast),
            (self.noise_p, self._noise),
            (self.dropout_p, self._dropout),
        ):
            chosen = torch.rand(len(x), device=x.device) < p
            if chosen.any():
                x[chosen] = operation(x[chosen])
        return x.mul_(255).round_().clamp_(0, 255).to(torch.uint8)

    @staticmethod
    def _uniform(x: torch.Tensor, low: float, high: float, *shape: int) -> torch.Tensor:
        """One draw per image, shaped (N, *shape)."""
        return torch.empty(len(x), *shape, device=x.device).uniform_(low, high)

    def _affine(self, x: torch.Tensor) -> torch.Tensor:
        angle = self._uniform(x, -self.rotate, self.rotate)
        scale = self._uniform(x, *self.scale)
        # Normalised coordinates span 2, so a shift of t image sides is 2t.
        tx, ty = (self._uniform(x, -self.translate, self.translate, 2) * 2).unbind(dim=1)
        # affine_grid maps output to input positions: the inverse of scale-rotate-then-shift.
        a, b = angle.cos() / scale, angle.sin() / scale
        theta = torch.stack(
            [
                torch.stack([a, b, -(a * tx + b * ty)], dim=1),
                torch.stack([-b, a, b * tx - a * ty], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _brightness_contrast(self, x: torch.Tensor) -> torch.Tensor:
        alpha = 1 + self._uniform(x, -self.contrast, self.contrast, 1, 1, 1)
        beta = self._uniform(x, -self.brightness, self.brightness, 1, 1, 1)
        return (x * alpha + beta).clamp_(0, 1)

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        std = self._uniform(x, *self.noise_std, 1, 1, 1)
        return (x + torch.randn_like(x) * std).clamp_(0, 1)

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        low, high = self.dropout_holes
        holes = torch.randint(low, high + 1, (len(x), 1, 1), device=x.device)
        mask = torch.zeros(len(x), height, width, dtype=torch.bool, device=x.device)
        for hole in range(high):
            rows, cols = self._span(x, height), self._span(x, width)
            mask |= rows[:, :, None] & cols[:, None, :] & (hole < holes)
        return x.masked_fill(mask[:, None], 0.0)

    def _span(self, x: torch.Tensor, side: int) -> torch.Tensor:
        """Per image, a run of `dropout_size` of `side` positions at a random place (N x side)."""
        length = (self._uniform(x, *self.dropout_size) * side).round().clamp(min=1)
        start = (torch.rand(len(x), device=x.device) * (side - length + 1)).floor()
        positions = torch.arange(side, device=x.device)
        return (positions >= start[:, None]) & (positions < (start + length)[:, None])


def expand_with_copies(copies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source index and is-copy flag for every item of the balanced set: originals, then copies."""
    originals = np.arange(len(copies))
    repeated = np.repeat(originals, copies)
    index = np.concatenate([originals, repeated])
    is_copy = np.concatenate([np.zeros(len(copies), bool), np.ones(len(repeated), bool)])
    return index, is_copy
