"""MTCNN with facenet-pytorch's own area resampling against fersweep's grey-aware one
(fersweep.data.mtcnn.grey_aware_resample): every detection compared to the bit, and the time of
each, one torch thread, the two alternated in rounds. usage: compare.py <data root> [images]"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from facenet_pytorch.models.utils import detect_face

from fersweep.data import mtcnn
from fersweep.data.face import DetectionCopy


def pictures(root: Path, count: int) -> list[np.ndarray]:
    """Each image's detection copy, as the face step makes it, and the same image placed small
    in a larger picture (as the gate's framing check does), grey in all three channels."""
    out = []
    for file in sorted((root / "images").iterdir())[:count]:
        grey = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            continue
        for picture in (grey, cv2.copyMakeBorder(grey, *[grey.shape[0] // 2] * 4, cv2.BORDER_REFLECT)):
            copy = DetectionCopy.of(picture, 160, 0.25).image
            out.append(np.repeat(copy[:, :, None], 3, axis=2))
    return out


def detect_all(network, rgbs, resample) -> tuple[list, float]:
    detect_face.imresample = resample
    start = time.perf_counter()
    found = [network.detect(rgb, landmarks=True) for rgb in rgbs]
    return found, time.perf_counter() - start


def main() -> None:
    root, count = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    torch.set_num_threads(1)
    network = mtcnn.network(20, (0.6, 0.7, 0.7))
    shipped, ours = mtcnn.SHIPPED["imresample"], mtcnn.grey_aware_resample
    rgbs = pictures(root, count)
    times = {"shipped": [], "grey_aware": []}
    for _ in range(2):
        expected, seconds = detect_all(network, rgbs, shipped)
        times["shipped"].append(seconds)
        found, seconds = detect_all(network, rgbs, ours)
        times["grey_aware"].append(seconds)
    differ = sum(
        not all((a is None and b is None) or np.array_equal(a, b) for a, b in zip(f, e))
        for f, e in zip(found, expected)
    )
    faces = sum(f[0] is not None for f in found)
    rates = {k: round(len(rgbs) / min(v), 1) for k, v in times.items()}
    print(json.dumps({"pictures": len(rgbs), "with_faces": faces, "differ": differ,
                      "images_per_s_one_thread": rates, "seconds": times}, indent=1))


if __name__ == "__main__":
    main()
