"""The predict task: a registered model's answers for image files and folders, shown, written to
a table and drawn onto copies of the pictures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fersweep.errors import FersweepError
from fersweep.serving.display import show_predictions
from fersweep.serving.predict import annotate, image_files, predict_files
from fersweep.tracking.registry import load_classifier


def predict(
    paths: Sequence[str],
    model_uri: str,
    tracking_uri: str,
    whole_image: bool,
    output: str | None,
    annotate_dir: str | None,
) -> int:
    files = image_files(paths)
    model = load_classifier(model_uri, tracking_uri)
    predictions = predict_files(model, files, whole_image=whole_image)
    show_predictions(predictions)
    if output:
        write_table(predictions.table, Path(output))
    if annotate_dir:
        written = annotate(predictions, Path(annotate_dir))
        print(f"{len(written)} annotated picture(s) written to {annotate_dir}")
    return 0


def write_table(table: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".json":
        path.write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    else:
        raise FersweepError(f"--output {path}: use a .csv or .json file name")
