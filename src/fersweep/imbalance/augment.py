"""Augmentation: how the balanced arm's copies of rare-class images are made.

Two pipelines do the same operations: `BatchAugment` (torch, a batch at a time; config
`augment=batched`, the default) and an albumentations `Compose` (an image at a time; config
`augment=albumentations`). `apply` runs either on N x H x W x C uint8 images.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fersweep.errors import ConfigError


def apply(pipeline: Any, images: np.ndarray) -> np.ndarray:
    """Augmented copies of N x H x W x C uint8 images, by either kind of pipeline."""
    if isinstance(pipeline, BatchAugment):
        batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        return pipeline(batch).numpy().transpose(0, 2, 3, 1)
    squeeze = images.shape[3] == 1
    return np.stack(
        [
            pipeline(image=image[:, :, 0] if squeeze else image)["image"].reshape(image.shape)
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
                raise ConfigError(f"augment.{key}={p}: a probability is within [0, 1]")
        for key, (low, high) in (
            ("scale", scale),
            ("noise_std", noise_std),
            ("dropout_holes", dropout_holes),
            ("dropout_size", dropout_size),
        ):
            if not 0 <= low <= high:
                raise ConfigError(f"augment.{key}=[{low}, {high}]: need 0 <= low <= high")
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


class BatchMix:
    """Mixup and/or cutmix on whole training batches (torchvision's `transforms.v2.MixUp` and
    `CutMix`; one of `methods` drawn per batch), applied to a batch with `probability`. Returns
    float images and soft targets (N x classes), which every loss in fersweep.imbalance.losses accepts."""

    METHODS = ("mixup", "cutmix")

    def __init__(self, methods: list[str], alpha: float, probability: float, num_classes: int):
        from torchvision.transforms import v2

        unknown = sorted(set(methods) - set(self.METHODS))
        if unknown:
            raise ConfigError(f"mix.methods: unknown {unknown}; choose from {list(self.METHODS)}")
        if alpha <= 0:
            raise ConfigError(f"mix.alpha={alpha}: must be positive (the Beta distribution's)")
        if not 0 <= probability <= 1:
            raise ConfigError(f"mix.probability={probability}: must be in [0, 1]")
        kinds = {"mixup": v2.MixUp, "cutmix": v2.CutMix}
        transforms = [kinds[m](alpha=alpha, num_classes=num_classes) for m in methods]
        self.transform = v2.RandomChoice(transforms) if transforms else None
        self.probability = probability

    @property
    def active(self) -> bool:
        return self.transform is not None and self.probability > 0

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.active or torch.rand(()) >= self.probability:
            return images, labels
        # The pairs are neighbours in the batch (torchvision's convention): the loader shuffles.
        return self.transform(images.float(), labels)
