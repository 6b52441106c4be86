"""Balancing the training split: the seed's augmented copies (split first, leak-free), class
weights, a weighted sampler; validation and test stay original images."""

import numpy as np
import pytest
import torch

from fersweep.config.compose import build
from fersweep.errors import ConfigError


@pytest.fixture
def balanced(compose):
    return build(compose("balancing=balanced").balancing)


def test_rare_classes_get_up_to_factor_copies_per_image_capped_at_the_target(balanced):
    labels = np.array([0] * 10 + [1] * 2 + [2] * 100)
    copies = balanced.copies_per_image(labels, num_classes=3, seed=0)
    grown = np.bincount(labels, weights=copies + 1, minlength=3)
    assert grown[0] == 100  # 10 images x 20 copies would be 210: capped at the largest class
    assert grown[1] == 2 * (1 + 20)  # the factor caps it first
    assert grown[2] == 100 and copies[labels == 2].sum() == 0
    assert copies.max() <= balanced.factor


def test_a_number_as_target_caps_every_class_at_it(compose):
    balancing = build(compose("balancing=balanced", "balancing.target=30").balancing)
    labels = np.array([0] * 10 + [1] * 50)
    copies = balancing.copies_per_image(labels, num_classes=2, seed=0)
    assert np.bincount(labels, weights=copies + 1).tolist() == [30, 50]


def test_class_weights_and_the_sampler_favour_rare_classes(compose):
    labels = np.array([0] * 90 + [1] * 10)
    weights = build(compose("balancing=class_weights").balancing).loss_weights(labels, 3)
    assert weights[1] == pytest.approx(9 * weights[0]) and weights[2] == 0
    sampler = build(compose("balancing=sampler").balancing).sampler(labels, seed=0)
    drawn = labels[list(sampler)]
    assert 0.35 < drawn.mean() < 0.65  # about as many of the rare class as of the common one


def test_only_the_training_split_is_grown_and_evaluation_sees_original_images(
    compose, tiny_dataset
):
    cfg = compose(
        f"data.root={tiny_dataset}",
        "data.preprocess.size=32",
        "balancing=balanced",
        "balancing.target=40",
    )
    datamodule = build(cfg.data)
    datamodule.setup()
    train = datamodule.indices("train")
    assert set(datamodule.train_index) <= set(train)  # copies only of training images
    assert len(datamodule.train_index) > len(train)
    grown = datamodule.train_dataset()
    batch = grown.__getitems__(list(range(len(grown))))  # how the DataLoader asks
    stored = datamodule.image_set.images[grown.index].transpose(0, 3, 1, 2)
    same = np.array([np.array_equal(image.numpy(), s) for (image, _), s in zip(batch, stored)])
    assert same[~grown.is_copy].all()  # originals as they are
    assert not same[grown.is_copy].all()  # copies augmented
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
        "balancing.factor=2",
        "balancing.target=40",
    )
    datamodule = build(cfg.data)
    datamodule.setup()
    table = datamodule.record().split_table
    assert table.loc[table.split == "test", "augmented_copy"].any()  # the leak, reproduced
    assert datamodule.natural_prevalence().sum() == pytest.approx(1.0)


def test_the_leaks_upper_bound_tests_on_exact_copies_of_its_images(compose, tiny_dataset):
    cfg = compose(
        f"data.root={tiny_dataset}",
        "data.preprocess.size=32",
        "experiment=seed_balanced_copies",
        "balancing.factor=2",
        "balancing.target=40",
    )
    assert cfg.run_name == "seed_balanced_copies"  # an experiment names its runs
    datamodule = build(cfg.data)
    datamodule.setup()
    table = datamodule.record().split_table
    images = datamodule.image_set.images
    original_row = {file: row for row, file in table.file[~table.augmented_copy].items()}
    test_copies = table.index[(table.split == "test") & table.augmented_copy]
    assert len(test_copies) > 0
    for row in test_copies:
        assert np.array_equal(images[row], images[original_row[table.file[row]]])


@pytest.mark.parametrize(
    "override, key",
    [("balancing.method=smote", "balancing.method"), ("balancing.target=-3", "balancing.target")],
)
def test_bad_balancing_settings_name_the_key(compose, override, key):
    with pytest.raises(ConfigError, match=key):
        build(compose("balancing=balanced", override).balancing)
