"""Using a trained model: predict emotions for image files, evaluate it on a labelled folder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from fersweep import EMOTIONS
from fersweep.data.legend import IMAGE_SUFFIXES, DataReport, Record
from fersweep.errors import DataError
from fersweep.metrics import Evaluation, evaluate
from fersweep.serving import IMAGE_COLUMN, NoUsableImage

log = logging.getLogger(__name__)


class Classifier(Protocol):
    """The logged raw-image pyfunc, as `fersweep.tracking.load_classifier` returns it."""

    def predict(self, model_input: pd.DataFrame) -> pd.DataFrame: ...


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named directly, or found (recursively) in folders."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path}: no image files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


@dataclass
class Predictions:
    table: pd.DataFrame  # file, emotion, probability, p_<emotion> ...
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why


def predict_files(model: Classifier, files: Sequence[Path]) -> Predictions:
    """Per file the emotion, its probability and all eight; unusable files skipped and named."""
    readable, payload, skipped = [], [], {}
    for file in files:
        try:
            payload.append(file.read_bytes())
            readable.append(str(file))
        except OSError as error:
            skipped[str(file)] = f"cannot read ({error.strerror})"
    try:
        table = model.predict(pd.DataFrame({IMAGE_COLUMN: payload}))
    except NoUsableImage as error:
        skipped.update(zip(readable, error.errors))
        raise DataError(f"none of the {len(files)} file(s) is a usable image: {skipped}") from None
    table.insert(0, "file", readable)
    for file, error in zip(table["file"], table["error"]):
        if error:
            skipped[file] = error
    table = table[table["error"] == ""].drop(columns="error").reset_index(drop=True)
    return Predictions(table, skipped)


@dataclass
class FolderEvaluation:
    evaluation: Evaluation
    predictions: Predictions
    report: DataReport
    emotions_present: list[str]


def evaluate_folder(
    model: Classifier, root: Path, records: Sequence[Record], report: DataReport
) -> FolderEvaluation:
    """The training report for a `root/<emotion>/*.jpg` folder (read by `read_folder`), over
    the emotions it holds."""
    predictions = predict_files(model, [root / r.file for r in records])
    for file, why in predictions.skipped.items():
        report.add("unreadable_image", f"{file}: {why}")
    by_file = {str(root / r.file): r.label for r in records}
    truth = np.array([by_file[f] for f in predictions.table["file"]])
    predicted = np.array([EMOTIONS.index(e) for e in predictions.table["emotion"]])
    present = sorted(set(truth.tolist()))
    evaluation = evaluate(truth, predicted, average_over=present)
    return FolderEvaluation(evaluation, predictions, report, [EMOTIONS[i] for i in present])
