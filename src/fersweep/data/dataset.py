"""The images a DataLoader serves (`EmotionImages`), and how much memory their arrays may take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fersweep.imbalance.balancing import Balancing


class EmotionImages(Dataset):
    """Images as CxHxW uint8 tensors with labels; items flagged as copies are augmented on the fly."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        index: np.ndarray,
        is_copy: np.ndarray | None = None,
        balancing: Balancing | None = None,
    ) -> None:
        self.images, self.labels, self.index = images, labels, index
        self.is_copy = is_copy if is_copy is not None else np.zeros(len(index), bool)
        self.balancing = balancing

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([item])[0]

    def __getitems__(self, items: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A whole batch at once (the DataLoader asks so), so copies are augmented together."""
        sources = self.index[items]
        images = self.images[sources]
        copies = self.is_copy[items]
        if copies.any():
            images[copies] = self.balancing.augment(images[copies])
        batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        return list(zip(batch, self.labels[sources].tolist()))


MEMORY_SHARE = 0.8  # of the available memory the image arrays may take; training needs the rest


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable), or None where it is not known."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def size_text(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"
