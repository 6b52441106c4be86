"""The frozen stages' work done once an image: a pretrained network's frozen first stages
compute the same function every step (their weights fixed, their batch norms in eval mode), so
an image training shows again (every original training image each epoch, every validation image
each validation) needs them only the first time.

`FrozenMemo` keeps those outputs by the image's content and the frozen weights' digest, for the
images it was told recur (`remember`): augmented copies, drawn anew each epoch, are computed as
always and not kept. The outputs are shared by every network of the process whose frozen stages
hold the same weights (a sweep's trials and the gate's folds all start from FER2013's), up to one
memory limit for them all, and kept while the process lives.

A kept output is the one the stages computed for that image in a batch; on this machine's CPU
the stages give every image in a batch of two or more the same numbers, whatever the batch
(checked by the tests), so a hit reads what the step would have computed. A batch of one is
computed differently, so a lone miss is computed beside a copy of itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)
MEGABYTE = 10**6


class Shelf:
    """Every kept output of the process, by (weights' digest, image bytes), and their bytes."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.outputs: dict[tuple[str, bytes], torch.Tensor] = {}
        self.kept_bytes, self.full = 0, False


SHELF = Shelf()


class FrozenMemo:
    """The outputs of a network's frozen first stages for the images it will see again, read
    from and kept on the process's shelf while it holds under `max_megabytes` (0: nothing
    kept; once full, the rest are computed as always). `use_weights` names what the stages
    compute: called whenever the frozen set or the weights change."""

    def __init__(self, max_megabytes: float) -> None:
        self.max_bytes = int(max_megabytes * MEGABYTE)
        self.recurring: set[bytes] = set()
        self.weights: str | None = None

    def use_weights(self, stages: Iterable[nn.Module]) -> None:
        """The frozen stages now computed (none: nothing to keep): their weights' digest."""
        stages = list(stages)
        self.weights = weights_digest(stages) if stages else None

    def remember(self, images: torch.Tensor) -> None:
        """The images (N x C x H x W uint8, as the loaders serve them) worth keeping outputs for."""
        self.recurring = set(_keys(images))

    def forget(self) -> None:
        """Nothing recurs any more (training over): this network keeps nothing more."""
        self.recurring = set()

    @property
    def active(self) -> bool:
        return bool(self.recurring) and self.max_bytes > 0 and self.weights is not None

    def __call__(
        self, images: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """`compute(images)`, with the outputs kept for the images seen before read back."""
        if not self.active or images.dtype != torch.uint8 or len(images) < 2:
            return compute(images)
        context = f"{self.weights}/{images.device}/{torch.is_autocast_enabled(images.device.type)}"
        keys = [(context, key) for key in _keys(images)]
        rows = [SHELF.outputs.get(key) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if len(missing) == len(keys):
            computed = compute(images)
            self._keep(keys, range(len(keys)), computed)
            return computed
        if missing:
            computed = _computed_in_pairs(compute, images[missing])
            self._keep(keys, missing, computed)
            for row, i in zip(computed, missing):
                rows[i] = _pixels_last(row)
        # Rows kept as H x W x C: stacked, they are the channels-last batch the stages return.
        return torch.stack(rows).permute(0, 3, 1, 2)

    def _keep(self, keys: list[tuple[str, bytes]], places, computed: torch.Tensor) -> None:
        for place, row in zip(places, computed):
            key = keys[place]
            if key[1] not in self.recurring or key in SHELF.outputs:
                continue
            if SHELF.kept_bytes + row.nbytes > self.max_bytes:
                if not SHELF.full:
                    log.info("frozen memo full at %.0f MB: further images computed each time",
                             SHELF.kept_bytes / MEGABYTE)
                SHELF.full = True
                return
            # A copy outside inference mode: kept from a validation pass, read in training.
            with torch.inference_mode(False):
                SHELF.outputs[key] = _pixels_last(row).detach().clone()
            SHELF.kept_bytes += row.nbytes

    # A memo is a cache: a pickled or copied network carries none of it.
    def __getstate__(self) -> dict:
        return {"max_bytes": self.max_bytes, "weights": self.weights}

    def __setstate__(self, state: dict) -> None:
        self.max_bytes, self.weights, self.recurring = state["max_bytes"], state["weights"], set()


def weights_digest(stages: Iterable[nn.Module]) -> str:
    """A digest of the stages' parameters and buffers (their names, shapes and values)."""
    digest = hashlib.blake2b(digest_size=16)
    for index, stage in enumerate(stages):
        for name, tensor in stage.state_dict().items():
            digest.update(f"{index}.{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _keys(images: torch.Tensor) -> list[bytes]:
    rows = np.ascontiguousarray(images.detach().cpu().numpy()).reshape(len(images), -1)
    return [row.tobytes() for row in rows]


def _pixels_last(row: torch.Tensor) -> torch.Tensor:
    """One image's C x H x W output as H x W x C (no copy for a channels-last batch's row)."""
    return row.permute(1, 2, 0).contiguous()


def _computed_in_pairs(
    compute: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
) -> torch.Tensor:
    """A lone image is computed beside a copy of itself, as in a batch of two or more."""
    if len(images) == 1:
        return compute(images.expand(2, *images.shape[1:]))[:1]
    return compute(images)
