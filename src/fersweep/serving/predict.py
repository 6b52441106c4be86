"""Using a trained model: predict emotions for image files, evaluate it on a labelled folder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import pandas as pd

from fersweep import EMOTIONS
from fersweep.data.decode import decode_bytes
from fersweep.data.legend import IMAGE_SUFFIXES, DataReport, Record
from fersweep.data.reframe import Framing, Framings
from fersweep.errors import DataError, ImageError
from fersweep.evaluation.metrics import Evaluation, evaluate
from fersweep.serving.pyfunc import BOX_COLUMNS, IMAGE_COLUMN, NAME_COLUMN, NoUsableImage

log = logging.getLogger(__name__)
MAX_PIXELS = 400_000_000  # annotating and reframing only redraw pictures the model accepted


class Classifier(Protocol):
    """The logged raw-image pyfunc, as `fersweep.tracking.load_classifier` returns it."""

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame: ...


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
    """One row per face (per image for a model without a face step): file, face, box,
    emotion, probability, p_<emotion> for each of the eight, note and error ("" when fine)."""

    table: pd.DataFrame

    @property
    def classified(self) -> pd.DataFrame:
        return self.table[self.table["error"] == ""].drop(columns="error").reset_index(drop=True)

    @property
    def problems(self) -> list[tuple[str, str]]:
        """(file, why) for every file or face that was not classified."""
        bad = self.table[self.table["error"] != ""]
        return list(zip(bad["file"], bad["error"]))


def predict_files(
    model: Classifier, files: Sequence[Path], whole_image: bool = False
) -> Predictions:
    """Every face in every file; files that cannot be read or used are rows with an error.
    `whole_image`: classify the whole picture where no face can be."""
    pictures, unreadable = [], []
    for file in files:
        try:
            pictures.append((str(file), file.read_bytes()))
        except OSError as error:
            unreadable.append((str(file), f"{file}: cannot read ({error.strerror})"))
    return predict_pictures(model, pictures, whole_image, unreadable)


def predict_pictures(
    model: Classifier,
    pictures: Sequence[tuple[str, bytes]],
    whole_image: bool,
    unreadable: Sequence[tuple[str, str]] = (),
) -> Predictions:
    """`predict_files` for encoded pictures with names; `unreadable`: (name, why) to report."""
    names = [name for name, _ in pictures]
    frame = pd.DataFrame({IMAGE_COLUMN: [data for _, data in pictures], NAME_COLUMN: names})
    try:
        table = model.predict(frame, params={"whole_image": whole_image})
    except NoUsableImage as error:
        reasons = [why for _, why in unreadable] + error.errors
        raise DataError(f"no face or image could be classified: {'; '.join(reasons)}") from None
    table.insert(0, "file", [names[i] for i in table.pop(IMAGE_COLUMN)])
    problems = pd.DataFrame(list(unreadable), columns=["file", "error"])
    table = pd.concat([table, problems], ignore_index=True) if len(problems) else table
    return Predictions(table)


def annotate(predictions: Predictions, folder: Path) -> list[Path]:
    """Copies of the predicted files in `folder`, each face's box and emotion drawn on it (and
    "no face found" on a picture without one); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (file, rows) in enumerate(predictions.table.groupby("file", sort=False)):
        try:
            picture = decode_bytes(Path(file).read_bytes(), file, MAX_PIXELS, colour=True).image
        except (OSError, ImageError):
            continue  # already reported as a problem of this file
        for _, row in rows.iterrows():
            draw_face(picture, row)
        target = folder / f"{Path(file).stem}.jpg"
        if target in written:  # the same name from two folders
            target = folder / f"{Path(file).stem}-{number}.jpg"
        cv2.imwrite(str(target), picture)
        written.append(target)
    return written


def draw_face(picture: np.ndarray, row: pd.Series) -> None:
    """One row's box and emotion (or its error, shortened) drawn on the picture, in place."""
    scale = max(picture.shape[:2]) / 600  # lines and text readable on any picture size
    thickness = max(1, round(2 * scale))
    if row["width"] and row["height"] and not pd.isna(row["width"]):
        x, y, width, height = (int(row[c]) for c in BOX_COLUMNS)
        ok = row["error"] == ""
        colour = (60, 200, 60) if ok else (0, 140, 255)
        label = f"{row['emotion']} {row['probability']:.2f}" if ok else "too small"
        cv2.rectangle(picture, (x, y), (x + width, y + height), colour, thickness)
        origin = (x, max(y - round(8 * scale), round(20 * scale)))
    else:
        colour, label, origin = (0, 0, 255), "no face found", (round(10 * scale), round(30 * scale))
    cv2.putText(
        picture,
        label,
        origin,
        cv2.FONT_HERSHEY_SIMPLEX,
        0.8 * scale,
        colour,
        thickness,
        cv2.LINE_AA,
    )


@dataclass
class FolderEvaluation:
    evaluation: Evaluation
    predictions: Predictions
    report: DataReport
    emotions_present: list[str]
    # The same images framed each way of the framing check, by direction (`reframed` with one).
    reframed: dict[str, Evaluation] = field(default_factory=dict)


def evaluate_folder(
    model: Classifier,
    root: Path,
    records: Sequence[Record],
    report: DataReport,
    reframe: Framing | Framings | None = None,
) -> FolderEvaluation:
    """The training report for a `root/<emotion>/*.jpg` folder (read by `read_folder`), over
    the emotions it holds; with `reframe`, also for the same images reframed. Each image is
    scored on its largest face, or whole where no face can be classified, as in training."""
    labels = {str(root / r.file): r.label for r in records}
    predictions = predict_files(model, [root / r.file for r in records], whole_image=True)
    scored = _largest_faces(predictions, report)
    present = sorted({labels[file] for file in scored["file"]})
    evaluation = _evaluate(scored, labels, present)
    reframed = {}
    for direction, framing in (reframe.named() if reframe is not None else {}).items():
        pictures = [
            (file, framing.reframed_file(Path(file).read_bytes(), Path(file).name, MAX_PIXELS))
            for file in scored["file"]
        ]
        again = predict_pictures(model, pictures, whole_image=True)
        reframed[direction] = _evaluate(_largest_faces(again, DataReport()), labels, present)
    emotions = [EMOTIONS[i] for i in present]
    return FolderEvaluation(evaluation, predictions, report, emotions, reframed)


def _largest_faces(predictions: Predictions, report: DataReport) -> pd.DataFrame:
    """One row per labelled image (its largest classified face); the rest counted in `report`."""
    largest = predictions.classified.drop_duplicates("file")
    scored = set(largest["file"])
    for file, why in predictions.problems:
        if file not in scored:
            report.add("unreadable_image", why)
    report.steps.update(note for note in largest["note"] if note)
    return largest


def _evaluate(scored: pd.DataFrame, labels: dict[str, int], present: list[int]) -> Evaluation:
    truth = np.array([labels[f] for f in scored["file"]])
    predicted = np.array([EMOTIONS.index(e) for e in scored["emotion"]])
    return evaluate(truth, predicted, average_over=present)
