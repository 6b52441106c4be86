"""The configurable CNN and the LightningModule that trains it on macro F1."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassF1Score

from fersweep.errors import ConfigError
from fersweep.losses import ImbalanceLoss
from fersweep.metrics import SplitPredictions

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
    per epoch, and the evaluated split's truth and probabilities kept by `test_step`."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        loss: ImbalanceLoss,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.net, self.optimizer_factory, self.loss = net, optimizer, loss
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.train_f1 = MulticlassF1Score(num_classes, average="macro")
        self.val_f1 = MulticlassF1Score(num_classes, average="macro")
        self.val_f1_best = MaxMetric()
        # The evaluated split's predictions, and with the framing check its reframed images'.
        self.test_outputs: SplitPredictions | None = None
        self.reframed_outputs: SplitPredictions | None = None
        self._test_batches: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

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
        images, labels = batch
        logits = self(images)
        loss = self.loss(logits.float(), labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} (try a lower optimizer.lr)")
        return loss, logits.argmax(dim=1)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, predictions = self._step(batch)
        self.train_loss(loss)
        self.train_f1(predictions, batch[1])
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

    def on_test_epoch_start(self) -> None:
        self._test_batches = {}

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        probabilities = torch.softmax(self(images).float(), dim=1)
        self._test_batches.setdefault(dataloader_idx, []).append(
            (labels.cpu(), probabilities.cpu())
        )

    def on_test_epoch_end(self) -> None:
        outputs = {}
        for loader, batches in self._test_batches.items():
            labels, probabilities = zip(*batches)
            outputs[loader] = SplitPredictions(
                torch.cat(labels).numpy(), torch.cat(probabilities).numpy()
            )
        self.test_outputs, self.reframed_outputs = outputs[0], outputs.get(1)
        self._test_batches = {}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())
