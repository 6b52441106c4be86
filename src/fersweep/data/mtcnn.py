"""face=mtcnn: the MTCNN face detector of facenet-pytorch (Zhang et al., 2016; the detector the
`fer` package uses), whose weights ship inside its wheel. Its five landmarks give the eye line
for levelling (face.LandmarkLeveller).

facenet-pytorch 2.6.0 pins torch<2.3, but its MTCNN runs with fersweep's torch: `make install`
installs it without its dependencies (`pip install --no-deps facenet-pytorch==2.6.0`).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fersweep.data.face import Box, DetectionCopy, check_pad, largest_first
from fersweep.errors import ConfigError

REQUIREMENT = "facenet-pytorch==2.6.0"
_thread_state = threading.local()
_first: dict[tuple, object] = {}  # the first network of each setting, copied for every thread
_first_lock = threading.Lock()


def network(min_face_size: int, thresholds: tuple[float, float, float]):
    """One MTCNN per thread and setting: the decode threads run it side by side. Each is a copy
    of one made without touching torch's global random state (MTCNN initialises its layers at
    random before loading their weights): a run then trains the same whether its images are
    preprocessed now or read from the cache, and whichever run of a process it is."""
    loaded = _thread_state.__dict__.setdefault("networks", {})
    key = (min_face_size, thresholds)
    if key not in loaded:
        with _first_lock:
            if key not in _first:
                with torch.random.fork_rng(devices=[]):
                    _first[key] = _make(min_face_size, thresholds)
            loaded[key] = copy.deepcopy(_first[key])
    return loaded[key]


def _make(min_face_size: int, thresholds: tuple[float, float, float]):
    try:
        from facenet_pytorch import MTCNN
    except ImportError as error:
        raise ConfigError(
            "face=mtcnn needs facenet-pytorch: run `make install`, or "
            f"`pip install --no-deps {REQUIREMENT}` ({error})"
        ) from None
    detector = MTCNN(
        keep_all=True, min_face_size=min_face_size, thresholds=list(thresholds), device="cpu"
    )
    for parent in list(detector.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, ChannelsLastMaxPool(child))
    return detector


class ChannelsLastMaxPool(nn.Module):
    """An MTCNN max-pool run on a channels-last copy of its input. torch's CPU max-pool on the
    NCHW maps MTCNN's second and third stages make is 7-17x slower than on channels-last ones
    for their shapes (a quarter of a detection's time: results/2026-12-07-exact-speedups), and a maximum is the same whatever the
    layout: the detections are equal to the bit (tests/test_mtcnn.py). The output keeps the
    input's layout, so each later convolution runs as it did."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous(memory_format=torch.channels_last):
            return self.pool(x)
        return self.pool(x.contiguous(memory_format=torch.channels_last)).contiguous()


@dataclass(frozen=True)
class Mtcnn:
    """MTCNN on a copy at most `detect_side` pixels on its longer side with a black border of
    `pad` times that side (as face.HaarCascade, so a face filling the picture is boxed as the
    same face in a larger photo); faces below `min_face_size` pixels on the copy are not looked
    for, and those it is less than `min_probability` sure of are dropped."""

    detect_side: int
    pad: float
    min_face_size: int
    thresholds: tuple[float, float, float]
    min_probability: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        where = "data.preprocess.face.detector"
        if self.min_face_size < 12:
            raise ConfigError(f"{where}.min_face_size={self.min_face_size}: must be 12 or more")
        if self.detect_side < 2 * self.min_face_size:
            raise ConfigError(
                f"{where}.detect_side={self.detect_side}: must be at least twice "
                f"min_face_size ({self.min_face_size})"
            )
        check_pad(self.pad)
        if len(self.thresholds) != 3 or not all(0 < t < 1 for t in self.thresholds):
            raise ConfigError(
                f"{where}.thresholds={list(self.thresholds)}: three numbers in (0, 1)"
            )
        if not 0 <= self.min_probability < 1:
            raise ConfigError(f"{where}.min_probability={self.min_probability}: use 0 to 1")
        network(self.min_face_size, self.thresholds)  # not installed: fails here, before any image

    def detect(self, grey: np.ndarray) -> list[Box]:
        copy = DetectionCopy.of(grey, self.detect_side, self.pad)
        rgb = np.repeat(copy.image[:, :, None], 3, axis=2)
        boxes, probabilities, points = network(self.min_face_size, self.thresholds).detect(
            rgb, landmarks=True
        )
        if boxes is None:
            return []
        found = [
            copy.box(x0, y0, x1 - x0, y1 - y0, eyes=landmarks[:2])
            for (x0, y0, x1, y1), p, landmarks in zip(boxes, probabilities, points)
            if p >= self.min_probability
        ]
        return largest_first(found)
