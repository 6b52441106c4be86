"""Pictures as people have them: each odd kind is decoded to 8 bits and says what was done, or is
refused with one line naming the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fersweep.data.decode import decode_bytes
from fersweep.errors import ImageError


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def rgb(height: int = 40, width: int = 60) -> np.ndarray:
    picture = np.zeros((height, width, 3), np.uint8)
    picture[:, : width // 2] = (200, 30, 30)  # red on the left (RGB)
    return picture


def test_a_16_bit_picture_is_scaled_to_8_bits_and_says_so():
    grey16 = Image.fromarray(np.full((40, 60), 51400, np.uint16))
    decoded = decode_bytes(encoded(grey16, "PNG"), "deep.png", 10**7, colour=False)
    assert decoded.image.dtype == np.uint8 and decoded.image.max() == 51400 >> 8
    assert decoded.notes == ("16-bit: scaled to 8 bits",)


def test_a_transparent_picture_is_laid_on_black_and_says_so():
    rgba = np.dstack([np.full((40, 60, 3), 255, np.uint8), np.zeros((40, 60), np.uint8)])
    rgba[:, 30:, 3] = 255  # the right half opaque white, the left half transparent white
    decoded = decode_bytes(encoded(Image.fromarray(rgba), "PNG"), "cut.png", 10**7, False)
    assert decoded.image[:, :30].max() == 0 and decoded.image[:, 30:].min() == 255
    assert decoded.notes == ("transparency: composited on black",)


def test_a_cmyk_photo_comes_out_in_the_right_colours_and_says_so():
    cmyk = Image.fromarray(rgb()).convert("CMYK")
    decoded = decode_bytes(encoded(cmyk, "JPEG", quality=95), "print.jpg", 10**7, colour=True)
    blue, green, red = decoded.image[20, 10].astype(int)
    assert red > 150 and green < 80 and blue < 80
    assert decoded.notes == ("CMYK: converted to RGB",)


def test_an_animated_gif_gives_its_first_frame_and_says_how_many_there_were():
    first, second = Image.fromarray(rgb()), Image.fromarray(255 - rgb())
    data = encoded(first, "GIF", save_all=True, append_images=[second, first])
    decoded = decode_bytes(data, "wave.gif", 10**7, colour=True)
    assert decoded.image[20, 10, 2] > 150  # the first frame's red, not the second's cyan
    assert decoded.notes == ("animated GIF with 3 frames: the first used",)


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = encoded(Image.fromarray(rgb(40, 60)), "JPEG", exif=exif.tobytes())
    assert decode_bytes(data, "phone.jpg", 10**7, colour=True).image.shape[:2] == (60, 40)


def test_an_ordinary_picture_has_no_notes():
    decoded = decode_bytes(encoded(Image.fromarray(rgb()), "PNG"), "plain.png", 10**7, True)
    assert decoded.notes == () and decoded.image.shape == (40, 60, 3)


def test_a_huge_picture_is_refused_from_its_header_naming_the_file_and_setting():
    header_only = encoded(Image.new("L", (9000, 9000)), "PNG")
    with pytest.raises(ImageError, match=r"huge.png: 9000x9000 pixels exceeds .*max_pixels"):
        decode_bytes(header_only, "huge.png", 50_000_000, colour=False)
