"""One preprocessing path: grey or colour, fixed size, black padding or centre crop."""

import cv2
import numpy as np
import pytest

from fersweep.data.decode import Decoded
from fersweep.data.face import EyeLeveller, FaceStep, HaarCascade
from fersweep.data.preprocess import Preprocessor, fit_square
from fersweep.errors import ConfigError, ImageError


def preprocessor(**settings) -> Preprocessor:
    defaults = dict(channels=1, size=50, fit="pad", max_pixels=10_000_000, min_side=8, face=None)
    return Preprocessor(**{**defaults, **settings})


def prepared(prep: Preprocessor, image: np.ndarray) -> np.ndarray:
    return prep.prepare(Decoded(image, ())).array


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
        out = prepared(prep, image)
        assert out.shape == (size, size, channels) and out.dtype == np.uint8


def test_colour_is_converted_to_grey_by_luminance():
    blue = np.zeros((10, 10, 3), np.uint8)
    blue[:, :, 0] = 255  # BGR
    assert prepared(preprocessor(size=10), blue).max() == round(0.114 * 255)


def test_stretch_makes_a_darker_photo_of_a_face_the_same_picture():
    """A face photographed in dimmer or tinted light (intensities scaled) reaches the network
    as the same picture when `stretch` is on."""
    face = np.random.default_rng(0).integers(20, 230, (50, 50)).astype(np.uint8)
    darker = (face * 0.6).round().astype(np.uint8)
    plain, stretched = preprocessor(), preprocessor(stretch=True)
    assert np.abs(prepared(plain, face).astype(int) - prepared(plain, darker)).mean() > 30
    out, out_darker = prepared(stretched, face), prepared(stretched, darker)
    assert np.abs(out.astype(int) - out_darker).max() <= 3
    assert np.percentile(out, 1) <= 1 and np.percentile(out, 99) >= 254
    flat = np.full((50, 50), 90, np.uint8)
    assert np.array_equal(prepared(stretched, flat), flat[..., None])


def test_jpeg_files_decode_through_the_same_path(tmp_path):
    path = tmp_path / "x.jpg"
    cv2.imwrite(str(path), np.full((80, 60, 3), 128, np.uint8))
    assert preprocessor(channels=3).load(path).array.shape == (50, 50, 3)


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


def test_an_opencv_failure_in_one_image_is_that_images_error(tmp_path):
    class BrokenDetector:
        def detect(self, grey):
            raise cv2.error("(-215:Assertion failed) 0 <= scaleIdx in function 'detect'")

    path = tmp_path / "face.png"
    cv2.imwrite(str(path), np.full((60, 60), 90, np.uint8))
    face = FaceStep(BrokenDetector(), margin=1.2, min_size=24, max_faces=10)
    with pytest.raises(ImageError, match="face.png: OpenCV failed while preprocessing it"):
        preprocessor(face=face).load(path)


def test_the_settings_rebuild_the_same_preprocessor_face_step_included():
    face = FaceStep(
        HaarCascade("haarcascade_frontalface_default.xml", 128, 1.1, 5, 256, pad=0.25),
        margin=1.2,
        min_size=24,
        max_faces=3,
        level=EyeLeveller("haarcascade_eye.xml", 30, 96),
    )
    prep = preprocessor(face=face, channels=3, stretch=True)
    assert Preprocessor.from_settings(prep.settings()) == prep


def test_a_model_logged_before_the_border_and_stretching_is_served_as_it_was_trained():
    """Its settings name neither `pad` nor `stretch`: it looks without a border, unstretched."""
    prep = preprocessor(
        face=FaceStep(
            HaarCascade("haarcascade_frontalface_default.xml", 128, 1.1, 5, 256), 1.2, 24, 3
        )
    )
    settings = prep.settings()
    del settings["stretch"], settings["face"]["detector"]["pad"]
    rebuilt = Preprocessor.from_settings(settings)
    assert rebuilt == prep and not rebuilt.stretch and rebuilt.face.detector.pad == 0


def test_a_model_logged_by_fersweep_0_2_is_served_with_its_tight_face_crop():
    old = dict(channels=1, size=50, fit="pad", face_crop=True, face_detect_side=100,
               max_pixels=10_000_000, min_side=8)  # fmt: skip
    rebuilt = Preprocessor.from_settings(old)
    assert rebuilt.face.margin == 1.0 and rebuilt.face.detector.detect_side == 100
    assert Preprocessor.from_settings({**old, "face_crop": False}).face is None
