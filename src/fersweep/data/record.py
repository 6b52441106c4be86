"""What a run records of its data, handed over by the data module once it is set up (the
recording asks nothing more of the data module)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fersweep.data.report import DataReport


@dataclass(frozen=True)
class DataRecord:
    """The data report; the data set's fingerprint and where it was read; how many images were
    used; each emotion's share of the original images; images per emotion in each split (and in
    the training set as balanced, `train_balanced`); and every image's file, person, emotion and
    split, with what the face step did to it where there is one."""

    report: DataReport
    fingerprint: str
    root: Path
    images_used: int
    prevalence: np.ndarray
    counts: dict[str, dict[str, int]]
    split_table: pd.DataFrame
