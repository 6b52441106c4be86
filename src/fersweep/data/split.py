"""Reproducible train/val/test splits: identity-disjoint and stratified (one split, or one fold of
a cross-validation), or the seed's random one."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from fersweep import EMOTIONS
from fersweep.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
SPLIT_METHODS = ("identity_stratified", "identity_kfold", "random")


def split_assignments(
    labels: np.ndarray,
    identities: np.ndarray,
    method: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    folds: int = 5,
    fold: int = 0,
) -> np.ndarray:
    """One of "train", "val", "test" per sample."""
    check_settings(method, val_fraction, test_fraction, folds, fold)
    if method == "identity_kfold":
        check_folds(labels, identities, folds)
        return identity_kfold_split(labels, identities, folds, fold, val_fraction, seed)
    if method == "identity_stratified":
        return identity_disjoint_split(labels, identities, val_fraction, test_fraction, seed)
    return random_split(len(labels), val_fraction, test_fraction, seed)


def check_settings(
    method: str, val_fraction: float, test_fraction: float, folds: int, fold: int
) -> None:
    """The `data.split` settings that cannot work whatever the data."""
    if method not in SPLIT_METHODS:
        raise ConfigError(f"data.split.method={method!r}: use one of {SPLIT_METHODS}")
    if method != "identity_kfold":
        _check_fractions(val_fraction, test_fraction)
        return
    if folds < 2:
        raise ConfigError(f"data.split.folds={folds}: a cross-validation needs at least 2 folds")
    if not 0 <= fold < folds:
        raise ConfigError(f"data.split.fold={fold}: must be between 0 and {folds - 1}")
    _check_fractions(val_fraction, 1.0 / folds, test_key="data.split.folds")


def identity_disjoint_split(
    labels: np.ndarray, identities: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Stratified by emotion, and no person's images in two splits."""
    assignment = np.full(len(labels), "train", dtype=object)
    rest = np.arange(len(labels))
    rest = _hold_out(assignment, rest, labels, identities, "test", test_fraction, 1.0, seed)
    _hold_out(assignment, rest, labels, identities, "val", val_fraction, 1.0 - test_fraction, seed)
    return assignment.astype(str)


def identity_kfold_split(
    labels: np.ndarray,
    identities: np.ndarray,
    folds: int,
    fold: int,
    val_fraction: float,
    seed: int,
) -> np.ndarray:
    """Fold `fold` of a cross-validation by person (StratifiedGroupKFold): over the folds, every
    image is tested exactly once; the validation part is carved from the other folds, by person."""
    assignment = np.full(len(labels), "train", dtype=object)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    rest, test = list(splitter.split(labels, labels, groups=identities))[fold]
    assignment[test] = "test"
    _hold_out(assignment, rest, labels, identities, "val", val_fraction, 1.0 - 1.0 / folds, seed)
    return assignment.astype(str)


def _hold_out(
    assignment: np.ndarray,
    rest: np.ndarray,
    labels: np.ndarray,
    identities: np.ndarray,
    name: str,
    fraction: float,
    rest_share: float,
    seed: int,
) -> np.ndarray:
    """Mark about `fraction` of all images (`rest` holds `rest_share` of them) as `name`, whole
    people at a time, stratified by emotion; returns what is left of `rest`."""
    if fraction == 0:
        return rest
    n_splits = max(2, round(rest_share / fraction))
    people = len(np.unique(identities[rest]))
    if people < n_splits:
        raise DataError(
            f"an identity-disjoint {name} split of {fraction:.0%} needs at least {n_splits} "
            f"people, but the images show only {people}; use data.split.method=random "
            "(identities may then be shared across splits)"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held_out = next(splitter.split(rest, labels[rest], groups=identities[rest]))
    assignment[rest[held_out]] = name
    return np.delete(rest, held_out)


def check_folds(labels: np.ndarray, identities: np.ndarray, folds: int) -> None:
    """A cross-validation by person needs, in every emotion, a person for each fold."""
    for label in np.unique(labels):
        people = len(np.unique(identities[labels == label]))
        if people < folds:
            raise ConfigError(
                f"data.split.folds={folds}: the {EMOTIONS[label]} images show only {people} "
                f"people, so some folds would test none of them; use at most {people} folds"
            )


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


def _check_fractions(
    val_fraction: float, test_fraction: float, test_key: str = "data.split.test_fraction"
) -> None:
    if not 0 < test_fraction < 1:
        raise ConfigError(f"data.split.test_fraction={test_fraction}: must be between 0 and 1")
    if not 0 <= val_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"data.split.val_fraction={val_fraction}: must be >= 0 and leave room for training "
            f"beside the test part ({test_key}, {test_fraction:.0%} of the images)"
        )
