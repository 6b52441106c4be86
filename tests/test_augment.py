"""Balancing the training split: the seed's augmented copies (split first, leak-free), class
weights, a weighted sampler; validation and test stay original images."""

import numpy as np
import pytest
import torch

from fersweep.config import build
from fersweep.errors import ConfigError


@pytest.fixture
def balanced(compose):
    return build(compose("augment=balanced").augment)


def test_rare_classes_get_up_to_factor_copies_per_image_capped_at_the_target(balanced):
    labels = np.array([0] * 10 + [1] * 2 + [2] * 100)
    copies = balanced.copies_per_image(labels, num_classes=3, seed=0)
    grown = np.bincount(labels, weights=copies + 1, minlength=3)
    assert grown[0] == 100  # 10 images x 20 copies would be 210: capped at the largest class
    assert grown[1] == 2 * (1 + 20)  # the factor caps it first
    assert grown[2] == 100 and copies[labels == 2].sum() == 0
    assert copies.max() <= balanced.factor


def test_a_number_as_target_caps_every_class_at_it(compose):
    balancing = build(compose("augment=balanced", "augment.target=30").augment)
    labels = np.array([0] * 10 + [1] * 50)
    copies = balancing.copies_per_image(labels, num_classes=2, seed=0)
    assert np.bincount(labels, weights=copies + 1).tolist() == [30, 50]


def test_copies_are_augmented_versions_of_their_image(balanced):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (50, 50, 1), dtype=np.uint8)
    variants = [balanced.augment(image) for _ in range(5)]
    assert all(v.shape == image.shape and v.dtype == np.uint8 for v in variants)
    assert any(not np.array_equal(v, image) for v in variants)
    assert not np.array_equal(variants[0], variants[1])  # fresh every time


def test_class_weights_and_the_sampler_favour_rare_classes(compose):
    labels = np.array([0] * 90 + [1] * 10)
    weights = build(compose("augment=class_weights").augment).loss_weights(labels, 3)
    assert weights[1] == pytest.approx(9 * weights[0]) and weights[2] == 0
    sampler = build(compose("augment=sampler").augment).sampler(labels, seed=0)
    drawn = labels[list(sampler)]
    assert 0.35 < drawn.mean() < 0.65  # about as many of the rare class as of the common one


def test_only_the_training_split_is_grown_and_evaluation_sees_original_images(
    compose, tiny_dataset
):
    cfg = compose(
        f"data.root={tiny_dataset}",
        "data.preprocess.size=32",
        "augment=balanced",
        "augment.target=40",
    )
    datamodule = build(cfg.data, _partial_=True)(balancing=build(cfg.augment))
    datamodule.setup()
    train = datamodule.indices("train")
    assert set(datamodule.train_index) <= set(train)  # copies only of training images
    assert len(datamodule.train_index) > len(train)
    for split in ("val", "test"):
        dataset = datamodule.eval_dataset(split)
        assert not dataset.is_copy.any()
        image, _ = dataset[0]
        assert torch.equal(
            image,
            torch.from_numpy(datamodule.image_set.images[dataset.index[0]].transpose(2, 0, 1)),
        )


def test_the_seed_protocol_augments_before_splitting_so_copies_reach_the_test_set(
    compose, tiny_dataset
):
    cfg = compose(
        f"data.root={tiny_dataset}",
        "data.preprocess.size=32",
        "experiment=seed_balanced",
        "augment.factor=2",
        "augment.target=40",
    )
    datamodule = build(cfg.data, _partial_=True)(balancing=build(cfg.augment))
    datamodule.setup()
    table = datamodule.split_table()
    assert table.loc[table.split == "test", "augmented_copy"].any()  # the leak, reproduced
    assert datamodule.natural_prevalence().sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "override, key",
    [("augment.method=smote", "augment.method"), ("augment.target=-3", "augment.target")],
)
def test_bad_balancing_settings_name_the_key(compose, override, key):
    with pytest.raises(ConfigError, match=key):
        build(compose("augment=balanced", override).augment)
