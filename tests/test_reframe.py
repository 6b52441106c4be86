"""The framing check's pictures: a face image placed into a larger picture, or cut tighter, the
same way every time for the same image, within the configured share, background and colour."""

from __future__ import annotations

import numpy as np
import pytest

from fersweep.data.reframe import Framings, Reframing, Tightening
from fersweep.errors import ConfigError


def reframing(**changes) -> Reframing:
    settings = dict(seed=0, face_fraction=(0.3, 1.0), aspect=(0.75, 1.5), colour_fraction=0.5)
    return Reframing(**{**settings, **changes})


def face_image() -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (60, 50), dtype=np.uint8)  # noise: found again only where put


def where(picture: np.ndarray, face: np.ndarray) -> tuple[int, int]:
    """Where the face lies, unchanged, in a grey picture (its top-left corner)."""
    grey = picture[:, :, 0]
    for top in range(grey.shape[0] - face.shape[0] + 1):
        for left in np.flatnonzero(grey[top, : grey.shape[1] - face.shape[1] + 1] == face[0, 0]):
            window = grey[top : top + face.shape[0], left : left + face.shape[1]]
            if np.array_equal(window, face):
                return top, int(left)
    raise AssertionError("the face is not in the picture")


def test_the_same_image_is_reframed_the_same_way_every_time_and_another_seed_differs():
    face = face_image()
    first = reframing().apply(face, "a.jpg")
    assert np.array_equal(first, reframing().apply(face, "a.jpg"))
    assert not np.array_equal(first, reframing(seed=1).apply(face, "a.jpg"))


def test_the_face_keeps_its_pixels_and_takes_the_configured_share_of_the_height():
    face = face_image()
    grey = reframing(colour_fraction=0.0, face_fraction=(0.4, 0.5))
    shares, places = [], set()
    for number in range(20):
        picture = grey.apply(face, f"{number}.jpg")
        assert picture.ndim == 3 and (picture[:, :, 0] == picture[:, :, 2]).all()  # grey
        places.add(where(picture, face))
        shares.append(face.shape[0] / picture.shape[0])
    assert 0.39 <= min(shares) and max(shares) <= 0.51
    assert len(places) > 10  # off-centre, somewhere new each time


def test_colour_pictures_are_colour_and_their_background_is_textured():
    picture = reframing(colour_fraction=1.0, face_fraction=(0.3, 0.3)).apply(face_image(), "c")
    assert np.abs(picture[:, :, 0].astype(int) - picture[:, :, 2]).max() > 10
    border = picture[:10].reshape(-1, 3)
    assert border.std(axis=0).max() > 3  # not a flat colour


def test_the_reframed_picture_is_a_jpeg_file():
    assert reframing().encoded(face_image(), "x").startswith(b"\xff\xd8")


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"face_fraction": (0.0, 0.5)}, "reframe.face_fraction"),
        ({"face_fraction": (0.8, 0.5)}, "reframe.face_fraction"),
        ({"aspect": (2.0, 1.0)}, "reframe.aspect"),
        ({"colour_fraction": 1.5}, "reframe.colour_fraction"),
    ],
)
def test_bad_reframing_settings_fail_naming_the_key(changes, key):
    with pytest.raises(ConfigError, match=key):
        reframing(**changes)


def tightening(**changes) -> Tightening:
    return Tightening(**{**dict(seed=0, crop_fraction=(0.7, 0.9), shift=0.05), **changes})


def test_the_other_direction_cuts_the_face_tighter_off_centre_and_resizes_it_back():
    """A ramp image: the cut's corners show which square was kept, and its scale how tight."""
    rows, cols = np.mgrid[0:200, 0:200]
    ramp = (cols + 1000 * rows).astype(np.float64)  # each pixel's position, readable back
    sides, centres = [], []
    for number in range(40):
        cut = tightening().apply(ramp, f"{number}.jpg")
        assert cut.shape == ramp.shape
        left, top = cut[0, 0] % 1000, cut[0, 0] // 1000
        right = cut[0, -1] % 1000
        sides.append((right - left + 1) / 200)
        centres.append((left + right) / 2 - 99.5)
        assert 0 <= left and right <= 199 and 0 <= top
    assert 0.68 <= min(sides) and max(sides) <= 0.91 and np.ptp(sides) > 0.1
    assert max(abs(c) for c in centres) <= 0.05 * 200 + 1 and np.ptp(centres) > 2
    assert np.array_equal(tightening().apply(ramp, "a.jpg"), tightening().apply(ramp, "a.jpg"))


def test_the_tighter_cut_keeps_a_grey_image_grey_and_is_saved_as_jpeg():
    cut = tightening().encoded(face_image(), "a.jpg")
    assert cut[:2] == b"\xff\xd8"  # a JPEG file's first bytes


@pytest.mark.parametrize(
    "changes, key",
    [({"crop_fraction": (0.9, 0.7)}, "reframe.crop_fraction"), ({"shift": 0.6}, "reframe.shift")],
)
def test_bad_tightening_settings_are_refused_naming_the_key(changes, key):
    with pytest.raises(ConfigError, match=key):
        tightening(**changes)


def test_each_direction_says_in_a_sentence_what_it_did():
    assert "larger canvas (face 30%–100%" in reframing().describe()
    assert "a square 70%–90% of its shorter side, off-centre by up to 5%" in tightening().describe()


def test_both_directions_in_one_run_are_named_and_described_each():
    both = Framings({"reframed": reframing(), "tightened": tightening()})
    assert list(both.named()) == ["reframed", "tightened"]
    assert list(reframing().named()) == ["reframed"]  # one direction: `reframed`
    assert both.describe().startswith("reframed: Each test image put on a larger canvas")
    assert "; tightened: Each test image cut tighter" in both.describe()


@pytest.mark.parametrize("directions", [{}, {"Tight Faces": None}])
def test_directions_with_no_name_or_a_bad_one_are_refused(directions):
    with pytest.raises(ConfigError, match="reframe.directions"):
        Framings(directions)
