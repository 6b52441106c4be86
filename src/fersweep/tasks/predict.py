"""The predict task: a registered model's answers for image files and folders, shown, written to
a table and drawn onto copies of the pictures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from fersweep.errors import ConfigError
from fersweep.serving.display import show_predictions
from fersweep.serving.predict import annotate, image_files, predict_files
from fersweep.tracking.registry import load_classifier


def predict(cfg: DictConfig) -> int:
    """`fersweep predict` (its settings: fersweep.config.commands.PredictCommand)."""
    files = image_files(image_paths(cfg.images))
    model = load_classifier(cfg.model_uri, cfg.tracking.tracking_uri)
    predictions = predict_files(model, files, whole_image=cfg.whole_image)
    show_predictions(predictions)
    if cfg.output:
        write_table(predictions.table, Path(cfg.output))
    if cfg.annotate:
        written = annotate(predictions, Path(cfg.annotate))
        print(f"{len(written)} annotated picture(s) written to {cfg.annotate}")
    return 0


def image_paths(images: Any) -> list[str]:
    """`images=photo.jpg` or `images=[a.jpg,photos/]`."""
    if isinstance(images, str):
        return [images]
    if OmegaConf.is_list(images) and all(isinstance(path, str) for path in images):
        return list(images)
    raise ConfigError(f"images={images}: give an image file or folder, or a list of them")


def write_table(table: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".json":
        path.write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    else:
        raise ConfigError(f"output={path}: use a .csv or .json file name")
