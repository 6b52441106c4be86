"""The data module's settings, typed as it keeps them (Hydra composes them as plain mappings),
and the data set as read from its source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fersweep.data.legend import DataReport, Record
from fersweep.data.split import check_settings
from fersweep.errors import ConfigError


@dataclass
class SplitConfig:
    method: str
    val_fraction: float
    test_fraction: float
    seed: int
    folds: int = 5
    fold: int = 0

    def __post_init__(self) -> None:
        check_settings(self.method, self.val_fraction, self.test_fraction, self.folds, self.fold)


@dataclass(frozen=True)
class DownloadConfig:
    enabled: bool
    url: str


@dataclass(frozen=True)
class SubsetConfig:
    """A class-proportional sample of `max_images` (null: every image), keeping
    `min_per_class` of each class where it can."""

    max_images: int | None = None
    min_per_class: int = 10

    def __post_init__(self) -> None:
        if self.max_images is not None and self.max_images <= 0:
            raise ConfigError(f"data.subset.max_images={self.max_images}: positive, or null")
        if self.min_per_class < 0:
            raise ConfigError(f"data.subset.min_per_class={self.min_per_class}: 0 or more")


@dataclass(frozen=True)
class Source:
    """The data set as read from its legend (or folders): its records and report, where it
    lies, its images, and its legend file (None for folders)."""

    records: list[Record]
    report: DataReport
    root: Path
    images_dir: Path
    legend: Path | None
