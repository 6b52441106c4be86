"""The face step's border (detector.pad), measured on the real data without a model:
    .venv/bin/python results/2026-11-28-face-pad/measure.py > results/2026-11-28-face-pad/output.txt

On 800 of the data set's images (every 13th file) and on the same images reframed as the framing
check does (conf/reframe/default.yaml, seed 0): how often a face is found, the image's side over
the box's (what `margin` should be to reproduce the data set's framing), how well the box found
in the reframed picture matches the one found in the image itself (IoU, after undoing the
placement), and how alike the two cut-outs are once preprocessed (Pearson correlation of the
50x50 arrays: 1 is the same picture up to brightness and contrast).
"""

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from fersweep.config.compose import build, compose_config
from fersweep.data.decode import decode_bytes

ROOT = Path("/work/shared/data/facial_expressions/images")
VARIANTS = {  # name: (detect_side, pad, margin)
    "before (128 px, no border, margin 1.2)": (128, 0.0, 1.2),
    "96 px, no border, margin 1.2": (96, 0.0, 1.2),
    "96 px, border 0.25, margin 1.0 (conf/face/haar.yaml now)": (96, 0.25, 1.0),
}


def main() -> None:
    cfg = compose_config("conf", ["face=haar", "reframe=default"])
    reframing = build(cfg.data.reframe)
    base = build(cfg.data.preprocess)
    files = sorted(ROOT.iterdir())[::13][:800]
    for name, (side, pad, margin) in VARIANTS.items():
        detector = dataclasses.replace(base.face.detector, detect_side=side, pad=pad)
        prep = dataclasses.replace(
            base, face=dataclasses.replace(base.face, detector=detector, margin=margin)
        )
        found, found_reframed, ratios, overlaps, alike = 0, 0, [], [], []
        for file in files:
            data = file.read_bytes()
            image = decode_bytes(data, file.name, 10**8, colour=True).image
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            picture, (left, top) = reframing.place(image, file.name)
            alone = prep.face.find(grey)
            with_room = prep.face.find(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY))
            found += bool(alone)
            found_reframed += bool(with_room)
            if alone:
                ratios.append(max(grey.shape) / alone[0].box.side)
            if alone and with_room:
                overlaps.append(alone[0].box.overlap(with_room[0].box.moved(-left, -top)))
            a = prep.load_bytes(data, file.name).array.ravel().astype(float)
            r = prep.load_bytes(reframing.encoded(image, file.name), file.name).array
            alike.append(np.corrcoef(a, r.ravel().astype(float))[0, 1])
        p10, p50, p90 = np.quantile(ratios, [0.1, 0.5, 0.9])
        print(f"## {name}")
        print(
            f"faces found: images {found / len(files):.1%}, reframed {found_reframed / len(files):.1%}"
        )
        print(f"image side / box side: p10 {p10:.3f}, median {p50:.3f}, p90 {p90:.3f}")
        print(
            f"box in the reframed picture vs in the image: median IoU {np.median(overlaps):.3f}, "
            f"p10 {np.quantile(overlaps, 0.1):.3f} ({len(overlaps)} pairs)"
        )
        print(
            f"cut-outs alike (correlation): median {np.nanmedian(alike):.3f}, "
            f"p10 {np.nanquantile(alike, 0.1):.3f}, below 0.8 {np.mean(np.array(alike) < 0.8):.1%}"
        )
        print()


if __name__ == "__main__":
    main()
