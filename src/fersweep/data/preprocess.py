"""Turn an image file into the fixed-size uint8 array the models see: the one preprocessing path."""

from __future__ import annotations

import io
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fersweep.errors import ConfigError, ImageError

FIT_MODES = ("pad", "crop")
# Bump when the preprocessing code changes, so old caches are not reused.
PREPROCESS_VERSION = 3
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


@dataclass(frozen=True)
class Preprocessor:
    """Grey or colour, `size`x`size`, fitted by black padding or centre crop, optional face crop.

    `max_pixels` refuses images whose header announces more pixels, before decoding them;
    `min_side` refuses images too small to hold a face (e.g. 1x1 placeholders). With
    `face_crop`, faces are looked for on a copy whose longer side is at most `face_detect_side`
    pixels (a Haar cascade's cost grows with the pixel count) and the box is mapped back.
    """

    channels: int
    size: int
    fit: str
    face_crop: bool
    max_pixels: int
    min_side: int
    face_detect_side: int = 128  # models logged before fersweep 0.2 carry no such setting

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(
                f"data.preprocess.channels={self.channels}: use 1 (grey) or 3 (colour)"
            )
        if self.size < 8:
            raise ConfigError(f"data.preprocess.size={self.size}: must be at least 8 pixels")
        if self.fit not in FIT_MODES:
            raise ConfigError(f"data.preprocess.fit={self.fit!r}: use one of {FIT_MODES}")
        if self.max_pixels <= 0:
            raise ConfigError(f"data.preprocess.max_pixels={self.max_pixels}: must be positive")
        if self.min_side <= 0:
            raise ConfigError(f"data.preprocess.min_side={self.min_side}: must be positive")
        if self.face_detect_side < 24:  # the cascade's own window is 24x24
            raise ConfigError(
                f"data.preprocess.face_detect_side={self.face_detect_side}: must be at least 24"
            )

    def settings(self) -> dict:
        return {**asdict(self), "version": PREPROCESS_VERSION}

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    def load(self, path: Path) -> np.ndarray:
        """The preprocessed HxWxC uint8 array for one image file; ImageError if it is unusable."""
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ImageError(f"{path}: cannot read ({error.strerror})") from error
        return self.load_bytes(data, str(path))

    def load_bytes(self, data: bytes, name: str = "<bytes>") -> np.ndarray:
        image = decode_bytes(data, name, self.max_pixels, colour=self.channels == 3)
        if min(image.shape[:2]) < self.min_side:
            raise ImageError(
                f"{name}: {image.shape[1]}x{image.shape[0]} pixels is smaller than "
                f"data.preprocess.min_side={self.min_side}"
            )
        try:
            return self.apply(image)
        except cv2.error as error:  # one image's failure, never the whole data set's
            reason = str(error).strip().splitlines()[-1]
            raise ImageError(f"{name}: OpenCV failed while preprocessing it ({reason})") from error

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Preprocess a decoded array of any size, grey (HxW or HxWx1) or colour (HxWx3 BGR)."""
        image = self._to_channels(image)
        if self.face_crop:
            image = self._crop_largest_face(image)
        fitted = fit_square(image, self.size, self.fit)
        return fitted.reshape(self.shape)

    def _to_channels(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8:
            raise ImageError(f"expected 8-bit pixels, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if image.ndim == 2:
            return image if self.channels == 1 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.ndim == 3 and image.shape[2] == 3:
            return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if self.channels == 1 else image
        raise ImageError(f"unsupported image shape {image.shape}")

    def face_box(self, grey: np.ndarray) -> np.ndarray | None:
        """The largest face's box (x, y, width, height) in `grey`'s own pixels, looked for on a
        copy at most `face_detect_side` on its longer side; None when there is no face."""
        scale = min(1.0, self.face_detect_side / max(grey.shape))
        if scale < 1:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        faces = face_detector().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5)
        if len(faces) == 0:
            return None
        largest = max(faces, key=lambda found: found[2] * found[3])
        return np.round(np.asarray(largest) / scale).astype(int)

    def _crop_largest_face(self, image: np.ndarray) -> np.ndarray:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        box = self.face_box(grey)
        if box is None:
            return image  # no face found: keep the whole picture rather than drop the image
        x, y, width, height = box
        return image[max(y, 0) : y + height, max(x, 0) : x + width]


_thread_state = threading.local()


def face_detector() -> cv2.CascadeClassifier:
    """OpenCV's bundled frontal-face Haar cascade, one per thread: a CascadeClassifier is not
    thread-safe, and sharing one between decode threads corrupts its scale data."""
    detector = getattr(_thread_state, "face_detector", None)
    if detector is None:
        cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        detector = cv2.CascadeClassifier(str(cascade))
        if detector.empty():
            raise ConfigError(
                f"data.preprocess.face_crop: OpenCV's Haar cascade {cascade} is missing"
            )
        _thread_state.face_detector = detector
    return detector


def fit_square(image: np.ndarray, size: int, fit: str) -> np.ndarray:
    """Scale to `size`x`size` keeping the aspect ratio: `pad` letterboxes in black, `crop` centres."""
    height, width = image.shape[:2]
    scale = size / max(height, width) if fit == "pad" else size / min(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    if fit == "crop":
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return resized[top : top + size, left : left + size]
    canvas = np.zeros((size, size, *image.shape[2:]), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def decode_bytes(data: bytes, name: str, max_pixels: int, colour: bool) -> np.ndarray:
    """Decode an encoded image, refusing empty files, non-images and over-large dimensions."""
    if not data:
        raise ImageError(f"{name}: empty file")
    if data.startswith(JPEG_START) and not data.rstrip(b"\x00").endswith(JPEG_END):
        # OpenCV decodes a cut-off JPEG into a half-grey picture with only a warning.
        raise ImageError(f"{name}: truncated JPEG (no end-of-image marker)")
    width, height = _announced_size(data, name)
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: {width}x{height} pixels exceeds data.preprocess.max_pixels={max_pixels}"
        )
    flags = cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None or image.size == 0:
        raise ImageError(f"{name}: OpenCV could not decode it (corrupt or unsupported)")
    return image


def _announced_size(data: bytes, name: str) -> tuple[int, int]:
    """Width and height from the image header alone (Pillow reads headers without decoding)."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            return header.size
    except Image.DecompressionBombError as error:
        raise ImageError(f"{name}: {error}; far above data.preprocess.max_pixels") from error
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"{name}: not an image ({error})") from error
