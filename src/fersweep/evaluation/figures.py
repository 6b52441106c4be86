"""Every figure fersweep draws: confusion matrices, class distributions, sample grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # figures are written to files and MLflow, never shown
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from fersweep.evaluation.metrics import Evaluation  # noqa: E402


def confusion_figure(evaluation: Evaluation, normalised: bool, title: str = "") -> plt.Figure:
    """The confusion matrix drawn with class names, as counts or as row fractions (recall)."""
    figure, axes = plt.subplots(figsize=(7.5, 6.5))
    _draw_confusion(axes, evaluation, normalised)
    default = "confusion matrix (row-normalised)" if normalised else "confusion matrix (counts)"
    axes.set_title(title or default)
    figure.tight_layout()
    return figure


def save_figure(figure: plt.Figure, path) -> None:
    """Write a figure to a PNG file and close it: pyplot keeps every figure it made until it is
    closed, and a process that evaluates again and again would keep them all."""
    figure.savefig(path, dpi=100)
    plt.close(figure)


def confusion_pair_figure(
    left: Evaluation, right: Evaluation, titles: tuple[str, str]
) -> plt.Figure:
    """Two row-normalised confusion matrices side by side, for comparing arms."""
    figure, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    for ax, evaluation, title in zip(axes, (left, right), titles):
        _draw_confusion(ax, evaluation, normalised=True)
        ax.set_title(title)
    figure.tight_layout()
    return figure


def _draw_confusion(axes: plt.Axes, evaluation: Evaluation, normalised: bool) -> None:
    values = evaluation.confusion_normalised if normalised else evaluation.confusion
    ConfusionMatrixDisplay(values, display_labels=list(evaluation.class_names)).plot(
        ax=axes,
        cmap="Blues",
        values_format=".2f" if normalised else "d",
        xticks_rotation=45,
        colorbar=False,
    )


def class_distribution_figure(counts: Mapping[str, int], title: str) -> plt.Figure:
    """A bar chart of images per emotion (the seed's Figures 2 and 3)."""
    figure, axes = plt.subplots(figsize=(8, 4))
    bars = axes.bar(list(counts), list(counts.values()), color="tab:blue")
    axes.bar_label(bars, fontsize=8)
    axes.set_ylabel("images")
    axes.set_title(title)
    axes.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    return figure


def sample_grid_figure(
    rows: Mapping[str, Sequence[np.ndarray]], columns: int, title: str
) -> plt.Figure:
    """A grid of images, one row per emotion (the seed's Figure 1); images are HxWxC uint8."""
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(columns * 1.3, len(rows) * 1.4), squeeze=False
    )
    for row_axes, (emotion, images) in zip(axes, rows.items()):
        row_axes[0].set_ylabel(emotion, rotation=0, ha="right", va="center")
        for ax, image in zip(row_axes, [*images, *[None] * columns]):
            ax.set_xticks([])
            ax.set_yticks([])
            if image is not None:
                shown = image[:, :, 0] if image.shape[2] == 1 else image[:, :, ::-1]
                ax.imshow(shown, cmap="gray", vmin=0, vmax=255)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
