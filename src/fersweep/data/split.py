"""Reproducible train/val/test splits: identity-disjoint and stratified, or the seed's random one."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from fersweep.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
SPLIT_METHODS = ("identity_stratified", "random")


def split_assignments(
    labels: np.ndarray,
    identities: np.ndarray,
    method: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """One of "train", "val", "test" per sample."""
    _check_fractions(val_fraction, test_fraction)
    if method == "identity_stratified":
        return identity_disjoint_split(labels, identities, val_fraction, test_fraction, seed)
    if method == "random":
        return random_split(len(labels), val_fraction, test_fraction, seed)
    raise ConfigError(f"data.split.method={method!r}: use one of {SPLIT_METHODS}")


def identity_disjoint_split(
    labels: np.ndarray, identities: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Stratified by emotion, and no person's images in two splits."""
    assignment = np.full(len(labels), "train", dtype=object)
    rest = np.arange(len(labels))
    for name, fraction, share_of_rest in (
        ("test", test_fraction, test_fraction),
        ("val", val_fraction, val_fraction / (1.0 - test_fraction)),
    ):
        if fraction == 0:
            continue
        n_splits = max(2, round(1.0 / share_of_rest))
        people = len(np.unique(identities[rest]))
        if people < n_splits:
            raise DataError(
                f"an identity-disjoint {name} split of {fraction:.0%} needs at least {n_splits} "
                f"people, but the images show only {people}; use data.split.method=random "
                "(identities may then be shared across splits)"
            )
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, held_out = next(folds.split(rest, labels[rest], groups=identities[rest]))
        assignment[rest[held_out]] = name
        rest = np.delete(rest, held_out)
    return assignment.astype(str)


def random_split(n: int, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """The seed report's split: images drawn at random, a person may land in every split."""
    assignment = np.full(n, "train", dtype=object)
    indices = np.arange(n)
    rest, test = train_test_split(indices, test_size=test_fraction, random_state=seed)
    assignment[test] = "test"
    if val_fraction > 0:
        _, val = train_test_split(
            rest, test_size=val_fraction / (1.0 - test_fraction), random_state=seed
        )
        assignment[val] = "val"
    return assignment.astype(str)


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not 0 < test_fraction < 1:
        raise ConfigError(f"data.split.test_fraction={test_fraction}: must be between 0 and 1")
    if not 0 <= val_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"data.split.val_fraction={val_fraction}: must be >= 0 and leave room for training "
            f"beside data.split.test_fraction={test_fraction}"
        )
