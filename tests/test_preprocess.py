"""One preprocessing path: grey or colour, fixed size, black padding or centre crop."""

import threading

import cv2
import numpy as np
import pytest

import fersweep.data.preprocess as preprocess_module
from fersweep.data.preprocess import Preprocessor, face_detector, fit_square
from fersweep.errors import ConfigError, ImageError


def preprocessor(**settings) -> Preprocessor:
    defaults = dict(
        channels=1, size=50, fit="pad", face_crop=False, max_pixels=10_000_000, min_side=8
    )
    return Preprocessor(**{**defaults, **settings})


def test_a_wide_image_is_padded_with_black_bars_keeping_its_aspect():
    wide = np.full((100, 200), 255, np.uint8)
    out = fit_square(wide, 50, "pad")
    assert out.shape == (50, 50)
    assert out[:12].max() == 0 and out[-12:].max() == 0  # bars above and below
    assert out[13:37].min() == 255


def test_crop_fills_the_square_from_the_centre():
    wide = np.zeros((100, 200), np.uint8)
    wide[:, 50:150] = 255
    out = fit_square(wide, 50, "crop")
    assert out.shape == (50, 50) and out.min() == 255


@pytest.mark.parametrize("size", [50, 150])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_input_comes_out_at_the_configured_size_and_channels(size, channels):
    prep = preprocessor(size=size, channels=channels)
    for image in (np.zeros((37, 27), np.uint8), np.zeros((350, 350, 3), np.uint8)):
        out = prep.apply(image)
        assert out.shape == (size, size, channels) and out.dtype == np.uint8


def test_colour_is_converted_to_grey_by_luminance():
    blue = np.zeros((10, 10, 3), np.uint8)
    blue[:, :, 0] = 255  # BGR
    assert preprocessor(size=10).apply(blue).max() == round(0.114 * 255)


def test_jpeg_files_decode_through_the_same_path(tmp_path):
    path = tmp_path / "x.jpg"
    cv2.imwrite(str(path), np.full((80, 60, 3), 128, np.uint8))
    assert preprocessor(channels=3).load(path).shape == (50, 50, 3)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty file"), (b"this is text, not a picture", "not an image")],
)
def test_unusable_files_raise_image_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=f"bad.jpg.*{message}"):
        preprocessor().load(path)


def test_images_over_the_pixel_cap_are_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    cv2.imwrite(str(path), np.zeros((300, 300), np.uint8))
    with pytest.raises(ImageError, match="max_pixels"):
        preprocessor(max_pixels=300 * 299).load(path)


@pytest.mark.parametrize(
    "setting, key",
    [({"size": 0}, "size"), ({"channels": 2}, "channels"), ({"fit": "stretch"}, "fit")],
)
def test_bad_settings_fail_naming_the_key(setting, key):
    with pytest.raises(ConfigError, match=f"data.preprocess.{key}"):
        preprocessor(**setting)


def test_face_crop_uses_opencvs_bundled_cascade_and_keeps_faceless_images_whole():
    prep = preprocessor(face_crop=True, size=32)
    flat = np.full((120, 90), 128, np.uint8)  # no face to find
    assert np.array_equal(prep.apply(flat), preprocessor(size=32).apply(flat))


def test_each_thread_gets_its_own_face_detector():
    """OpenCV's CascadeClassifier is not thread-safe: decode threads must not share one."""
    found: dict[str, object] = {}

    def remember(name: str) -> None:
        found[name] = face_detector()

    threads = [threading.Thread(target=remember, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found["a"] is not found["b"]
    assert face_detector() is face_detector()  # one per thread, reused


def test_an_opencv_failure_in_one_image_is_that_images_error(tmp_path, monkeypatch):
    class BrokenDetector:
        def detectMultiScale(self, *args, **kwargs):  # noqa: N802 (OpenCV's name)
            raise cv2.error("(-215:Assertion failed) 0 <= scaleIdx in function 'detect'")

    monkeypatch.setattr(preprocess_module, "face_detector", BrokenDetector)
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), np.full((60, 60), 90, np.uint8))
    with pytest.raises(ImageError, match="face.png: OpenCV failed while preprocessing it"):
        preprocessor(face_crop=True).load(path)


def test_faces_found_on_a_downscaled_copy_are_mapped_back_to_the_full_image(monkeypatch):
    class OneFace:
        def detectMultiScale(self, grey, *args, **kwargs):  # noqa: N802 (OpenCV's name)
            assert max(grey.shape) == 100  # 400x300 looked at as 100x75
            return np.array([[10, 20, 30, 40]])

    monkeypatch.setattr(preprocess_module, "face_detector", OneFace)
    image = np.zeros((300, 400), np.uint8)
    image[80:240, 40:160] = 255  # the face's box at full size: 4x the one found
    crop = preprocessor(face_crop=True, face_detect_side=100, size=40, fit="crop").apply(image)
    assert crop.min() == 255  # nothing but the face, mapped back to full size


def test_face_detect_side_below_the_cascades_window_is_refused():
    with pytest.raises(ConfigError, match="data.preprocess.face_detect_side=10"):
        preprocessor(face_detect_side=10)
