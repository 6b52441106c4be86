"""The cross-validation split and the memory check on the real data, as the README states them.

python results/2026-11-26-kfold/folds.py ../shared/data/facial_expressions
"""

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from fersweep import EMOTIONS
from fersweep.data.legend import read_legend
from fersweep.data.split import split_assignments

root = Path(sys.argv[1])
records, _ = read_legend(root / "legend.csv", root / "images")
labels = np.array([r.label for r in records])
people = np.array([r.identity for r in records])
print(f"{len(records):,} images")
print("emotion: images, people")
for label, emotion in enumerate(EMOTIONS):
    print(f"  {emotion}: {(labels == label).sum()}, {len(set(people[labels == label]))}")
disgust = Counter(people[labels == EMOTIONS.index("disgust")])
print(f"disgust images of its two most photographed people: {disgust.most_common(2)}")

tested = []
print("identity_kfold, seed 42, 5 folds: test images of contempt, fear, disgust; val share")
for fold in range(5):
    split = split_assignments(labels, people, "identity_kfold", 0.15, 0.15, 42, 5, fold)
    tested.append(split == "test")
    rare = [
        int(((labels == EMOTIONS.index(e)) & (split == "test")).sum())
        for e in ("contempt", "fear", "disgust")
    ]
    print(
        f"  fold {fold}: {rare}, val {np.mean(split == 'val'):.3f}, test {np.mean(split == 'test'):.3f}"
    )
print(f"every image tested exactly once: {bool((np.sum(tested, axis=0) == 1).all())}")
default = split_assignments(labels, people, "identity_stratified", 0.15, 0.15, 42)
print(f"default split's test images: {(default == 'test').sum()}")
size = 2000
print(f"arrays at {size}x{size}x1: {len(records) * size * size / 1e9:.1f} GB")
