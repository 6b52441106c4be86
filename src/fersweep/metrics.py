"""Test-set evaluation: the seed's classification report and confusion matrix, via scikit-learn."""

from __future__ import annotations

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
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
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


@dataclass(frozen=True)
class Difference:
    """Candidate minus baseline, with its bootstrap confidence interval."""

    difference: float
    low: float
    high: float
    confidence: float
    resamples: int


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Macro F1 over `labels`, by default the classes in the truth or the predictions (as
    torchmetrics computes it during training)."""
    labels = list(labels) if labels is not None else _present(y_true, y_pred)
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def _present(y_true: np.ndarray, y_pred: np.ndarray) -> list[int]:
    return sorted(set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist()))


def precision_at_prevalence(confusion: np.ndarray, prevalence: np.ndarray) -> np.ndarray:
    """P(true emotion is c | predicted c) if emotions occurred at `prevalence` (Bayes' rule).

    With recall-like rates r[k, c] = P(predict c | true k) from the row-normalised confusion
    matrix: P(c | predicted c) = r[c, c] * p[c] / sum_k r[k, c] * p[k]. A balanced or augmented
    test set inflates plain precision for rare emotions; this re-weights it to the real world.
    NaN where the model never predicts c.
    """
    totals = confusion.sum(axis=1, keepdims=True)
    rates = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    predicted_mass = rates.T @ prevalence
    hits = np.diag(rates) * prevalence
    return np.divide(hits, predicted_mass, out=np.full(len(hits), np.nan), where=predicted_mass > 0)


def paired_bootstrap_difference(
    truth: np.ndarray,
    baseline: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    resamples: int,
    confidence: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> Difference:
    """Candidate minus baseline macro F1 (each averaged over its predictions, e.g. seeds), with
    a paired bootstrap interval: `groups` (people) are drawn with replacement, each bringing
    all its images, and both arms are scored on the same draw. Images of one person are not
    independent, so resampling images would make the interval too narrow; without `groups`
    every image is its own group."""
    truth = np.asarray(truth)
    groups = np.arange(len(truth)) if groups is None else np.asarray(groups)
    _, group_of_image = np.unique(groups, return_inverse=True)
    n_groups = int(group_of_image.max()) + 1
    classes = int(max(truth.max(), *(p.max() for p in (*baseline, *candidate)))) + 1

    def difference(weights: np.ndarray) -> float:
        def arm(predictions: Sequence[np.ndarray]) -> float:
            return float(
                np.mean([weighted_macro_f1(truth, p, weights, classes) for p in predictions])
            )

        return arm(candidate) - arm(baseline)

    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=resamples)
    values = np.array([difference(draw[group_of_image]) for draw in draws])
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return Difference(
        difference(np.ones(len(truth))), float(low), float(high), confidence, resamples
    )


def weighted_macro_f1(
    truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray, classes: int
) -> float:
    """Macro F1 with each image counted `weights` times (a bootstrap draw), over the classes
    present in the weighted truth or predictions: `macro_f1` of the repeated images, computed
    from one weighted confusion matrix instead of repeating them."""
    confusion = np.bincount(
        truth * classes + predicted, weights=weights, minlength=classes * classes
    ).reshape(classes, classes)
    hits = np.diag(confusion)
    actual, called = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (actual > 0) | (called > 0)
    f1 = np.divide(2 * hits, actual + called, out=np.zeros(classes), where=present)
    return float(f1[present].mean())
