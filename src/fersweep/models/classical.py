"""References fitted without Lightning (`Reference`), and the classical one a user would try first:
HOG features (OpenCV's `HOGDescriptor`) and a linear SVM with balanced class weights
(scikit-learn's `LinearSVC`). `model=hog_svm` trains it on the same split, or fold, as any
network, as one MLflow run like any other."""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from fersweep.errors import ConfigError


class Reference:
    """A model fitted on the training images at once, without Lightning: `fit`, then class
    probabilities (or scores that rank classes like them) for N x H x W x C uint8 images."""

    def fit(self, images: np.ndarray, labels: np.ndarray) -> Reference:
        raise NotImplementedError

    def probabilities(self, images: np.ndarray, num_classes: int) -> np.ndarray:
        raise NotImplementedError


def grey_resized(images: np.ndarray, size: int) -> np.ndarray:
    """N x size x size grey uint8 copies of N x H x W x C uint8 images (colour made grey)."""
    rows = []
    for image in images:
        grey = image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        rows.append(cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(rows)


class HogLinearSVC(Reference):
    """Images resized to `size` x `size` grey, described by HOG (`cell`-pixel cells, blocks of
    2x2 cells moved by one cell, `bins` orientations), standardised, then a one-vs-rest linear
    SVM (`C`, `class_weight`). Scores are the SVM's decision values through a softmax, so they
    rank classes like a network's probabilities (they are not calibrated)."""

    def __init__(
        self, size: int, cell: int, bins: int, C: float, class_weight: str | None, max_iter: int
    ) -> None:
        if cell <= 0 or size < 2 * cell or size % cell:
            raise ConfigError(
                f"model.size={size}, model.cell={cell}: the size must be a multiple of the cell, "
                "at least two cells"
            )
        if C <= 0:
            raise ConfigError(f"model.C={C}: must be positive")
        if class_weight not in (None, "balanced"):
            raise ConfigError(f"model.class_weight={class_weight!r}: use balanced or null")
        self.size = size
        self.hog = cv2.HOGDescriptor(
            (size, size), (2 * cell, 2 * cell), (cell, cell), (cell, cell), bins
        )
        self.classifier = make_pipeline(
            StandardScaler(),
            LinearSVC(C=C, class_weight=class_weight, max_iter=max_iter, random_state=0),
        )

    def features(self, images: np.ndarray) -> np.ndarray:
        """HOG vectors of N x H x W x C uint8 images (colour is made grey first)."""
        return np.stack([self.hog.compute(g).ravel() for g in grey_resized(images, self.size)])

    def fit(self, images: np.ndarray, labels: np.ndarray) -> HogLinearSVC:
        self.classifier.fit(self.features(images), labels)
        return self

    def probabilities(self, images: np.ndarray, num_classes: int) -> np.ndarray:
        """Softmax of the decision values, one column per class (a class absent from training
        gets no column of its own from the SVM, and here a score of zero)."""
        decision = self.classifier.decision_function(self.features(images))
        scores = np.full((len(images), num_classes), -np.inf)
        scores[:, self.classifier.classes_] = decision
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)
