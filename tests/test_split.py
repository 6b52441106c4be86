"""Splits are identity-disjoint, stratified by emotion, and reproducible by seed."""

import numpy as np
import pytest

from fersweep.data.split import split_assignments
from fersweep.errors import ConfigError, DataError


@pytest.fixture
def population() -> tuple[np.ndarray, np.ndarray]:
    """Skewed like the real data: two big classes, rare ones, people with many images."""
    rng = np.random.default_rng(1)
    labels, identities = [], []
    for label, people in enumerate([30, 8, 8, 8, 200, 240, 12, 20]):
        for person in range(people):
            count = int(rng.integers(1, 6))
            labels += [label] * count
            identities += [f"p{label}_{person}"] * count
    return np.array(labels), np.array(identities)


def test_no_person_is_in_two_splits(population):
    labels, identities = population
    split = split_assignments(labels, identities, "identity_stratified", 0.15, 0.15, seed=3)
    owners = {}
    for person, part in zip(identities, split):
        assert owners.setdefault(person, part) == part


def test_each_split_keeps_the_class_proportions(population):
    labels, identities = population
    split = split_assignments(labels, identities, "identity_stratified", 0.15, 0.15, seed=3)
    overall = np.bincount(labels) / len(labels)
    for part, fraction in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        chosen = labels[split == part]
        assert abs(len(chosen) / len(labels) - fraction) < 0.05
        assert set(chosen) == set(labels)  # every emotion present
        assert np.abs(np.bincount(chosen, minlength=8) / len(chosen) - overall).max() < 0.05


def test_the_same_seed_gives_the_same_split_and_another_seed_another(population):
    labels, identities = population
    first = split_assignments(labels, identities, "identity_stratified", 0.15, 0.15, seed=3)
    again = split_assignments(labels, identities, "identity_stratified", 0.15, 0.15, seed=3)
    other = split_assignments(labels, identities, "identity_stratified", 0.15, 0.15, seed=4)
    assert (first == again).all() and (first != other).any()


def test_the_seeds_random_split_mixes_people_across_splits(population):
    labels, identities = population
    split = split_assignments(labels, identities, "random", 0.0, 0.2, seed=3)
    assert set(split) == {"train", "test"}
    assert abs((split == "test").mean() - 0.2) < 0.01
    people_in_both = set(identities[split == "test"]) & set(identities[split == "train"])
    assert people_in_both


@pytest.mark.parametrize("val, test", [(0.5, 0.5), (0.1, 0.0), (-0.1, 0.2)])
def test_impossible_fractions_fail_naming_the_key(population, val, test):
    labels, identities = population
    with pytest.raises(ConfigError, match="data.split"):
        split_assignments(labels, identities, "identity_stratified", val, test, seed=0)


def test_too_few_people_for_an_identity_split_is_explained(population):
    labels, _ = population
    one_person = np.array(["Someone"] * len(labels))
    with pytest.raises(DataError, match="only 1.*data.split.method=random"):
        split_assignments(labels, one_person, "identity_stratified", 0.15, 0.15, seed=0)


# --- cross-validation by person (data.split.method=identity_kfold) ---------------------------


def kfold(population, fold: int, folds: int = 5, val: float = 0.15, seed: int = 3) -> np.ndarray:
    labels, identities = population
    return split_assignments(labels, identities, "identity_kfold", val, 0.0, seed, folds, fold)


def test_over_the_folds_every_image_is_tested_exactly_once(population):
    tested = np.stack([kfold(population, fold) == "test" for fold in range(5)])
    assert (tested.sum(axis=0) == 1).all()


def test_in_every_fold_no_person_is_in_two_parts_and_every_emotion_is_tested(population):
    labels, identities = population
    for fold in range(5):
        split = kfold(population, fold)
        owners = {}
        for person, part in zip(identities, split):
            assert owners.setdefault(person, part) == part
        assert set(labels[split == "test"]) == set(labels)
        assert abs((split == "test").mean() - 0.2) < 0.05
        assert abs((split == "val").mean() - 0.15) < 0.05  # carved from the other folds


def test_the_folds_are_reproducible_by_seed(population):
    assert (kfold(population, 2) == kfold(population, 2)).all()
    assert (kfold(population, 2) != kfold(population, 2, seed=4)).any()


@pytest.mark.parametrize(
    "folds, fold, key",
    [(1, 0, "data.split.folds=1"), (5, 5, "data.split.fold=5"), (5, -1, "data.split.fold=-1")],
)
def test_an_impossible_fold_fails_naming_the_key(population, folds, fold, key):
    with pytest.raises(ConfigError, match=key):
        kfold(population, fold, folds)


def test_more_folds_than_a_class_has_people_fails_naming_the_class(population):
    # contempt (label 1) has 8 people in the population
    with pytest.raises(ConfigError, match=r"data\.split\.folds=9: the contempt images show only 8"):
        kfold(population, 0, folds=9)
