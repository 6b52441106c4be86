"""Short names for the seed report's knobs, kept for good: `python train.py model.filters=32` is
how the product was promised to train a run, and it always will. Each short name is rewritten to
the key it stands for before Hydra sees it, so the run records the full key (`model.net.filters`),
the one the config files and docs name; no warning, no end date.

| typed | stands for |
| --- | --- |
| `model.<network setting>` (filters, kernel_size, dense_units, ...) | `model.net.<network setting>` |
| `augment.factor`, `augment.target`, `augment.method`, `augment.before_split` | `balancing.<same>` |
| `augment=balanced` (or none, class_weights, sampler) | `balancing=<same>` |
| `augment/pipeline=<option>`, `augment.pipeline.<key>` | `augment=<option>`, `augment.<key>` |
| `data.preprocess.face_crop=true` / `false` | `face=haar` / `face=none` |
| `data.preprocess.face_detect_side` | `data.preprocess.face.detector.detect_side` |
| `sweeps@compare=<file>` (comparisons lived in `sweeps/`) | `comparisons@compare=<file>` |
"""

from __future__ import annotations

from collections.abc import Sequence

NET_KEYS = (
    "filters", "kernel_size", "second_filters", "second_kernel_size", "pool_size",
    "activation", "conv_dropout", "dense_units", "dense_dropout", "init",
)  # fmt: skip
BALANCING_KEYS = ("method", "factor", "target", "before_split")
BALANCING_OPTIONS = ("none", "balanced", "class_weights", "sampler")


def canonical(overrides: Sequence[str]) -> list[str]:
    """The overrides with every short name replaced by the key it stands for."""
    return [full_name(override) for override in overrides]


def full_name(override: str) -> str:
    """One override in the spelling of the config files (unchanged if it already is)."""
    key, equals, value = override.partition("=")
    head, _, rest = key.partition(".")
    first = rest.split(".")[0]
    if key == "augment" and value in BALANCING_OPTIONS:
        return f"balancing={value}"
    if key == "data.preprocess.face_crop":
        return f"face={'haar' if value.lower() == 'true' else 'none'}"
    if key == "data.preprocess.face_detect_side":
        return f"data.preprocess.face.detector.detect_side={value}"
    if key == "sweeps@compare":
        return f"comparisons@compare={value}"
    if key == "augment/pipeline":
        return f"augment={value}"
    if head == "model" and first in NET_KEYS:
        return f"model.net.{rest}{equals}{value}"
    if head == "augment" and first in BALANCING_KEYS:
        return f"balancing.{rest}{equals}{value}"
    if head == "augment" and first == "pipeline":
        return f"augment.{rest.removeprefix('pipeline.')}{equals}{value}"
    return override
