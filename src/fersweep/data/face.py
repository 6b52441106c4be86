"""The face step: find the faces in a picture and cut out each one the way the training images are
framed, so a model sees a face the same way at training and at prediction.

`conf/face/*.yaml` builds it (`data.preprocess.face`); the detector and the eye leveller are
`_target_`s, so a better detector can be configured in their place.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fersweep.errors import ConfigError

CASCADE_WINDOW = 24  # the frontal-face cascades' own window, in pixels


Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    """A face's box in the picture's own pixels, and its eyes' centres (the picture's left one
    first) where the detector gives them."""

    x: int
    y: int
    width: int
    height: int
    eyes: tuple[Point, Point] | None = None

    @property
    def xywh(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.width, self.height

    @property
    def side(self) -> int:
        return max(self.width, self.height)

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def moved(self, dx: int, dy: int) -> Box:
        eyes = None if self.eyes is None else tuple((x + dx, y + dy) for x, y in self.eyes)
        return Box(self.x + dx, self.y + dy, self.width, self.height, eyes)

    def overlap(self, other: Box) -> float:
        """Intersection over union of the two boxes."""
        across = max(0, min(self.x + self.width, other.x + other.width) - max(self.x, other.x))
        down = max(0, min(self.y + self.height, other.y + other.height) - max(self.y, other.y))
        both = across * down
        return both / (self.width * self.height + other.width * other.height - both)


@dataclass(frozen=True)
class Face:
    """A face found: its box, the angle that levels its eyes (degrees, 0 when not levelled),
    and whether it is too small to classify (`min_size`)."""

    box: Box
    angle: float = 0.0
    too_small: bool = False


class FaceDetector(Protocol):
    def detect(self, grey: np.ndarray) -> list[Box]:
        """Every face's box in `grey` (H x W uint8), largest first."""
        ...


_thread_state = threading.local()


def cascade(name: str) -> cv2.CascadeClassifier:
    """One of OpenCV's bundled Haar cascades, one instance per thread: a CascadeClassifier is
    not thread-safe, and sharing one between decode threads corrupts its scale data."""
    loaded = _thread_state.__dict__.setdefault("cascades", {})
    if name not in loaded:
        path = Path(cv2.data.haarcascades) / name
        classifier = cv2.CascadeClassifier(str(path))
        if classifier.empty():
            raise ConfigError(f"data.preprocess.face: no OpenCV Haar cascade {name} at {path}")
        loaded[name] = classifier
    return loaded[name]


def _downscaled(grey: np.ndarray, longest: int) -> tuple[np.ndarray, float]:
    scale = min(1.0, longest / max(grey.shape))
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return grey, scale


def content_side(side: int, pad: float) -> int:
    """The picture's longer side on a copy `side` pixels with a border `pad` times it."""
    return round(side / (1 + 2 * pad))


def check_pad(pad: float) -> None:
    if not 0 <= pad <= 1:
        raise ConfigError(
            f"data.preprocess.face.detector.pad={pad}: use 0 to 1 (a fraction of the side)"
        )


@dataclass(frozen=True)
class DetectionCopy:
    """The copy a detector looks at: the picture at most `side` pixels on its longer side,
    border included, the border a black `pad` times the copy's longer side all round. Boxes
    found on it map back to the picture's own pixels with `box`."""

    image: np.ndarray
    scale: float
    border: int

    @classmethod
    def of(cls, grey: np.ndarray, side: int, pad: float) -> DetectionCopy:
        small, scale = _downscaled(grey, content_side(side, pad))
        border = round(pad * max(small.shape))
        if border:
            small = cv2.copyMakeBorder(small, *[border] * 4, cv2.BORDER_CONSTANT, value=0)
        return cls(small, scale, border)

    def point(self, x: float, y: float) -> Point:
        return (x - self.border) / self.scale, (y - self.border) / self.scale

    def box(
        self, x: float, y: float, w: float, h: float, eyes: Sequence[Point] | None = None
    ) -> Box:
        left, top = self.point(x, y)
        pair = None if eyes is None else tuple(self.point(float(ex), float(ey)) for ex, ey in eyes)
        return Box(round(left), round(top), round(w / self.scale), round(h / self.scale), pair)


@dataclass(frozen=True)
class HaarCascade:
    """OpenCV's bundled Haar cascade. Faces are looked for on a copy at most `detect_side`
    pixels on its longer side (the cascade's cost grows with the pixel count), and the boxes
    are mapped back. Each copy has a black border `pad` times its longer side all round: a
    face filling the picture, as in every training image, is then boxed as the same face with
    room around it in a larger photo (without it the cascade's box shrinks at the picture's
    edge, and a model trained on those boxes sees a photo's face framed differently). So the
    smallest face found is about 24 (1 + 2 `pad`) / `detect_side` of the picture; where none is
    found, a second look on a copy up to `retry_side` finds smaller ones."""

    cascade: str
    detect_side: int
    scale_factor: float
    min_neighbors: int
    retry_side: int | None
    pad: float = 0.0  # models logged before this setting existed looked without a border

    def __post_init__(self) -> None:
        where = "data.preprocess.face.detector"
        if self.detect_side < CASCADE_WINDOW:
            raise ConfigError(f"{where}.detect_side={self.detect_side}: must be at least 24")
        if self.scale_factor <= 1:
            raise ConfigError(f"{where}.scale_factor={self.scale_factor}: must be above 1")
        check_pad(self.pad)
        if self.min_neighbors < 0:
            raise ConfigError(f"{where}.min_neighbors={self.min_neighbors}: must be 0 or more")
        if self.retry_side is not None and self.retry_side <= self.detect_side:
            raise ConfigError(
                f"{where}.retry_side={self.retry_side}: must be above detect_side "
                f"({self.detect_side}), or null for no second look"
            )
        cascade(self.cascade)  # a missing cascade file fails here, before any image is read

    def detect(self, grey: np.ndarray) -> list[Box]:
        boxes = self._detect(grey, self.detect_side)
        bigger = max(grey.shape) > content_side(self.detect_side, self.pad)
        if not boxes and self.retry_side and bigger:
            boxes = self._detect(grey, self.retry_side)
        return boxes

    def _detect(self, grey: np.ndarray, side: int) -> list[Box]:
        copy = DetectionCopy.of(grey, side, self.pad)
        found = cascade(self.cascade).detectMultiScale(
            copy.image, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors
        )
        return largest_first([copy.box(*box) for box in found])


def largest_first(boxes: list[Box]) -> list[Box]:
    return sorted(boxes, key=lambda box: box.width * box.height, reverse=True)


@dataclass(frozen=True)
class EyeLeveller:
    """The angle that makes a face's eyes level, from OpenCV's eye cascade run on the face's
    upper half; 0 (leave it) unless two eyes are found, one each side of the centre, and the
    angle is at most `max_angle` degrees (a larger one is more likely a wrong detection)."""

    cascade: str
    max_angle: float
    detect_side: int

    def __post_init__(self) -> None:
        check_max_angle(self.max_angle)
        cascade(self.cascade)

    def angle(self, grey: np.ndarray, box: Box) -> float:
        top, left = max(box.y, 0), max(box.x, 0)
        upper = grey[top : box.y + box.height * 11 // 20, left : box.x + box.width]
        if upper.size == 0:
            return 0.0
        small, scale = _downscaled(upper, self.detect_side)
        eyes = cascade(self.cascade).detectMultiScale(small, scaleFactor=1.1, minNeighbors=5)
        middle = small.shape[1] / 2
        centres = sorted(((x + w / 2, y + h / 2) for x, y, w, h in eyes), key=lambda c: c[0])
        left_eyes = [c for c in centres if c[0] < middle]
        right_eyes = [c for c in centres if c[0] >= middle]
        if not left_eyes or not right_eyes:
            return 0.0
        angle = eye_angle(left_eyes[-1], right_eyes[0])
        return angle if abs(angle) <= self.max_angle else 0.0


@dataclass(frozen=True)
class LandmarkLeveller:
    """The angle that makes a face's eyes level, from the eye centres its detector gave
    (face=mtcnn's landmarks); 0 without them or beyond `max_angle` degrees."""

    max_angle: float

    def __post_init__(self) -> None:
        check_max_angle(self.max_angle)

    def angle(self, grey: np.ndarray, box: Box) -> float:
        if box.eyes is None:
            return 0.0
        angle = eye_angle(*box.eyes)
        return angle if abs(angle) <= self.max_angle else 0.0


def check_max_angle(max_angle: float) -> None:
    if not 0 < max_angle <= 90:
        raise ConfigError(f"data.preprocess.face.level.max_angle={max_angle}: use (0, 90] degrees")


def eye_angle(left: Point, right: Point) -> float:
    """Degrees to turn the picture (counter-clockwise as seen) so the two eyes are level."""
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


@dataclass(frozen=True)
class FaceStep:
    """Detect, keep at most `max_faces` (largest first), and cut each out as a square
    `margin` times the box's side around the box's centre, turned by the eyes' angle when a
    leveller is set; what lies outside the picture is black, as the padding elsewhere.

    `margin` 1.2 reproduces the data set's framing: on its images the Haar box's side is a
    median 1.196 of the image's side, centred. Faces whose box
    side is below `min_size` pixels are found but flagged too small to classify.
    """

    detector: FaceDetector
    margin: float
    min_size: int
    max_faces: int
    level: EyeLeveller | LandmarkLeveller | None = None

    def __post_init__(self) -> None:
        if not 0.5 <= self.margin <= 4:
            raise ConfigError(f"data.preprocess.face.margin={self.margin}: use 0.5 to 4")
        if self.min_size < 1:
            raise ConfigError(f"data.preprocess.face.min_size={self.min_size}: must be positive")
        if self.max_faces < 1:
            raise ConfigError(f"data.preprocess.face.max_faces={self.max_faces}: must be positive")

    def find(self, grey: np.ndarray) -> list[Face]:
        faces = []
        for box in self.detector.detect(grey)[: self.max_faces]:
            angle = self.level.angle(grey, box) if self.level else 0.0
            faces.append(Face(box, angle, too_small=box.side < self.min_size))
        return faces

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The square cut-out of `face` from `image` (grey or colour), turned by its angle."""
        side = max(1, round(self.margin * face.box.side))
        centre_x, centre_y = face.box.centre
        turn = cv2.getRotationMatrix2D((centre_x, centre_y), face.angle, 1.0)
        turn[:, 2] += (side / 2 - centre_x, side / 2 - centre_y)  # the centre to the middle
        return cv2.warpAffine(
            image,
            turn,
            (side, side),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
