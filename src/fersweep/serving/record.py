"""The callback that logs a trained network with the raw-image classifier built around it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch

from fersweep.data.face import Box
from fersweep.data.preprocess import FACE, Prepared
from fersweep.data.samples import example_image_bytes, example_input
from fersweep.serving.pyfunc import IMAGE_COLUMN, NAME_COLUMN, PARAMS, face_table
from fersweep.tracking import artifacts

PACKAGE = Path(__file__).resolve().parents[1]  # copied into the model: it runs the same code


class RecordClassifier(pl.Callback):
    """After the test: the tested network (`model`) and the classifier (`classifier`), a pyfunc
    that takes raw image bytes, preprocesses them as training did and applies the evaluation's
    post-hoc steps (flip, offsets)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        datamodule = trainer.datamodule
        # The default memory layout: MLflow's exported graph warns on loading channels-last
        # weights (a network that trains in that layout converts its input itself).
        net = pl_module.net.cpu().eval().to(memory_format=torch.contiguous_format)
        example = example_input(datamodule)
        with torch.no_grad():
            output = net(torch.from_numpy(example)).numpy()
        spec = classifier_spec(
            output[:1],
            datamodule.preprocessor.settings(),
            example_image_bytes(datamodule),
            pl_module.posthoc_settings(),
        )
        artifacts.log_model(net, example, output, spec)


def classifier_spec(
    logits: np.ndarray,
    preprocess: Mapping[str, Any],
    example_image: bytes,
    posthoc: Mapping[str, Any],
) -> artifacts.PyfuncSpec:
    """The pyfunc's model code, settings and an example request and answer (from the network's
    `logits` for one image) for its signature."""
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    answer = face_table([(0, 0, Prepared(None, Box(0, 0, 1, 1), FACE))], probabilities)
    return artifacts.PyfuncSpec(
        model_code=PACKAGE / "serving" / "model_code.py",
        code_package=PACKAGE,
        model_config={"preprocess": dict(preprocess), "posthoc": dict(posthoc), "batch_size": 256},
        request=pd.DataFrame({IMAGE_COLUMN: [example_image]}),
        answer=answer,
        params=PARAMS,
        example_params={"whole_image": True},  # the example answers even without a face
        binary_columns=[IMAGE_COLUMN],
        optional_text_columns=[NAME_COLUMN],
    )
