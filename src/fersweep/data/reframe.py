"""The framing check: test images framed as other pictures frame faces.

Two directions. `Reframing` (reframe=default): each face image (a tight crop, as the data set
holds them) is put on a larger canvas so that it takes a random 30-100% of the canvas's height,
at a random place, on a textured background, often in colour, as people photograph faces.
`Tightening` (reframe=tighter): the face cut tighter, as other face collections are (eyebrows to
chin, no hair or ears): a square 70-90% of the image's side, a little off-centre, resized back.
The randomness is seeded by the configured seed and the image's name, so the same image is
reframed the same way in every run, arm and model. `Framings` (reframe=both): both directions
in one run, each scored and reported under its own name.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from fersweep.data.decode import decode_bytes
from fersweep.errors import ConfigError, ImageError

JPEG_QUALITY = 92

# A few skin tones (BGR multipliers) for tinting grey faces when a reframed picture is in colour.
SKIN_TONES = np.array(
    [[0.74, 0.84, 1.0], [0.62, 0.76, 0.95], [0.55, 0.68, 0.86], [0.45, 0.55, 0.70]]
)


class Framing:
    """What both directions share: a picture per image name, the same for a name and seed,
    saved as JPEG as a camera or phone would save it."""

    seed: int

    def rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    def apply(self, image: np.ndarray, name: str) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        """One sentence for reports: what was done to each test image."""
        raise NotImplementedError

    def named(self) -> dict[str, Framing]:
        """The directions a run is scored on, by the name its predictions are recorded under
        (`{split}_{name}`): one direction is `reframed`."""
        return {REFRAMED: self}

    def reframed_file(self, data: bytes, name: str, max_pixels: int) -> bytes:
        """An image file's bytes reframed: decoded in colour, reframed, saved as JPEG."""
        return self.encoded(decode_bytes(data, name, max_pixels, colour=True).image, name)

    def encoded(self, image: np.ndarray, name: str) -> bytes:
        """The reframed picture as a JPEG file's bytes."""
        ok, data = cv2.imencode(
            ".jpg", self.apply(image, name), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            raise ImageError(f"{name}: OpenCV could not encode its reframed picture")
        return data.tobytes()


REFRAMED = "reframed"  # the name of a run's reframed predictions with one direction


@dataclass(frozen=True)
class Framings:
    """Several directions in one run (reframe=both): each direction's images scored and
    recorded under its name, so one training shows a model on pictures framed both ways."""

    directions: dict[str, Framing]

    def __post_init__(self) -> None:
        if not self.directions:
            raise ConfigError("reframe.directions is empty: name one framing or more")
        for name in self.directions:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ConfigError(
                    f"reframe.directions.{name}: name a direction in lower-case letters, digits "
                    "and _ (it names the run's recorded predictions)"
                )

    def named(self) -> dict[str, Framing]:
        return dict(self.directions)

    def describe(self) -> str:
        return "; ".join(f"{name}: {f.describe()}" for name, f in self.directions.items())


@dataclass(frozen=True)
class Tightening(Framing):
    """The face cut tighter: a square `crop_fraction` (low, high) of the image's shorter side,
    its centre moved off the image's by up to `shift` of that side each way (kept inside the
    image), resized back to the image's size."""

    seed: int
    crop_fraction: tuple[float, float]
    shift: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_fraction", tuple(self.crop_fraction))
        check_share_range("crop_fraction", self.crop_fraction)
        if not 0 <= self.shift <= 0.5:
            raise ConfigError(f"reframe.shift={self.shift}: use 0 to 0.5 (a fraction of the side)")

    def describe(self) -> str:
        low, high = self.crop_fraction
        return (
            f"Each test image cut tighter: a square {low:.0%}–{high:.0%} of its shorter side, "
            f"off-centre by up to {self.shift:.0%} of it, resized back"
        )

    def apply(self, image: np.ndarray, name: str) -> np.ndarray:
        rng = self.rng(name)
        height, width = image.shape[:2]
        side = max(1, round(min(height, width) * rng.uniform(*self.crop_fraction)))
        reach = self.shift * min(height, width)
        centre_x = width / 2 + rng.uniform(-reach, reach)
        centre_y = height / 2 + rng.uniform(-reach, reach)
        left = int(np.clip(round(centre_x - side / 2), 0, width - side))
        top = int(np.clip(round(centre_y - side / 2), 0, height - side))
        crop = image[top : top + side, left : left + side]
        return cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Reframing(Framing):
    """How test images are reframed: the face's share of the canvas's height (`face_fraction`,
    low and high), the canvas's width/height ratio range (`aspect`), the share of pictures made
    colour (`colour_fraction`: grey faces tinted, backgrounds coloured), and the seed."""

    seed: int
    face_fraction: tuple[float, float]
    aspect: tuple[float, float]
    colour_fraction: float

    def __post_init__(self) -> None:
        # Hydra passes lists as ListConfig: plain tuples keep the settings hashable and JSON.
        object.__setattr__(self, "face_fraction", tuple(self.face_fraction))
        object.__setattr__(self, "aspect", tuple(self.aspect))
        check_share_range("face_fraction", self.face_fraction)
        if not 0 < self.aspect[0] <= self.aspect[1]:
            raise ConfigError(f"reframe.aspect={list(self.aspect)}: need 0 < low <= high")
        if not 0 <= self.colour_fraction <= 1:
            raise ConfigError(f"reframe.colour_fraction={self.colour_fraction}: use 0 to 1")

    def describe(self) -> str:
        low, high = self.face_fraction
        return (
            f"Each test image put on a larger canvas (face {low:.0%}–{high:.0%} of its height, "
            "anywhere in it, on a textured background, "
            f"{self.colour_fraction:.0%} of them in colour)"
        )

    def apply(self, image: np.ndarray, name: str) -> np.ndarray:
        """`image` (grey or BGR uint8) placed into a larger BGR picture; the same for a name."""
        return self.place(image, name)[0]

    def place(self, image: np.ndarray, name: str) -> tuple[np.ndarray, tuple[int, int]]:
        """The reframed picture, and where the image's top-left corner went in it (x, y)."""
        rng = self.rng(name)
        face = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        colour = rng.random() < self.colour_fraction
        if colour and looks_grey(face):
            face = np.clip(face * SKIN_TONES[rng.integers(len(SKIN_TONES))], 0, 255)
            face = face.astype(np.uint8)
        height, width = face.shape[:2]
        canvas_h = max(height, round(height / rng.uniform(*self.face_fraction)))
        canvas_w = max(width, round(canvas_h * rng.uniform(*self.aspect)))
        canvas = background(canvas_h, canvas_w, colour, rng)
        top = rng.integers(0, canvas_h - height + 1)
        left = rng.integers(0, canvas_w - width + 1)
        canvas[top : top + height, left : left + width] = face
        return canvas, (int(left), int(top))


def check_share_range(key: str, shares: tuple[float, float]) -> None:
    low, high = shares
    if not 0 < low <= high <= 1:
        raise ConfigError(f"reframe.{key}={list(shares)}: need 0 < low <= high <= 1")


def looks_grey(image: np.ndarray) -> bool:
    """Whether a BGR picture is grey in all but name (its blue and red channels agree)."""
    return int(np.abs(image[:, :, 0].astype(np.int16) - image[:, :, 2]).max()) < 10


def background(height: int, width: int, colour: bool, rng: np.random.Generator) -> np.ndarray:
    """A textured background: smooth blotches, stripes or fine noise over a gradient."""
    # A column of row numbers and a row of column numbers broadcast against each other, and
    # the full-size steps done in place: each pixel gets the same operations in the same types
    # as from two full grids (the pictures are equal to the bit) at a fraction of the work.
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    direction = rng.uniform(0, 2 * np.pi)
    gradient = np.cos(direction) * cols / width + np.sin(direction) * rows / height
    gradient *= 60
    kind = rng.integers(3)
    if kind == 0:  # blotches: blurred coarse noise
        coarse = rng.normal(0, 1, (max(2, height // 24), max(2, width // 24))).astype(np.float32)
        texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) * 45
    elif kind == 1:  # stripes, as wallpaper or blinds
        period, angle = rng.uniform(6, 40), rng.uniform(0, np.pi)
        texture = np.cos(angle) * cols + np.sin(angle) * rows  # the phase, then its sine
        texture *= 2
        texture *= np.pi
        texture /= period
        texture = np.sin(texture, out=texture)
        texture *= 40
    else:  # fine noise, as foliage or fabric
        texture = cv2.GaussianBlur(
            rng.normal(0, 50, (height, width)).astype(np.float32), (0, 0), 1.2
        )
    grey = gradient
    grey += rng.uniform(60, 190)  # a sum's order of two terms changes no bit
    grey += texture
    if not colour:
        grey = np.clip(grey, 0, 255, out=grey)
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)
    tint = rng.uniform(0.5, 1.3, size=3).astype(np.float32)
    tinted = grey[:, :, None] * tint
    return np.clip(tinted, 0, 255, out=tinted).astype(np.uint8)
