"""Test-set evaluation: the seed's classification report and confusion matrix, via scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
)

from fersweep import EMOTIONS


@dataclass
class Evaluation:
    """Headline metrics, the per-class table and the confusion matrix of one labelled set."""

    metrics: dict[str, float]
    per_class: pd.DataFrame
    confusion: np.ndarray
    text: str
    class_names: tuple[str, ...]

    @property
    def confusion_normalised(self) -> np.ndarray:
        totals = self.confusion.sum(axis=1, keepdims=True)
        return np.divide(self.confusion, totals, out=np.zeros(self.confusion.shape), where=totals > 0)


def evaluate(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str] = EMOTIONS
) -> Evaluation:
    """Accuracy, macro F1 (the headline), weighted F1, balanced accuracy and the per-class table.

    Macro averages run over the classes that occur in the truth or the predictions, so a class
    absent from a small set neither counts as a perfect nor as a zero score.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(class_names)))
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
        "weighted_f1": f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
    }
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names), zero_division=0,
        output_dict=True,
    )
    per_class = pd.DataFrame(
        {name: report[name] for name in class_names}
    ).T.rename_axis("emotion")
    per_class["support"] = per_class["support"].astype(int)
    text = classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names), zero_division=0, digits=3
    )
    return Evaluation(
        {k: float(v) for k, v in metrics.items()},
        per_class,
        confusion_matrix(y_true, y_pred, labels=labels),
        text,
        tuple(class_names),
    )
