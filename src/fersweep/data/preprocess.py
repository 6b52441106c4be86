"""Turn an image file into the fixed-size uint8 array the models see: the one preprocessing path,
shared by training, evaluation and the logged classifier."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fersweep.data.decode import Decoded, decode_bytes
from fersweep.data.face import Box, Face, FaceStep, HaarCascade
from fersweep.errors import ConfigError, ImageError

FIT_MODES = ("pad", "crop")
# Bump when the preprocessing code changes, so old caches are not reused.
PREPROCESS_VERSION = 5
# What the face step did to an image (the data report counts these).
WHOLE, FACE = "whole picture (no face step)", "face"
NO_FACE, SMALL_FACE = "no face found: whole picture kept", "face too small: whole picture kept"
FACE_STEPS = {FACE: "face_found", NO_FACE: "no_face_found", SMALL_FACE: "face_too_small"}


@dataclass(frozen=True)
class Prepared:
    """One picture or one face in it, ready for the network (`array`), or why it is not."""

    array: np.ndarray | None  # size x size x channels uint8; None when `error` says why not
    box: Box  # where it was cut from (the whole picture when no face was used)
    outcome: str
    angle: float = 0.0
    notes: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Preprocessor:
    """Decode, optionally cut out the face (`face`, a FaceStep), make grey or colour, and fit
    into `size`x`size` by black padding or centre crop.

    `max_pixels` refuses images whose header announces more pixels, before decoding them;
    `min_side` refuses images too small to hold a face (e.g. 1x1 placeholders). `stretch`
    spreads each fitted picture's intensities so its 1st and 99th percentiles span 0-255: a
    face photographed darker or in a tinted light then reaches the network as the same face.
    """

    channels: int
    size: int
    fit: str
    max_pixels: int
    min_side: int
    face: FaceStep | None
    stretch: bool = False  # models logged before this setting existed did not stretch

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

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Preprocessor:
        """Rebuild from `settings()` (as a logged classifier stores it). Models logged by
        fersweep 0.2 stored plain fields with a `face_crop` flag: their crop is served by the
        face step with the tight box they were trained on (margin 1)."""
        if "_target_" in settings:
            from hydra.utils import instantiate

            return instantiate(dict(settings), _convert_="all")
        old = dict(settings)
        face = None
        if old.pop("face_crop", False):
            detector = HaarCascade(
                "haarcascade_frontalface_default.xml",
                old.get("face_detect_side", 128),
                1.1,
                5,
                None,
            )
            face = FaceStep(detector, margin=1.0, min_size=1, max_faces=10)
        old.pop("face_detect_side", None)
        return cls(**old, face=face)

    def settings(self) -> dict[str, Any]:
        """The Hydra config that rebuilds this preprocessor (`_target_`s and values)."""
        return as_config(self)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    # --- labelled images: one array each ------------------------------------------------------

    def load(self, path: Path) -> Prepared:
        """The preprocessed image in a file; ImageError if it is unusable."""
        return self.prepare(self.decode(read_file(path), str(path)), str(path))

    def load_bytes(self, data: bytes, name: str = "<bytes>") -> Prepared:
        return self.prepare(self.decode(data, name), name)

    def prepare(self, decoded: Decoded, name: str = "<image>") -> Prepared:
        """The largest face big enough to classify; the whole picture when there is none, as
        each training image holds one face even where the detector misses it."""
        with opencv_failures(name):
            return self._prepare(decoded, name)

    def _prepare(self, decoded: Decoded, name: str) -> Prepared:
        image = self._to_channels(decoded.image)
        whole = whole_box(image)
        if self.face is None:
            return self._finish(image, whole, WHOLE, decoded.notes)
        faces = self.face.find(grey_of(image))
        usable = [face for face in faces if not face.too_small]
        if usable:
            return self._cut(image, usable[0], decoded.notes, name)
        return self._finish(image, whole, SMALL_FACE if faces else NO_FACE, decoded.notes)

    # --- pictures of people: every face --------------------------------------------------------

    def faces(self, decoded: Decoded, name: str, whole_image: bool) -> list[Prepared]:
        """Every face found (largest first), each ready or saying why it is not. Without a face
        step, the whole picture; with `whole_image`, the whole picture too when no face found
        can be classified (as `prepare` does for labelled images)."""
        with opencv_failures(name):
            return self._faces(decoded, name, whole_image)

    def _faces(self, decoded: Decoded, name: str, whole_image: bool) -> list[Prepared]:
        image = self._to_channels(decoded.image)
        if self.face is None:
            return [self._finish(image, whole_box(image), WHOLE, decoded.notes)]
        found = self.face.find(grey_of(image))
        faces = [self._cut(image, face, decoded.notes, name) for face in found]
        if whole_image and all(face.array is None for face in faces):
            outcome = SMALL_FACE if found else NO_FACE
            faces.append(self._finish(image, whole_box(image), outcome, decoded.notes))
        if not faces:
            raise ImageError(
                f"{name}: no face found (ask for the whole image to classify it anyway)"
            )
        return faces

    # --- the steps ------------------------------------------------------------------------------

    def decode(self, data: bytes, name: str) -> Decoded:
        decoded = decode_bytes(data, name, self.max_pixels, colour=self.channels == 3)
        height, width = decoded.image.shape[:2]
        if min(height, width) < self.min_side:
            raise ImageError(
                f"{name}: {width}x{height} pixels is smaller than "
                f"data.preprocess.min_side={self.min_side}: not used"
            )
        return decoded

    def _cut(self, image: np.ndarray, face: Face, notes: tuple[str, ...], name: str) -> Prepared:
        box = face.box
        if face.too_small:
            message = (
                f"{name}: face {box.width}x{box.height} px at ({box.x}, {box.y}) is smaller "
                f"than data.preprocess.face.min_size={self.face.min_size}: not classified"
            )
            return Prepared(None, box, "face too small", face.angle, notes, message)
        return self._finish(self.face.crop(image, face), box, FACE, notes, face.angle)

    def _finish(
        self,
        image: np.ndarray,
        box: Box,
        outcome: str,
        notes: tuple[str, ...],
        angle: float = 0.0,
    ) -> Prepared:
        array = fit_square(image, self.size, self.fit).reshape(self.shape)
        if self.stretch:
            array = stretched(array)
        return Prepared(array, box, outcome, angle, notes)

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


@contextmanager
def opencv_failures(name: str) -> Iterator[None]:
    """An OpenCV failure inside one image is that image's error, never the data set's."""
    try:
        yield
    except cv2.error as error:
        reason = str(error).strip().splitlines()[-1]
        raise ImageError(f"{name}: OpenCV failed while preprocessing it ({reason})") from error


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror})") from error


def grey_of(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def whole_box(image: np.ndarray) -> Box:
    return Box(0, 0, image.shape[1], image.shape[0])


def as_config(value: Any) -> Any:
    """A dataclass as the Hydra config that rebuilds it (`_target_` and its fields, nested)."""
    if is_dataclass(value) and not isinstance(value, type):
        target = f"{type(value).__module__}.{type(value).__qualname__}"
        return {
            "_target_": target,
            **{f.name: as_config(getattr(value, f.name)) for f in fields(value)},
        }
    return value


def stretched(image: np.ndarray, low: float = 1, high: float = 99) -> np.ndarray:
    """`image` with its `low` and `high` percentiles moved to 0 and 255 (clipped beyond); a
    flat picture is left as it is."""
    bottom, top = np.percentile(image, [low, high])
    if top - bottom < 1:
        return image
    scaled = (image.astype(np.float32) - bottom) * (255 / (top - bottom))
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


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
