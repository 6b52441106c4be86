"""Test-set evaluation: the seed's classification report and confusion matrix, via scikit-learn."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

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
        return np.divide(
            self.confusion, totals, out=np.zeros(self.confusion.shape), where=totals > 0
        )


def evaluate(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str] = EMOTIONS,
    average_over: Sequence[int] | None = None,
) -> Evaluation:
    """Accuracy, macro F1 (the headline), weighted F1, balanced accuracy and the per-class table.

    Macro averages run over `average_over`, by default the classes that occur in the truth or
    the predictions, so a class absent from a small set counts neither as perfect nor as zero.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(class_names)))
    averaged = list(average_over) if average_over is not None else _present(y_true, y_pred)
    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, averaged),
        "weighted_f1": f1_score(
            y_true, y_pred, labels=averaged, average="weighted", zero_division=0
        ),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
    }
    report = classification_report(
        y_true,
        y_pred,
        labels=labels,
        target_names=list(class_names),
        zero_division=0,
        output_dict=True,
    )
    per_class = pd.DataFrame({name: report[name] for name in class_names}).T.rename_axis("emotion")
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


@dataclass
class SplitPredictions:
    """A split's true labels and a model's class probabilities for its images."""

    truth: np.ndarray
    probabilities: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @cached_property
    def evaluation(self) -> Evaluation:
        return evaluate(self.truth, self.predicted)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Macro F1 over `labels`, by default the classes in the truth or the predictions (as
    torchmetrics computes it during training)."""
    labels = list(labels) if labels is not None else _present(y_true, y_pred)
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes in the truth. scikit-learn warns when a prediction names a
    class absent from the truth; on a small split that is expected, and it does not change the
    value (recall is taken over the truth's classes), so the warning is not passed on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true", UserWarning)
        return balanced_accuracy_score(y_true, y_pred)


def _present(y_true: np.ndarray, y_pred: np.ndarray) -> list[int]:
    return sorted(set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist()))
