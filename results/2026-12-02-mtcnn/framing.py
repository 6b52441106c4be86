"""How MTCNN boxes the data set's faces, to set face=mtcnn's margin as the Haar step's was set
(results/2026-11-28-face-pad): on a class-stratified sample of the legend's images, the image's
side over the box's side (the margin that reproduces the training images' framing), the box
centre's offset, how often a face is found, and seconds per image; Haar's beside it.

    .venv/bin/python results/2026-12-02-mtcnn/framing.py > results/2026-12-02-mtcnn/framing.txt
"""

import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fersweep.data.legend import read_legend

ROOT = Path("../shared/data/facial_expressions")
PER_EMOTION = 50


def sample_names() -> list[str]:
    """Up to 50 images of each emotion, drawn with a fixed seed."""
    records, _ = read_legend(ROOT / "legend.csv", ROOT / "images")
    by_emotion = defaultdict(list)
    for record in records:
        by_emotion[record.emotion].append(record.file)
    rng = np.random.default_rng(0)
    return [
        str(name)
        for files in by_emotion.values()
        for name in rng.choice(files, min(len(files), PER_EMOTION), replace=False)
    ]


def detector(option: str):
    cfg = OmegaConf.load(f"conf/face/{option}.yaml")
    if "defaults" in cfg:
        cfg = OmegaConf.merge(OmegaConf.load("conf/face/haar.yaml"), cfg)
        del cfg["defaults"]
    return instantiate(cfg.detector)


def main() -> None:
    names = sample_names()
    for option in ("haar", "mtcnn"):
        found = instantiate_and_measure(option, names)
        ratios, offsets, seconds, missed = found
        print(
            f"{option}: {len(names)} images, found in {len(names) - missed}; "
            f"image side / box side: median {np.median(ratios):.3f} "
            f"(quartiles {np.percentile(ratios, 25):.3f}, {np.percentile(ratios, 75):.3f}); "
            f"box centre off the image centre: median {np.median(offsets):.3f} of the side; "
            f"{np.mean(seconds) * 1000:.1f} ms per image"
        )


def instantiate_and_measure(option: str, names: list[str]):
    face_detector = detector(option)
    ratios, offsets, seconds, missed = [], [], [], 0
    for name in names:
        grey = cv2.imread(f"{ROOT}/images/{name}", cv2.IMREAD_GRAYSCALE)
        if grey is None:
            missed += 1
            continue
        start = time.perf_counter()
        boxes = face_detector.detect(grey)
        seconds.append(time.perf_counter() - start)
        if not boxes:
            missed += 1
            continue
        box, side = boxes[0], max(grey.shape)
        ratios.append(side / box.side)
        cx, cy = box.centre
        offsets.append(np.hypot(cx - grey.shape[1] / 2, cy - grey.shape[0] / 2) / side)
    return ratios, offsets, seconds, missed


if __name__ == "__main__":
    main()
