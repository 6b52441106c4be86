"""The logged classifier: an MLflow pyfunc that takes raw images and preprocesses them exactly as
training did, so `mlflow models serve` answers requests carrying image files.

Kept light on imports: MLflow copies the fersweep package into the model (code_paths) and a
serving process loads only this module, the preprocessing and the network.
"""

from __future__ import annotations

import base64
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from fersweep import EMOTIONS
from fersweep.data.preprocess import Preprocessor
from fersweep.errors import DataError, ImageError

IMAGE_COLUMN = "image"
PROBABILITY_COLUMNS = [f"p_{emotion}" for emotion in EMOTIONS]


class NoUsableImage(MlflowException, DataError):
    """No row of a request is a usable image: the model server answers HTTP 400 with a JSON
    error (MLflow maps the error code), and `fersweep predict` one clear line (a DataError)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        message = f"none of the {len(errors)} row(s) is a usable image: {'; '.join(errors)}"
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class EmotionClassifierModel(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with an `image` column of encoded image bytes (or base64 text).
    Output: per image the emotion, its probability and all eight probabilities; an image that
    cannot be used gets no emotion, null probabilities and says why in `error`, and the others
    are still answered. A request with no usable image at all is refused (NoUsableImage)."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        # An exported (pt2) graph, traced in eval mode: no pickle, no .eval() needed or allowed.
        self.net = mlflow.pytorch.load_model(context.artifacts["network"], map_location="cpu")
        self.preprocessor = Preprocessor(**context.model_config["preprocess"])
        self.batch_size = int(context.model_config["batch_size"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        images, errors = [], []
        for row, value in enumerate(model_input[IMAGE_COLUMN]):
            try:
                images.append(self._preprocess(value, row))
                errors.append("")
            except (ImageError, ValueError) as error:
                errors.append(str(error))
        usable = [i for i, error in enumerate(errors) if not error]
        if not usable:
            raise NoUsableImage(errors)
        probabilities = np.full((len(errors), len(EMOTIONS)), np.nan)
        probabilities[usable] = self.probabilities(np.stack(images))
        return probability_table(probabilities, errors)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for preprocessed N x H x W x C uint8 images."""
        batches = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = torch.from_numpy(
                    images[start : start + self.batch_size].transpose(0, 3, 1, 2)
                )
                batches.append(torch.softmax(self.net(chunk.contiguous()).float(), dim=1).numpy())
        return np.concatenate(batches)

    def _preprocess(self, value: Any, row: int) -> np.ndarray:
        if isinstance(value, str):
            value = base64.b64decode(value)
        if isinstance(value, bytes | bytearray):
            return self.preprocessor.load_bytes(bytes(value), f"row {row}")
        raise ImageError(f"row {row}: expected encoded image bytes, got {type(value).__name__}")


def probability_table(probabilities: np.ndarray, errors: list[str]) -> pd.DataFrame:
    """emotion, probability, p_<emotion> for each of the eight, and error ("" when fine)."""
    usable = ~np.isnan(probabilities).any(axis=1)
    best = np.where(usable, np.nan_to_num(probabilities).argmax(axis=1), 0)
    table = pd.DataFrame(probabilities, columns=PROBABILITY_COLUMNS)
    table.insert(
        0, "probability", np.where(usable, probabilities[np.arange(len(best)), best], np.nan)
    )
    table.insert(0, "emotion", [EMOTIONS[i] if ok else "" for i, ok in zip(best, usable)])
    table["error"] = errors
    # None, not NaN, where there is no value: NaN is not JSON, and strict parsers refuse it.
    return table.astype(object).where(table.notna(), None)
