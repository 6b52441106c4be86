"""Statistics over a comparison's predictions: the paired bootstrap that resamples people, and
precision at the natural prevalence (Bayes' rule)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Difference:
    """Candidate minus baseline, with its bootstrap confidence interval."""

    difference: float
    low: float
    high: float
    confidence: float
    resamples: int


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
