"""The networks: the seed's configurable CNN and a small residual network, both taking 0-255 images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fersweep.errors import ConfigError

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
