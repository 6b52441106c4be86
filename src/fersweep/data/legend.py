"""Parse a data set's labels into clean records, counting every problem in a DataReport."""

from __future__ import annotations

import csv
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from fersweep import EMOTIONS
from fersweep.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
LEGEND_COLUMNS = ("image", "emotion")
_TRAILING_NUMBER = re.compile(r"[_-]?\d+[a-z]?$", re.IGNORECASE)
MAX_EXAMPLES = 10


@dataclass(frozen=True)
class Record:
    """One usable image: its file (relative to the images folder), person and emotion."""

    file: str
    identity: str
    emotion: str

    @property
    def label(self) -> int:
        return EMOTIONS.index(self.emotion)


@dataclass
class DataReport:
    """What was read, what was dropped and why: every kind of problem is counted here, and
    what preprocessing did to the images kept (face found or not, conversions) in `steps`."""

    rows_read: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    steps: Counter = field(default_factory=Counter)

    def add(self, problem: str, example: str) -> None:
        self.counts[problem] += 1
        if len(self.examples[problem]) < MAX_EXAMPLES:
            self.examples[problem].append(example)

    def merge(self, other: DataReport) -> None:
        self.steps.update(other.steps)
        for problem, count in other.counts.items():
            self.counts[problem] += count
            room = MAX_EXAMPLES - len(self.examples[problem])
            self.examples[problem].extend(other.examples[problem][:room])

    def as_dict(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "problems": dict(sorted(self.counts.items())),
            "examples": {k: v for k, v in sorted(self.examples.items()) if v},
            "preprocessing": dict(sorted(self.steps.items())),
        }

    @classmethod
    def from_dict(cls, saved: dict) -> DataReport:
        report = cls(rows_read=saved.get("rows_read", 0))
        report.counts.update(saved["problems"])
        for problem, examples in saved["examples"].items():
            report.examples[problem] = list(examples)
        report.steps.update(saved.get("preprocessing", {}))
        return report


def identity_from_filename(file: str) -> str:
    """The person in an image: its file name without the trailing image number.

    `George_W_Bush_0012.jpg` -> `George_W_Bush`, `HrithikRoshan_45.jpg` -> `HrithikRoshan`.
    """
    stem = os.path.splitext(os.path.basename(file))[0]
    return _TRAILING_NUMBER.sub("", stem) or stem


def normalise_emotion(label: str) -> str | None:
    """The canonical emotion for a label in any case, or None if it is not one of the eight."""
    emotion = label.strip().lower()
    return emotion if emotion in EMOTIONS else None


def is_safe_relative_name(name: str) -> bool:
    """True for a plain relative path that stays inside the images folder."""
    if not name or "\x00" in name:
        return False
    if not any(separator in name for separator in "/\\:"):
        return name != ".."  # a bare file name: the common case, no path parsing needed
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            return False
    return True


def read_legend(legend_path: Path, images_dir: Path) -> tuple[list[Record], DataReport]:
    """Records for every usable row of a `user.id,image,emotion` legend, and a report of the rest.

    Labels are case-folded; exact duplicate rows are kept once; an image listed with two different
    emotions is excluded; rows naming unsafe paths, unknown labels or missing files are skipped;
    images without a row are counted as unlabelled.
    """
    report = DataReport()
    rows = _read_rows(legend_path, report)
    by_file: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for line, image, label in rows:
        if not is_safe_relative_name(image):
            report.add("unsafe_path", f"{legend_path.name}:{line}: {image!r}")
            continue
        emotion = normalise_emotion(label)
        if emotion is None:
            report.add("unknown_label", f"{legend_path.name}:{line}: {image} -> {label!r}")
            continue
        if label != emotion:
            report.add("label_case_folded", f"{legend_path.name}:{line}: {label!r} -> {emotion}")
        by_file[image].append((line, emotion))

    on_disk = {name for name in os.listdir(images_dir) if name.lower().endswith(IMAGE_SUFFIXES)}
    records = []
    for image, entries in by_file.items():
        emotions = {emotion for _, emotion in entries}
        if len(emotions) > 1:
            lines = ", ".join(f"line {line}: {emotion}" for line, emotion in entries)
            report.add("conflicting_duplicate", f"{image} ({lines})")
            continue
        for line, _ in entries[1:]:
            report.add("exact_duplicate", f"{legend_path.name}:{line}: {image}")
        if image not in on_disk and not (images_dir / image).is_file():
            report.add("missing_file", f"{legend_path.name}:{entries[0][0]}: {image}")
            continue
        records.append(Record(image, identity_from_filename(image), emotions.pop()))

    for name in sorted(on_disk - set(by_file)):
        report.add("unlabelled_image", name)
    return records, report


def _read_rows(legend_path: Path, report: DataReport) -> list[tuple[int, str, str]]:
    try:
        with legend_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [column.strip().lower() for column in next(reader, [])]
            missing = [c for c in LEGEND_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{legend_path}: header {header!r} lacks column(s) {missing}; "
                    "expected a header like 'user.id,image,emotion'"
                )
            image_col, emotion_col = (header.index(c) for c in LEGEND_COLUMNS)
            rows = []
            for line, row in enumerate(reader, start=2):
                if not any(cell.strip() for cell in row):
                    continue
                report.rows_read += 1
                if len(row) != len(header):
                    report.add("malformed_row", f"{legend_path.name}:{line}: {row!r}")
                    continue
                rows.append((line, row[image_col].strip(), row[emotion_col]))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{legend_path}: not a readable CSV file ({error})") from error
    return rows
