"""face=mtcnn: facenet-pytorch's MTCNN, installed without its dependencies, runs with
fersweep's torch on real faces; its eye landmarks level a turned face; its settings and a
missing install are refused naming the key or the command."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
import torch

from fersweep.config.compose import build
from fersweep.data import mtcnn
from fersweep.data.face import LandmarkLeveller
from fersweep.data.mtcnn import Mtcnn
from fersweep.errors import ConfigError
from fersweep.tasks.train import train
from tests.conftest import REAL_DATA, from_two_threads

DEFAULTS = dict(detect_side=160, pad=0.25, min_face_size=20, thresholds=[0.6, 0.7, 0.7])


@pytest.fixture(scope="module")
def real_face() -> np.ndarray:
    return cv2.imread(str(REAL_DATA / "images" / "Aaron_Eckhart_0001.jpg"), cv2.IMREAD_GRAYSCALE)


def test_a_real_face_is_found_with_its_eyes_inside_its_box(real_face):
    (box,) = Mtcnn(**DEFAULTS, min_probability=0.9).detect(real_face)
    height, width = real_face.shape
    assert 0.7 * width < box.side < 1.3 * width  # the data set's faces fill their pictures
    (left_x, left_y), (right_x, right_y) = box.eyes
    assert box.x < left_x < right_x < box.x + box.width
    assert box.y < left_y < box.y + box.height / 2 and box.y < right_y < box.y + box.height / 2


def test_its_eye_landmarks_give_the_angle_that_levels_a_turned_face(real_face):
    detector, level = Mtcnn(**DEFAULTS, min_probability=0.9), LandmarkLeveller(max_angle=30)
    upright = level.angle(real_face, detector.detect(real_face)[0])
    centre = (real_face.shape[1] / 2, real_face.shape[0] / 2)
    turned = cv2.warpAffine(
        real_face, cv2.getRotationMatrix2D(centre, 15, 1.0), real_face.shape[::-1]
    )
    angle = level.angle(turned, detector.detect(turned)[0])
    assert abs(angle - upright + 15) < 4  # turned 15 degrees counter-clockwise: -15 to undo


def test_a_picture_without_a_face_has_no_box_and_unsure_ones_are_dropped(real_face):
    assert Mtcnn(**DEFAULTS, min_probability=0.9).detect(np.zeros((200, 300), np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (240, 240), dtype=np.uint8)
    assert Mtcnn(**DEFAULTS, min_probability=0.999999).detect(noise) == []


def test_each_thread_gets_its_own_network():
    first, second = from_two_threads(lambda: mtcnn.network(20, (0.6, 0.7, 0.7)))
    assert first is not second
    assert mtcnn.network(20, (0.6, 0.7, 0.7)) is mtcnn.network(20, (0.6, 0.7, 0.7))  # reused


def test_face_mtcnn_builds_the_step_with_landmark_levelling(compose):
    prep = build(compose("face=mtcnn").data.preprocess)
    assert isinstance(prep.face.detector, Mtcnn) and isinstance(prep.face.level, LandmarkLeveller)


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"min_face_size": 8}, "detector.min_face_size=8"),
        ({"detect_side": 30}, "detector.detect_side=30"),
        ({"pad": 2.0}, "detector.pad=2.0"),
        ({"thresholds": [0.6, 0.7]}, "detector.thresholds"),
        ({"min_probability": 1.0}, "detector.min_probability=1.0"),
    ],
)
def test_bad_mtcnn_settings_fail_naming_the_key(settings, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        Mtcnn(**{**DEFAULTS, "min_probability": 0.9, **settings})


def test_without_facenet_pytorch_the_step_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # import fails as if missing
    with pytest.raises(ConfigError, match=r"face=mtcnn needs facenet-pytorch: run `make install`"):
        Mtcnn(**{**DEFAULTS, "thresholds": [0.5, 0.6, 0.6]}, min_probability=0.9)


def test_making_a_network_leaves_torchs_random_state_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    from_two_threads(lambda: mtcnn.network(21, (0.6, 0.7, 0.7)))  # a setting made anew
    assert torch.equal(torch.rand(3), expected)


def test_a_run_trains_the_same_whether_its_faces_are_found_now_or_read_from_the_cache(
    compose, tiny_run_overrides
):
    cfg = compose(
        *tiny_run_overrides, "face=mtcnn", "tracking.log_model=false", "data.decode_workers=2"
    )
    cold = train(cfg)  # the decode threads run MTCNN, each with a network of its own
    cached = train(cfg)
    assert cold.metrics == cached.metrics


def test_its_max_pools_run_channels_last_and_find_exactly_what_facenets_own_network_finds():
    """The speed-up changes no detection: on real faces, whole and placed small in a larger
    picture, the boxes, scores and landmarks equal those of facenet-pytorch's MTCNN as shipped,
    to the bit."""
    from facenet_pytorch import MTCNN

    ours = mtcnn.network(20, (0.6, 0.7, 0.7))
    assert any(isinstance(m, mtcnn.ChannelsLastMaxPool) for m in ours.modules())
    with torch.random.fork_rng(devices=[]):
        shipped = MTCNN(keep_all=True, min_face_size=20, thresholds=[0.6, 0.7, 0.7])
    files = sorted((REAL_DATA / "images").glob("A*.jpg"))[:40]
    for file in files:
        grey = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        for picture in (grey, cv2.copyMakeBorder(grey, *[300] * 4, cv2.BORDER_REFLECT)):
            rgb = np.repeat(cv2.resize(picture, (160, 160))[:, :, None], 3, axis=2)
            found, expected = ours.detect(rgb, landmarks=True), shipped.detect(rgb, landmarks=True)
            for a, b in zip(found, expected, strict=True):
                assert (a is None and b is None) or np.array_equal(a, b), file.name
