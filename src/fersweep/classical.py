"""The classical reference a user would try first: HOG features (OpenCV's `HOGDescriptor`) and a
linear SVM with balanced class weights (scikit-learn's `LinearSVC`). `model=hog_svm` trains it on
the same split, or fold, as any network, as one MLflow run like any other."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from fersweep import EMOTIONS
from fersweep.console import show_data_report, show_evaluation
from fersweep.errors import ConfigError
from fersweep.metrics import SplitPredictions
from fersweep.tracking import artifacts


@dataclass
class Scores:
    """What a fitted model scored: the evaluated split (after post-hoc steps), the best
    validation macro F1, the framing check's reframed images, the network's own scores."""

    outputs: SplitPredictions
    best_val_f1: float
    reframed: SplitPredictions | None = None
    plain: SplitPredictions | None = None


class HogLinearSVC:
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
        rows = []
        for image in images:
            grey = (
                image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            )
            resized = cv2.resize(grey, (self.size, self.size), interpolation=cv2.INTER_AREA)
            rows.append(self.hog.compute(resized).ravel())
        return np.stack(rows)

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


def fit_classical(model: HogLinearSVC, datamodule, split: str) -> Scores:
    """Fit on the original training images (no copies: the SVM's class weights balance), score
    the validation split and `split` (and its reframed images with the framing check), and
    record data and evaluation in the active MLflow run as a network's run records them."""
    datamodule.setup("fit")
    counts = datamodule.class_counts_by_split()
    show_data_report(datamodule.report, counts)
    artifacts.log_data(datamodule, counts)
    images, labels = datamodule.image_set.images, datamodule.image_set.labels

    def scored(index: np.ndarray, pictures: np.ndarray | None = None) -> SplitPredictions:
        pictures = images[index] if pictures is None else pictures
        return SplitPredictions(labels[index], model.probabilities(pictures, len(EMOTIONS)))

    train = datamodule.indices("train")
    model.fit(images[train], labels[train])
    validation = datamodule.indices("val")
    best_val_f1 = scored(validation).evaluation.metrics["macro_f1"] if len(validation) else np.nan
    artifacts.log_metrics({"val/macro_f1": best_val_f1, "val/macro_f1_best": best_val_f1})
    evaluated = datamodule.indices(split)
    outputs = scored(evaluated)
    show_evaluation(outputs.evaluation, f"{split} split")
    artifacts.log_evaluation(outputs.evaluation, split)
    files_and_people = datamodule.files_and_people(split)
    artifacts.log_predictions(*files_and_people, outputs, split)
    reframed = None
    if datamodule.reframe is not None:
        reframed = scored(evaluated, datamodule.reframed_images(evaluated))
        artifacts.log_evaluation(reframed.evaluation, f"{split}_reframed")
        artifacts.log_predictions(*files_and_people, reframed, f"{split}_reframed")
    return Scores(outputs, float(best_val_f1), reframed)
