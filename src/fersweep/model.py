"""The configurable CNN and the LightningModule that trains it on macro F1."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassF1Score

from fersweep.augment import BatchMix
from fersweep.errors import ConfigError
from fersweep.losses import ImbalanceLoss
from fersweep.metrics import SplitPredictions
from fersweep.posthoc import (
    PostHoc,
    apply_offsets,
    fit_offsets,
    flip_averaged,
    probabilities,
    settings,
)

INITS = ("torch", "glorot")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


class EmotionCNN(nn.Module):
    """conv(filters@kernel_size) [-> conv(second_filters@second_kernel_size)] -> max-pool -> dropout
    -> dense layers (`dense_units`, each followed by dropout) -> `num_classes` logits.

    Convolutions are unpadded ("valid") as in the seed report. Takes uint8 or float images
    (N x C x H x W, 0-255) and scales them itself, so a logged model needs no separate step.
    `init="glorot"` initialises weights as Keras does (Glorot uniform, zero biases); `"torch"`
    keeps PyTorch's defaults.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        filters: int,
        kernel_size: int,
        second_filters: int | None,
        second_kernel_size: int | None,
        pool_size: int,
        activation: str,
        conv_dropout: float,
        dense_units: Sequence[int],
        dense_dropout: float,
        init: str,
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ConfigError(f"model.net.init={init!r}: use one of {INITS}")
        _check_positive(filters=filters, kernel_size=kernel_size, pool_size=pool_size)
        _check_dropout(conv_dropout=conv_dropout, dense_dropout=dense_dropout)
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"model.net.activation={activation!r}: use one of {sorted(ACTIVATIONS)}"
            )
        act = ACTIVATIONS[activation]
        side = _after_conv(image_size, kernel_size, "model.net.kernel_size", "data.preprocess.size")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, filters, kernel_size), act()]
        channels = filters
        if second_filters:
            _check_positive(second_filters=second_filters, second_kernel_size=second_kernel_size)
            side = _after_conv(
                side, second_kernel_size, "model.net.second_kernel_size", "first conv"
            )
            layers += [nn.Conv2d(filters, second_filters, second_kernel_size), act()]
            channels = second_filters
        if pool_size > side:
            raise ConfigError(
                f"model.net.pool_size={pool_size} is larger than the {side}x{side} feature map it pools"
            )
        side //= pool_size
        layers += [nn.MaxPool2d(pool_size), nn.Dropout(conv_dropout), nn.Flatten()]
        width = channels * side * side
        for units in dense_units:
            _check_positive(dense_units=units)
            layers += [nn.Linear(width, units), act(), nn.Dropout(dense_dropout)]
            width = units
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)
        self.input_shape = (in_channels, image_size, image_size)
        if init == "glorot":
            self.apply(_glorot)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images.float() / 255.0)


class EmotionResNet(nn.Module):
    """A small residual network for grey (or colour) faces, from torchvision's `BasicBlock`:
    a 3x3 stem of `width` channels, then one stage per entry of `blocks` (that many blocks;
    each later stage halves the side and doubles the channels), global average pooling,
    dropout and the class layer. Built from scratch (`weights=None` in torchvision's terms:
    nothing is downloaded). Takes 0-255 images like EmotionCNN."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        width: int,
        blocks: Sequence[int],
        dropout: float,
    ) -> None:
        from torchvision.models.resnet import BasicBlock

        super().__init__()
        _check_positive(width=width)
        _check_dropout(dropout=dropout)
        if not blocks or any(b <= 0 for b in blocks):
            raise ConfigError(f"model.net.blocks={list(blocks)}: list positive block counts")
        if image_size < 2 ** len(blocks):
            raise ConfigError(
                f"model.net.blocks: {len(blocks)} stages halve a {image_size}x{image_size} image "
                "to nothing; use fewer stages or larger images (data.preprocess.size)"
            )
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        channels = width
        for stage, count in enumerate(blocks):
            out = width * 2**stage
            stride = 1 if stage == 0 else 2
            for number in range(count):
                step = stride if number == 0 else 1
                downsample = None
                if step != 1 or channels != out:
                    downsample = nn.Sequential(
                        nn.Conv2d(channels, out, 1, stride=step, bias=False), nn.BatchNorm2d(out)
                    )
                layers.append(BasicBlock(channels, out, stride=step, downsample=downsample))
                channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout)]
        layers.append(nn.Linear(channels, num_classes))
        self.layers = nn.Sequential(*layers)
        self.input_shape = (in_channels, image_size, image_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images.float() / 255.0)


def _glorot(layer: nn.Module) -> None:
    if isinstance(layer, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _after_conv(side: int, kernel: int, key: str, source: str) -> int:
    if kernel > side:
        raise ConfigError(
            f"{key}={kernel} is larger than the {side}x{side} feature map it sees ({source}); "
            "use a smaller kernel or larger images"
        )
    return side - kernel + 1


def _check_positive(**settings: int | None) -> None:
    for key, value in settings.items():
        if value is None or value <= 0:
            raise ConfigError(f"model.net.{key}={value}: must be a positive integer")


def _check_dropout(**settings: float) -> None:
    for key, value in settings.items():
        if not 0 <= value < 1:
            raise ConfigError(f"model.net.{key}={value}: must be in [0, 1)")


class EmotionClassifier(pl.LightningModule):
    """Training of `net` with the loss group's loss (weighted when the balancing says so), macro F1
    per epoch, and the evaluated split's truth and probabilities kept by `test_step`, after the
    post-hoc steps (`posthoc`: flip test-time augmentation, offsets fitted on the validation
    split when the test starts); `plain_outputs` keeps the network's own probabilities."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        loss: ImbalanceLoss,
        posthoc: PostHoc,
        mix: BatchMix,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.net, self.optimizer_factory, self.loss = net, optimizer, loss
        self.posthoc, self.mix = posthoc, mix
        self.offsets: np.ndarray | None = None  # fitted when the test starts
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.train_f1 = MulticlassF1Score(num_classes, average="macro")
        self.val_f1 = MulticlassF1Score(num_classes, average="macro")
        self.val_f1_best = MaxMetric()
        # The evaluated split's predictions, and with the framing check its reframed images'.
        self.test_outputs: SplitPredictions | None = None
        self.reframed_outputs: SplitPredictions | None = None
        self.plain_outputs: SplitPredictions | None = None
        self._test_batches: dict[int, list[tuple[torch.Tensor, ...]]] = {}

    def setup(self, stage: str) -> None:
        # The loss learns the training split's class counts (as trained, copies included) and
        # the balancing's class weights, known once the data module is set up.
        datamodule = self.trainer.datamodule
        if stage == "fit" and datamodule:
            counts = torch.tensor(list(datamodule.balanced_train_counts().values()))
            self.loss.fit(counts, datamodule.loss_weights())

    def on_train_epoch_start(self) -> None:
        self.loss.set_epoch(self.current_epoch)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the predictions; `labels` may be a mixed batch's soft targets."""
        images, labels = batch
        logits = self(images)
        loss = self.loss(logits.float(), labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} (try a lower optimizer.lr)")
        return loss, logits.argmax(dim=1)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = self.mix(*batch)
        loss, predictions = self._step((images, labels))
        self.train_loss(loss)
        self.train_f1(predictions, labels if labels.ndim == 1 else labels.argmax(dim=1))
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/macro_f1", self.train_f1, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_epoch_as_step()

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, predictions = self._step(batch)
        self.val_loss(loss)
        self.val_f1(predictions, batch[1])
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/macro_f1", self.val_f1, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_f1_best(self.val_f1.compute())
        self.log("val/macro_f1_best", self.val_f1_best.compute(), prog_bar=False)
        self._log_epoch_as_step()

    def _log_epoch_as_step(self) -> None:
        # Lightning uses a logged "step" as the loggers' x-axis: epochs, not batches.
        self.log("step", float(self.current_epoch), on_step=False, on_epoch=True)

    def on_test_start(self) -> None:
        self.offsets = None
        if self.posthoc.offsets:
            validation = self.predict_split(self.trainer.datamodule.val_dataloader())
            self.offsets = fit_offsets(
                validation.truth, validation.probabilities, self.posthoc.grid, self.posthoc.rounds
            )

    def predict_split(self, loader) -> SplitPredictions:
        """Truth and probabilities (flip test-time augmentation included) for a whole loader."""
        labels, scores = [], []
        with torch.no_grad():
            for images, batch_labels in loader:
                scores.append(probabilities(self, images.to(self.device), self.posthoc.flip).cpu())
                labels.append(batch_labels)
        return SplitPredictions(torch.cat(labels).numpy(), torch.cat(scores).numpy())

    def posthoc_settings(self) -> dict[str, object]:
        """What the logged classifier needs to answer as the evaluation did."""
        return settings(self.posthoc.flip, self.offsets)

    def on_test_epoch_start(self) -> None:
        self._test_batches = {}

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        plain = torch.softmax(self(images).float(), dim=1)
        scored = flip_averaged(self, images, plain) if self.posthoc.flip else plain
        self._test_batches.setdefault(dataloader_idx, []).append(
            (labels.cpu(), scored.cpu(), plain.cpu())
        )

    def on_test_epoch_end(self) -> None:
        outputs = {}
        for loader, batches in self._test_batches.items():
            labels, scored, plain = (torch.cat(column).numpy() for column in zip(*batches))
            outputs[loader] = SplitPredictions(labels, apply_offsets(scored, self.offsets))
            if loader == 0:
                self.plain_outputs = SplitPredictions(labels, plain)
        self.test_outputs, self.reframed_outputs = outputs[0], outputs.get(1)
        self._test_batches = {}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())
