"""Where a reframed face's answer changes, read from the runs' recorded predictions (no model):
    .venv/bin/python results/2026-11-28-framing-cv/where.py <tracking uri> <comparison run id>

For every arm of the comparison, its runs' (comparison/runs.json: reused ones too) `evaluation/test_predictions.csv` and
`test_reframed_predictions.csv` (every image once over the folds), with each image's reframing
drawn again from conf/reframe/default.yaml (the draws are seeded by the file's name): how often
the reframed picture gets the answer the image itself got, and each's accuracy on the eight
emotions, by whether the picture was made colour (the grey face tinted) and by the face's share
of the picture's height.
"""

import json
import sys
from functools import cache
from pathlib import Path

import cv2
import mlflow
import pandas as pd

from fersweep.config.compose import build, compose_config
from fersweep.data.reframe import looks_grey

IMAGES = Path("/work/shared/data/facial_expressions/images")


def main(tracking_uri: str, parent: str) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    reframing = build(compose_config("conf", ["reframe=default"]).data.reframe)

    @cache
    def drawn(file: str) -> tuple[bool, float]:
        """Whether the picture was made colour, and the face's share of its height (the draws
        of Reframing.place, in its order)."""
        rng = reframing.rng(file)
        colour = rng.random() < reframing.colour_fraction
        if colour and looks_grey(cv2.imread(str(IMAGES / file), cv2.IMREAD_COLOR)):
            rng.integers(4)  # the skin tone
        return colour, rng.uniform(*reframing.face_fraction)

    # Every run behind the comparison, its own and those it reused (comparison/runs.json).
    index = json.loads(Path(client.download_artifacts(parent, "comparison/runs.json")).read_text())
    rows = []
    for arm, entry in index.items():
        for run_id in entry["runs"]:
            plain = _read(client, run_id, "test_predictions.csv")
            moved = _read(client, run_id, "test_reframed_predictions.csv")
            for file, truth, before, after in zip(
                plain["file"], plain["truth"], plain["predicted"], moved["predicted"]
            ):
                colour, share = drawn(file)
                rows.append((arm, colour, share, truth, before, after))
    table = pd.DataFrame(rows, columns=["arm", "colour", "share", "truth", "before", "after"])
    table["same answer"] = table["before"] == table["after"]
    table["right as it is"] = table["before"] == table["truth"]
    table["right reframed"] = table["after"] == table["truth"]
    table["face share"] = pd.cut(table["share"], [0.3, 0.5, 0.75, 1.0], include_lowest=True)
    columns = ["same answer", "right as it is", "right reframed"]
    for by in (["arm"], ["arm", "colour"], ["arm", "face share"]):
        summary = table.groupby(by, observed=True)[columns].mean()
        summary["images"] = table.groupby(by, observed=True).size()
        print(summary.to_markdown(floatfmt=".3f"))
        print()


def _read(client: mlflow.MlflowClient, run_id: str, name: str) -> pd.DataFrame:
    path = client.download_artifacts(run_id, f"evaluation/{name}")
    return pd.read_csv(path).sort_values("file", kind="stable").reset_index(drop=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
