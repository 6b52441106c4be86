"""The framing check's pictures made by the fersweep on sys.path: a digest of 60 backgrounds
(random sizes, grey and colour, every kind) and 40 reframed pictures, and the time to reframe
real test images into JPEG files (ms an image, one thread). Run it with each commit's src first
on PYTHONPATH: equal digests mean equal pictures, to the bit."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

import fersweep
from fersweep.data.reframe import Reframing, background


def digest() -> str:
    out = hashlib.sha256()
    for i in range(60):
        rng = np.random.default_rng([7, i])
        height, width = int(rng.integers(20, 700)), int(rng.integers(20, 900))
        out.update(background(height, width, bool(i % 2), np.random.default_rng([42, i])).tobytes())
    framing = Reframing(seed=42, face_fraction=(0.3, 1.0), aspect=(0.75, 1.5), colour_fraction=0.5)
    face = (np.arange(250 * 250) % 251).reshape(250, 250).astype(np.uint8)
    for i in range(40):
        out.update(framing.apply(face, f"Person_{i:04d}.jpg").tobytes())
    return out.hexdigest()


def ms_an_image(data: Path, count: int = 300) -> float:
    framing = Reframing(seed=42, face_fraction=(0.3, 1.0), aspect=(0.75, 1.5), colour_fraction=0.5)
    files = sorted((data / "images").iterdir())[::37][:count]
    pictures = [(f.name, f.read_bytes()) for f in files]
    start = time.perf_counter()
    for name, content in pictures:
        framing.reframed_file(content, name, 40_000_000)
    return (time.perf_counter() - start) / len(pictures) * 1000


if __name__ == "__main__":
    print(f"fersweep from {Path(fersweep.__file__).parent}")
    print(f"digest {digest()}")
    print(f"reframed into a JPEG file: {ms_an_image(Path(sys.argv[1])):.1f} ms an image")
