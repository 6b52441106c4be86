"""Encoded image bytes to an 8-bit grey or BGR array, refusing what cannot be used and saying
what was done to what can (16-bit, transparency, CMYK, animation)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fersweep.errors import ImageError

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray  # uint8: H x W grey, or H x W x 3 BGR
    notes: tuple[str, ...]  # what was done to make it so, one short phrase each


@dataclass(frozen=True)
class Header:
    """What Pillow reads from an image's header without decoding its pixels."""

    width: int
    height: int
    format: str
    frames: int
    sixteen_bit: bool
    alpha: bool
    cmyk: bool

    def notes(self) -> tuple[str, ...]:
        notes = []
        if self.frames > 1:
            notes.append(f"animated {self.format} with {self.frames} frames: the first used")
        if self.sixteen_bit:
            notes.append("16-bit: scaled to 8 bits")
        if self.cmyk:
            notes.append("CMYK: converted to RGB")
        if self.alpha:
            notes.append("transparency: composited on black")
        return tuple(notes)


def decode_bytes(data: bytes, name: str, max_pixels: int, colour: bool) -> Decoded:
    """Decode an encoded image, refusing empty files, non-images and over-large dimensions.

    OpenCV decodes (it applies a photo's EXIF orientation, scales 16-bit to 8 and reads a
    GIF's first frame); a picture with transparency is read with its alpha channel and laid
    on black, as the padding elsewhere is black, rather than keeping whatever colour the
    transparent pixels happen to hold.
    """
    if not data:
        raise ImageError(f"{name}: empty file")
    if data.startswith(JPEG_START) and not data.rstrip(b"\x00").endswith(JPEG_END):
        # OpenCV decodes a cut-off JPEG into a half-grey picture with only a warning.
        raise ImageError(f"{name}: truncated JPEG (no end-of-image marker)")
    header = read_header(data, name)
    if header.width * header.height > max_pixels:
        raise ImageError(
            f"{name}: {header.width}x{header.height} pixels exceeds "
            f"data.preprocess.max_pixels={max_pixels}: not used"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    if header.alpha:
        image = _on_black(cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED), colour)
    else:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise ImageError(f"{name}: OpenCV could not decode it (corrupt or unsupported)")
    return Decoded(image, header.notes())


def read_header(data: bytes, name: str) -> Header:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Header(
                width=image.width,
                height=image.height,
                format=image.format or "image",
                frames=getattr(image, "n_frames", 1),
                sixteen_bit=image.mode.startswith("I;16")
                or image.mode == "I"
                or any(";16" in str(tile.args) for tile in image.tile),
                alpha=image.mode in ALPHA_MODES
                or (image.mode == "P" and "transparency" in image.info and image.format != "GIF"),
                cmyk=image.mode == "CMYK",
            )
    except Image.DecompressionBombError as error:
        raise ImageError(f"{name}: {error}; far above data.preprocess.max_pixels") from error
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"{name}: not an image ({error})") from error


def _on_black(image: np.ndarray | None, colour: bool) -> np.ndarray | None:
    """An image read with IMREAD_UNCHANGED (any depth, with alpha) as 8-bit on black."""
    if image is None:
        return None
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:].astype(np.float32) / 255
        image = (image[:, :, :3] * alpha).round().astype(np.uint8)
    elif image.ndim == 3 and image.shape[2] == 2:  # grey + alpha
        alpha = image[:, :, 1].astype(np.float32) / 255
        image = (image[:, :, 0] * alpha).round().astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if colour else image
    return image if colour else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
