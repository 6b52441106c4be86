"""The `DIR/<emotion>/*.jpg` layout: people's own labelled folders, for training or evaluation."""

from __future__ import annotations

from pathlib import Path

from fersweep import EMOTIONS
from fersweep.data.legend import (
    IMAGE_SUFFIXES,
    DataReport,
    Record,
    identity_from_filename,
    normalise_emotion,
)
from fersweep.errors import DataError


def read_folder(root: Path) -> tuple[list[Record], DataReport]:
    """Records for `root/<emotion>/<image>`; emotion folder names match in any case."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    report = DataReport()
    records = []
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    unknown = [p.name for p in folders if normalise_emotion(p.name) is None]
    if unknown:
        raise DataError(
            f"{root}: folder(s) {unknown} are not emotions; expected folders named {list(EMOTIONS)}"
        )
    for folder in folders:
        emotion = normalise_emotion(folder.name)
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                report.rows_read += 1
                file = f"{folder.name}/{path.name}"
                records.append(Record(file, identity_from_filename(path.name), emotion))
            elif path.is_file():
                report.add("not_an_image_file", str(path))
    if not records:
        raise DataError(f"{root}: no images found in emotion folders (e.g. {root}/happiness/*.jpg)")
    return records, report
