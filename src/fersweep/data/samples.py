"""What only the recording asks of a set-up data module: sample images for the run's grids, and
examples of the network's input and of an image file for the logged models."""

from __future__ import annotations

import numpy as np

from fersweep import EMOTIONS
from fersweep.data.datamodule import EmotionDataModule
from fersweep.data.preprocess import FACE


def sample_images(datamodule: EmotionDataModule, per_emotion: int) -> dict[str, list[np.ndarray]]:
    """Per emotion, original training images, then augmented copies where there are any."""
    train = datamodule.train_dataset()
    labels = train.labels[train.index]
    rows: dict[str, list[np.ndarray]] = {}
    for label, emotion in enumerate(EMOTIONS):
        for name, wanted in ((emotion, False), (f"{emotion} (aug)", True)):
            chosen = np.flatnonzero((labels == label) & (train.is_copy == wanted))
            images = [train[i][0].numpy().transpose(1, 2, 0) for i in chosen[:per_emotion]]
            if images:
                rows[name] = images
    return rows


def reframed_samples(
    datamodule: EmotionDataModule, per_emotion: int, name: str
) -> dict[str, list[np.ndarray]]:
    """Per emotion, the first test images framed as direction `name`, as the network saw
    them."""
    labels = datamodule.image_set.labels[datamodule.indices(datamodule.evaluate_on)]
    return {
        emotion: list(datamodule.reframed[name][np.flatnonzero(labels == label)[:per_emotion]])
        for label, emotion in enumerate(EMOTIONS)
        if (labels == label).any()
    }


def example_input(datamodule: EmotionDataModule, count: int = 2) -> np.ndarray:
    """Preprocessed training images as the network takes them (N x C x H x W uint8)."""
    return datamodule.image_set.images[datamodule.indices("train")[:count]].transpose(0, 3, 1, 2)


def example_image_bytes(datamodule: EmotionDataModule) -> bytes:
    """One training image file as it is on disk, for the raw-image model's input example
    (one in which the face step, if any, found a face)."""
    train = datamodule.indices("train")
    with_face = train[datamodule.image_set.outcomes[train] == FACE]
    first = datamodule.image_set.records[(with_face if len(with_face) else train)[0]]
    return (datamodule.images_dir / first.file).read_bytes()
