"""The real data set beside the project (../shared): its known mess is found and counted."""

from functools import partial

import mlflow
import numpy as np
import pytest

from fersweep.data.cache import load_images
from fersweep.data.legend import read_legend
from fersweep.data.preprocess import Preprocessor
from fersweep.train import train
from tests.conftest import REAL_DATA

pytestmark = pytest.mark.skipif(
    not (REAL_DATA / "legend.csv").is_file(), reason=f"no real data set at {REAL_DATA}"
)


def test_the_real_legend_cleans_up_as_its_source_documents():
    records, report = read_legend(REAL_DATA / "legend.csv", REAL_DATA / "images")
    assert report.rows_read == 13_690
    assert report.counts["exact_duplicate"] == 7
    assert report.counts["conflicting_duplicate"] == 1
    assert report.counts["unlabelled_image"] == 36
    assert report.counts["label_case_folded"] == 921  # HAPPINESS, NEUTRAL, SADNESS ...
    assert "Avinash_30.jpg" in report.examples["conflicting_duplicate"][0]
    assert len({r.emotion for r in records}) == 8
    assert len(records) == 13_690 - 7 - 2


def test_a_short_run_on_a_real_subset_is_tracked(compose):
    """One epoch on 800 real images leaves a finished MLflow run holding what it measured."""
    cfg = compose(
        f"data.root={REAL_DATA}",
        "data.download.enabled=false",
        "data.subset.max_images=800",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "tracking.log_model=false",
    )
    result = train(cfg)
    run = mlflow.MlflowClient(cfg.tracking.tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["state"] == "complete"
    assert run.data.params["data.subset.max_images"] == "800"
    assert 700 <= run.data.metrics["data/images_used"] <= 900
    for metric in ("test/macro_f1", "test/accuracy"):
        assert run.data.metrics[metric] == pytest.approx(result.metrics[metric])
    assert result.metrics["test/accuracy"] > 0
    assert run.data.tags["data_fingerprint"] and run.data.tags["data_root"] == str(REAL_DATA)


def test_face_crop_decodes_real_images_on_two_threads_as_on_one(tmp_path):
    """The face crop once crashed here: two decode threads shared one Haar cascade."""
    records, _ = read_legend(REAL_DATA / "legend.csv", REAL_DATA / "images")
    first = records[:300]
    prep = Preprocessor(
        channels=1, size=50, fit="pad", face_crop=True, max_pixels=50_000_000, min_side=8
    )
    load = partial(load_images, first, REAL_DATA / "images", prep, None, "real")
    two, report_two = load(workers=2)
    one, report_one = load(workers=1)
    assert len(two.records) == len(one.records) >= 290
    assert np.array_equal(two.images, one.images)  # same faces found, whatever the thread
    assert report_two.counts == report_one.counts
