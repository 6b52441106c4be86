"""The real data set beside the project (../shared): its known mess is found and counted."""

from functools import partial

import cv2
import mlflow
import numpy as np
import pytest

from fersweep.config.compose import build
from fersweep.data.cache import load_images
from fersweep.data.legend import read_legend
from fersweep.data.preprocess import FACE, Preprocessor
from fersweep.data.reframe import Reframing
from fersweep.errors import ConfigError
from fersweep.tasks.train import train
from tests.conftest import REAL_DATA, two_people_photo

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
    assert run.data.tags["data_fingerprint"] and run.data.tags["data_root"] == str(
        REAL_DATA.resolve()
    )


def test_a_size_whose_arrays_cannot_fit_in_memory_is_refused_before_decoding(tmp_path, compose):
    """13,681 images at 2000x2000 would need about 55 GB: refused from the legend alone."""
    cfg = compose(
        f"data.root={REAL_DATA}", "data.download.enabled=false", "data.preprocess.size=2000"
    )
    with pytest.raises(
        ConfigError, match=r"data\.preprocess\.size=2000: 13,681 images .* 54\.7 GB"
    ):
        train(cfg)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # stopped before any run began
    assert not (tmp_path / ".cache").exists()  # and before any image was decoded


def real_face_step(compose) -> Preprocessor:
    return build(compose("face=haar").data.preprocess)


def test_the_face_step_decodes_real_images_on_two_threads_as_on_one(tmp_path, compose):
    """The face crop once crashed here: two decode threads shared one Haar cascade."""
    records, _ = read_legend(REAL_DATA / "legend.csv", REAL_DATA / "images")
    load = partial(
        load_images, records[:300], REAL_DATA / "images", real_face_step(compose), None, "real"
    )
    two, report_two = load(workers=2)
    one, report_one = load(workers=1)
    assert len(two.records) == len(one.records) >= 290
    assert np.array_equal(two.images, one.images)  # same faces found, whatever the thread
    assert np.array_equal(two.boxes, one.boxes)
    assert report_two.counts == report_one.counts and report_two.steps == report_one.steps


def test_the_face_step_finds_the_real_faces_and_keeps_the_data_sets_framing(compose):
    """With the configured margin the cut-out of a training image is about the image itself,
    so a model sees the same framing with or without the step."""
    records, _ = read_legend(REAL_DATA / "legend.csv", REAL_DATA / "images")
    prep = real_face_step(compose)
    images, report = load_images(records[1000:1300], REAL_DATA / "images", prep, None, "real", 2)
    found = images.outcomes == FACE
    assert found.mean() >= 0.95
    assert report.steps[FACE] == found.sum()
    sides = [
        max(cv2.imread(str(REAL_DATA / "images" / r.file), cv2.IMREAD_GRAYSCALE).shape)
        for r in np.array(images.records)[found]
    ]
    cut_sides = prep.face.margin * images.boxes[found][:, 2:].max(axis=1)
    assert 0.9 <= np.median(cut_sides / np.array(sides)) <= 1.1


def test_a_tight_real_face_is_boxed_as_the_same_face_with_room_around_it(compose):
    """Training images fill their picture; photos have room around the face. The detector's
    border makes the two boxes agree, so the cut-outs a model learns from and is asked about
    frame the face alike (without it the box shrinks at the picture's edge: median IoU 0.82)."""
    prep = real_face_step(compose)
    placing = Reframing(seed=0, face_fraction=(0.3, 0.9), aspect=(0.75, 1.5), colour_fraction=0)
    records, _ = read_legend(REAL_DATA / "legend.csv", REAL_DATA / "images")
    overlaps = []
    for record in records[2000:2150]:
        tight = cv2.imread(str(REAL_DATA / "images" / record.file), cv2.IMREAD_GRAYSCALE)
        photo, (left, top) = placing.place(tight, record.file)
        alone = prep.face.find(tight)
        with_room = prep.face.find(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
        if alone and with_room:
            overlaps.append(alone[0].box.overlap(with_room[0].box.moved(-left, -top)))
    assert len(overlaps) >= 130
    assert np.median(overlaps) >= 0.85


def test_two_real_faces_in_one_photo_are_both_found_where_they_are(compose):
    prep = real_face_step(compose)
    photo, placed = two_people_photo()
    faces = prep.faces(prep.decode(photo, "two.jpg"), "two.jpg", whole_image=False)
    assert len(faces) == 2 and all(face.array is not None for face in faces)
    for face in faces:
        x, y = face.box.centre
        assert any(abs(x - px) < 25 and abs(y - py) < 25 for px, py in placed)
