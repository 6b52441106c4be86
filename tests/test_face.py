"""The face step: detect, pick, square with a margin, level the eyes; the same at training and
prediction. Geometry is checked with a detector that reports given boxes; OpenCV's own cascade
on real faces in tests/test_real_data.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import fersweep.data.face as face_module
from fersweep.config.compose import build
from fersweep.data.decode import Decoded
from fersweep.data.face import Box, EyeLeveller, Face, FaceStep, HaarCascade, cascade, eye_angle
from fersweep.data.preprocess import FACE, NO_FACE, SMALL_FACE, Preprocessor
from fersweep.errors import ConfigError, ImageError
from tests.conftest import from_two_threads

FRONTAL = "haarcascade_frontalface_default.xml"


class GivenBoxes:
    """A detector that 'finds' the boxes it was given, largest first, as detectors answer."""

    def __init__(self, *boxes: Box) -> None:
        self.boxes = sorted(boxes, key=lambda b: b.width * b.height, reverse=True)

    def detect(self, grey: np.ndarray) -> list[Box]:
        return list(self.boxes)


def step(*boxes: Box, **settings) -> FaceStep:
    return FaceStep(
        GivenBoxes(*boxes), **{"margin": 1.0, "min_size": 10, "max_faces": 10, **settings}
    )


def preprocessor(face: FaceStep | None, size: int = 20) -> Preprocessor:
    return Preprocessor(channels=1, size=size, fit="pad", max_pixels=10**7, min_side=8, face=face)


def picture_with_squares() -> np.ndarray:
    """A 200x300 grey picture: a 60x60 square of 200 at (20, 30), a 30x30 square of 100 at
    (200, 120)."""
    image = np.zeros((200, 300), np.uint8)
    image[30:90, 20:80] = 200
    image[120:150, 200:230] = 100
    return image


def test_a_face_is_cut_out_as_a_square_margin_times_its_box_around_its_centre():
    image = picture_with_squares()
    cut = step(margin=2.0).crop(image, Face(Box(20, 30, 60, 60)))
    assert cut.shape == (120, 120)
    assert (cut[30:90, 30:90] == 200).all()  # the box, in the middle
    assert cut[:28].max() == 0 and cut[:, :28].max() == 0  # the margin around it


def test_what_lies_outside_the_picture_is_black():
    image = np.full((100, 100), 255, np.uint8)
    cut = step(margin=1.5).crop(image, Face(Box(0, 0, 40, 40)))  # a face in the corner
    assert cut.shape == (60, 60)
    assert cut[:9].max() == 0 and cut[:, :9].max() == 0
    assert (cut[12:, 12:] == 255).all()


def test_the_eyes_angle_turns_a_tilted_face_level():
    level = np.zeros((200, 200), np.uint8)
    cv2.circle(level, (70, 90), 6, 255, -1)
    cv2.circle(level, (130, 90), 6, 255, -1)
    tilted = cv2.warpAffine(level, cv2.getRotationMatrix2D((100, 100), -20, 1.0), (200, 200))
    eyes = [_centre(blob) for blob in _blobs(tilted)]
    angle = eye_angle(*sorted(eyes))
    assert angle == pytest.approx(20, abs=2)
    cut = step().crop(tilted, Face(Box(20, 20, 160, 160), angle))
    left, right = sorted(_centre(blob) for blob in _blobs(cut))
    assert abs(left[1] - right[1]) <= 1.5  # level again


def _blobs(image: np.ndarray) -> list[np.ndarray]:
    count, labels = cv2.connectedComponents((image > 127).astype(np.uint8))
    return [np.argwhere(labels == i) for i in range(1, count)]


def _centre(pixels: np.ndarray) -> tuple[float, float]:
    row, col = pixels.mean(axis=0)
    return float(col), float(row)


def test_training_images_use_the_largest_face_big_enough_and_else_the_whole_picture():
    image = picture_with_squares()
    big, small = Box(20, 30, 60, 60), Box(200, 120, 30, 30)
    both = preprocessor(step(big, small, min_size=40)).prepare(Decoded(image, ()))
    assert both.outcome == FACE and both.box == big
    only_small = preprocessor(step(small, min_size=40)).prepare(Decoded(image, ()))
    assert only_small.outcome == SMALL_FACE and only_small.box == Box(0, 0, 300, 200)
    assert preprocessor(step()).prepare(Decoded(image, ())).outcome == NO_FACE


def test_prediction_answers_every_face_and_flags_those_too_small():
    image = picture_with_squares()
    big, small = Box(20, 30, 60, 60), Box(200, 120, 30, 30)
    faces = preprocessor(step(small, big, min_size=40)).faces(Decoded(image, ()), "p.jpg", False)
    assert [f.box for f in faces] == [big, small]  # largest first
    assert faces[0].array.shape == (20, 20, 1) and faces[0].error == ""
    assert faces[1].array is None
    assert "p.jpg: face 30x30 px at (200, 120)" in faces[1].error
    assert "data.preprocess.face.min_size=40" in faces[1].error


def test_a_picture_without_a_face_is_an_error_unless_the_whole_image_is_asked_for():
    image = picture_with_squares()
    prep = preprocessor(step())
    with pytest.raises(ImageError, match="p.jpg: no face found"):
        prep.faces(Decoded(image, ()), "p.jpg", whole_image=False)
    (whole,) = prep.faces(Decoded(image, ()), "p.jpg", whole_image=True)
    assert whole.outcome == NO_FACE and whole.box == Box(0, 0, 300, 200)


def test_at_most_max_faces_are_kept_largest_first():
    boxes = [Box(10 * i, 0, 20 + i, 20 + i) for i in range(5)]
    found = step(*boxes, max_faces=2).find(np.zeros((100, 100), np.uint8))
    assert [f.box for f in found] == [boxes[4], boxes[3]]


def test_faces_found_on_a_downscaled_copy_are_mapped_back_to_the_full_picture(monkeypatch):
    class OneFace:
        def detectMultiScale(self, grey, *args, **kwargs):  # noqa: N802 (OpenCV's name)
            assert max(grey.shape) == 100  # 400x300 looked at as 100x75
            return np.array([[10, 20, 30, 40]])

    monkeypatch.setattr(face_module, "cascade", lambda name: OneFace())
    detector = HaarCascade(
        FRONTAL, detect_side=100, scale_factor=1.1, min_neighbors=5, retry_side=None
    )
    assert detector.detect(np.zeros((300, 400), np.uint8)) == [Box(40, 80, 120, 160)]


def test_where_no_face_is_found_a_second_look_on_a_larger_copy_finds_smaller_ones(monkeypatch):
    looked_at = []

    class FaceOnlyUpClose:
        def detectMultiScale(self, grey, *args, **kwargs):  # noqa: N802 (OpenCV's name)
            looked_at.append(max(grey.shape))
            return np.array([[10, 10, 30, 30]]) if max(grey.shape) == 250 else ()

    monkeypatch.setattr(face_module, "cascade", lambda name: FaceOnlyUpClose())
    detector = HaarCascade(FRONTAL, 100, 1.1, 5, retry_side=250)
    assert detector.detect(np.zeros((500, 400), np.uint8)) == [Box(20, 20, 60, 60)]
    assert looked_at == [100, 250]
    with pytest.raises(ConfigError, match="retry_side=100: must be above detect_side"):
        HaarCascade(FRONTAL, 128, 1.1, 5, retry_side=100)


def test_the_copy_looked_at_has_a_black_border_and_boxes_are_mapped_back_without_it(monkeypatch):
    class FaceAtTheEdge:
        def detectMultiScale(self, grey, *args, **kwargs):  # noqa: N802 (OpenCV's name)
            # 400x300 looked at as 100 x 75 inside a border of 25: 150 x 125 in all
            assert grey.shape == (125, 150) and not grey[:25].any() and not grey[:, :25].any()
            return np.array([[20, 25, 60, 60]])  # reaches past the picture's left edge

    monkeypatch.setattr(face_module, "cascade", lambda name: FaceAtTheEdge())
    detector = HaarCascade(FRONTAL, 150, 1.1, 5, retry_side=None, pad=0.25)
    assert detector.detect(np.full((300, 400), 255, np.uint8)) == [Box(-20, 0, 240, 240)]


def test_boxes_overlap_by_intersection_over_union():
    box = Box(0, 0, 10, 10)
    assert box.overlap(box) == 1.0
    assert box.overlap(box.moved(5, 0)) == pytest.approx(50 / 150)
    assert box.overlap(box.moved(20, 20)) == 0.0


def test_each_thread_gets_its_own_cascade():
    """OpenCV's CascadeClassifier is not thread-safe: decode threads must not share one."""
    first, second = from_two_threads(lambda: cascade(FRONTAL))
    assert first is not second
    assert cascade(FRONTAL) is cascade(FRONTAL)  # one per thread, reused


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: step(margin=0.1), "data.preprocess.face.margin=0.1"),
        (lambda: step(min_size=0), "data.preprocess.face.min_size=0"),
        (lambda: step(max_faces=0), "data.preprocess.face.max_faces=0"),
        (
            lambda: HaarCascade(FRONTAL, 10, 1.1, 5, None),
            "data.preprocess.face.detector.detect_side=10",
        ),
        (lambda: HaarCascade(FRONTAL, 128, 1.0, 5, None), "detector.scale_factor=1.0"),
        (lambda: HaarCascade(FRONTAL, 128, 1.1, 5, None, pad=1.5), "detector.pad=1.5"),
        (lambda: HaarCascade("nope.xml", 128, 1.1, 5, None), "no OpenCV Haar cascade nope.xml"),
        (lambda: EyeLeveller("haarcascade_eye.xml", 120, 96), "level.max_angle=120"),
    ],
)
def test_bad_face_settings_fail_naming_the_key(build, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build()


def test_the_photos_recipe_builds_the_levelled_face_step_with_stretching(compose):
    prep = build(compose("experiment=photos").data.preprocess)
    assert prep.stretch and isinstance(prep.face.level, EyeLeveller)
    assert prep.face.detector.pad > 0
