"""The served classifier's answer table (`fersweep.serving.pyfunc.face_table`) from the fersweep
on sys.path: ms a table of 1, 3 and 40 rows (a fifth of them unusable), and a digest of the
records MLflow's server writes (values and their types). Run with each commit's src first on
PYTHONPATH: equal digests mean equal answers."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

import fersweep
from fersweep.data.face import Box
from fersweep.data.preprocess import FACE, Prepared
from fersweep.serving.pyfunc import face_table


def table_input(count: int, rng: np.random.Generator):
    rows = [
        (i // 2, i % 2, Prepared(None, Box(i, i + 1, 30, 31), "not used", error="bad"))
        if i % 5 == 0
        else (i // 2, i % 2, Prepared(np.zeros(1), Box(i, i + 1, 30, 31), FACE))
        for i in range(count)
    ]
    probabilities = rng.random((count, 8))
    probabilities[[i for i in range(count) if i % 5 == 0]] = np.nan
    return rows, probabilities


if __name__ == "__main__":
    print(f"fersweep from {Path(fersweep.__file__).parent}")
    rng, digest = np.random.default_rng(0), hashlib.sha256()
    for count in (1, 3, 40):
        rows, probabilities = table_input(count, rng)
        records = face_table(rows, probabilities).to_dict(orient="records")
        digest.update(repr([(k, v, type(v).__name__) for r in records for k, v in r.items()]).encode())
        start = time.perf_counter()
        for _ in range(200):
            face_table(rows, probabilities)
        print(f"{count} rows: {(time.perf_counter() - start) / 200 * 1000:.2f} ms a table")
    print(f"records digest {digest.hexdigest()}")
