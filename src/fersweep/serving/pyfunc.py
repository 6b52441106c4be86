"""The logged classifier: an MLflow pyfunc that takes raw images and preprocesses them exactly as
training did, so `mlflow models serve` answers requests carrying image files.

Kept light on imports: MLflow copies the fersweep package into the model (code_paths) and a
serving process loads only this module, the preprocessing and the network.
"""

from __future__ import annotations

import base64
import os
import threading
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from fersweep import EMOTIONS
from fersweep.data.face import Box
from fersweep.data.preprocess import FACE, WHOLE, Prepared, Preprocessor
from fersweep.errors import ConfigError, DataError, ImageError
from fersweep.imbalance.posthoc import apply_offsets, from_settings, probabilities
from fersweep.services.processes import REQUESTS_AT_ONCE

IMAGE_COLUMN = "image"
NAME_COLUMN = "name"  # optional: what to call each row in messages (default "row <n>")
BOX_COLUMNS = ["x", "y", "width", "height"]
PROBABILITY_COLUMNS = [f"p_{emotion}" for emotion in EMOTIONS]
PARAMS = {"whole_image": False}  # the classifier's parameters and their defaults


class NoUsableImage(MlflowException, DataError):
    """Nothing in a request can be classified (no usable picture, no face big enough): the
    model server answers HTTP 400 with a JSON
    error (MLflow maps the error code), and `fersweep predict` one clear line (a DataError)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        message = f"nothing in the request could be classified: {'; '.join(errors)}"
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class ClassifierPyfunc(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with an `image` column of encoded image bytes (or base64 text) and,
    optionally, a `name` column naming each picture in messages.
    Output: one row per face (per image when the model has no face step): the input row
    (`image`), the face's number and box, the emotion, its probability, all eight
    probabilities, a `note` on what was done to the picture, and an `error` ("" when fine).
    An image with no face is one row whose error says so, unless the `whole_image` parameter
    asks to classify the whole picture then; a request with no usable face or image at all is
    refused (NoUsableImage)."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        # An exported (pt2) graph, traced in eval mode: no pickle, no .eval() needed or allowed.
        self.net = mlflow.pytorch.load_model(context.artifacts["network"], map_location="cpu")
        self.preprocessor = Preprocessor.from_settings(context.model_config["preprocess"])
        self.batch_size = int(context.model_config["batch_size"])
        # Models logged before post-hoc steps existed have none.
        self.flip, self.offsets = from_settings(context.model_config.get("posthoc", {}))
        # MLflow's server runs every request in a thread of its own: 8 clients made 8 threads
        # run MTCNN side by side, fighting over the GIL and the cores (22-27 images/s in one
        # process, 37-40 two at a time on one torch thread each: results/2026-12-07-serving-at-once).
        self.at_once = threading.BoundedSemaphore(requests_at_once())

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        with self.at_once:
            return self._predict(model_input, params)

    def _predict(self, model_input: pd.DataFrame, params: dict | None) -> pd.DataFrame:
        whole_image = bool({**PARAMS, **(params or {})}["whole_image"])
        names = _names(model_input)
        rows: list[tuple[int, int, Prepared]] = []
        for row, value in enumerate(model_input[IMAGE_COLUMN]):
            for number, face in enumerate(self._faces(value, names[row], whole_image)):
                rows.append((row, number, face))
        usable = [i for i, (_, _, face) in enumerate(rows) if face.array is not None]
        if not usable:
            raise NoUsableImage([face.error for _, _, face in rows])
        probabilities = np.full((len(rows), len(EMOTIONS)), np.nan)
        probabilities[usable] = self.probabilities(np.stack([rows[i][2].array for i in usable]))
        return face_table(rows, probabilities)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for preprocessed N x H x W x C uint8 images, after the post-hoc
        steps the evaluation used (flip test-time augmentation, logit offsets)."""
        batches = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = torch.from_numpy(
                    images[start : start + self.batch_size].transpose(0, 3, 1, 2)
                )
                batches.append(probabilities(self.net, chunk.contiguous(), self.flip).numpy())
        return apply_offsets(np.concatenate(batches), self.offsets)

    def _faces(self, value: Any, name: str, whole_image: bool) -> list[Prepared]:
        try:
            if isinstance(value, str):
                value = base64.b64decode(value)
            if not isinstance(value, bytes | bytearray):
                raise ImageError(
                    f"{name}: expected encoded image bytes, got {type(value).__name__}"
                )
            decoded = self.preprocessor.decode(bytes(value), name)
            return self.preprocessor.faces(decoded, name, whole_image)
        except (ImageError, ValueError) as error:
            return [Prepared(None, Box(0, 0, 0, 0), "not used", error=str(error))]


def requests_at_once() -> int:
    """The requests this process classifies at once: what `fersweep serve` set, else one."""
    value = os.environ.get(REQUESTS_AT_ONCE, "1")
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{REQUESTS_AT_ONCE}={value!r}: use a whole number, 1 or more")
    return int(value)


def _names(model_input: pd.DataFrame) -> list[str]:
    given = model_input[NAME_COLUMN] if NAME_COLUMN in model_input else [None] * len(model_input)
    return [str(name) if name else f"row {row}" for row, name in enumerate(given)]


def face_table(rows: list[tuple[int, int, Prepared]], probabilities: np.ndarray) -> pd.DataFrame:
    """image, face, x, y, width, height, emotion, probability, p_<emotion> for each of the
    eight, note and error ("" when fine); None where there is no value."""
    usable = ~np.isnan(probabilities).any(axis=1)
    best = np.nan_to_num(probabilities).argmax(axis=1)
    # Built column by column as plain Python values, None where there is none (NaN is not JSON,
    # and strict parsers refuse it): filling the table in place and converting it afterwards
    # took 3 ms a request, 0.2 this way (results/2026-12-07-serving-at-once).
    columns: dict[str, list] = {
        IMAGE_COLUMN: [row for row, _, _ in rows],
        "face": [number for _, number, _ in rows],
    }
    boxes = [face.box.xywh for _, _, face in rows]
    for place, name in enumerate(BOX_COLUMNS):
        columns[name] = [int(box[place]) for box in boxes]
    columns["emotion"] = [EMOTIONS[i] if ok else "" for i, ok in zip(best, usable)]
    columns["probability"] = [
        float(p[i]) if ok else None for p, i, ok in zip(probabilities, best, usable)
    ]
    for name, values in zip(PROBABILITY_COLUMNS, probabilities.T):
        columns[name] = [float(v) if ok else None for v, ok in zip(values, usable)]
    columns["note"] = ["; ".join(_note(face)) for _, _, face in rows]
    columns["error"] = [face.error for _, _, face in rows]
    return pd.DataFrame(columns, dtype=object)


def _note(face: Prepared) -> list[str]:
    shown = [] if face.outcome in (FACE, WHOLE, "not used", "face too small") else [face.outcome]
    if face.angle:
        shown.append(f"eyes levelled ({face.angle:+.0f} degrees)")
    return [*face.notes, *shown]
