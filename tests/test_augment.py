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


@pytest.mark.parametrize("pipeline", ["batched", "albumentations"])
def test_copies_are_fresh_augmented_versions_of_their_images(compose, pipeline):
    balancing = build(compose("augment=balanced", f"augment/pipeline={pipeline}").augment)
    images = np.random.default_rng(0).integers(0, 255, (8, 50, 50, 1), dtype=np.uint8)
    first, second = balancing.augment(images), balancing.augment(images)
    assert first.shape == images.shape and first.dtype == np.uint8
    assert not np.array_equal(first, images)
    assert not np.array_equal(first, second)  # fresh every time
    assert balancing.augment(images[:0]).shape == (0, 50, 50, 1)


def batch_augment(compose, *overrides: str):
    """The batched pipeline with every operation off unless an override turns it on."""
    off = [
        f"augment.pipeline.{key}=0"
        for key in ("flip_p", "affine_p", "brightness_contrast_p", "noise_p", "dropout_p")
    ]
    return build(compose("augment=balanced", *off, *overrides).augment.pipeline)


def test_the_batched_pipeline_with_every_operation_off_returns_the_images_unchanged(compose):
    images = torch.randint(0, 256, (4, 1, 20, 20), dtype=torch.uint8)
    assert torch.equal(batch_augment(compose)(images), images)


def test_a_certain_flip_mirrors_every_image(compose):
    images = torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8)
    assert torch.equal(batch_augment(compose, "augment.pipeline.flip_p=1")(images), images.flip(-1))


def test_scaling_down_shrinks_the_face_inside_black_borders(compose):
    augment = batch_augment(
        compose,
        "augment.pipeline.affine_p=1",
        "augment.pipeline.rotate_degrees=0",
        "augment.pipeline.translate=0",
        "augment.pipeline.scale=[0.5,0.5]",
    )
    white = torch.full((2, 1, 40, 40), 255, dtype=torch.uint8)
    out = augment(white).float() / 255
    assert out.mean().item() == pytest.approx(0.25, abs=0.03)  # half the side: a quarter left
    assert out[:, :, 20, 20].min() == 1 and out[:, :, 0, 0].max() == 0  # centred


def test_brightness_shifts_each_image_by_one_amount_within_its_range(compose):
    augment = batch_augment(
        compose,
        "augment.pipeline.brightness_contrast_p=1",
        "augment.pipeline.brightness=0.2",
        "augment.pipeline.contrast=0",
    )
    out = augment(torch.full((16, 1, 10, 10), 128, dtype=torch.uint8)).float()
    per_image = out.flatten(1)
    assert (per_image == per_image[:, :1]).all()  # the whole image moves together
    assert per_image.min() >= 128 - 51 and per_image.max() <= 128 + 51
    assert per_image[:, 0].unique().numel() > 1  # a fresh amount per image


def test_dropout_blacks_out_one_or_two_rectangles_of_the_configured_size(compose):
    augment = batch_augment(compose, "augment.pipeline.dropout_p=1")
    out = augment(torch.full((32, 1, 50, 50), 255, dtype=torch.uint8))
    black = (out == 0).flatten(1).sum(dim=1)
    assert black.min() >= 5 * 5 and black.max() <= 2 * 10 * 10  # sides 10-20% of 50


@pytest.mark.parametrize(
    "override, key",
    [
        ("augment.pipeline.flip_p=1.5", "augment.pipeline.flip_p"),
        ("augment.pipeline.scale=[1.1,0.9]", "augment.pipeline.scale"),
    ],
)
def test_bad_pipeline_settings_name_the_key(compose, override, key):
    with pytest.raises(ConfigError, match=key):
        build(compose("augment=balanced", override).augment)


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
        "augment.factor=2",
        "augment.target=40",
    )
    datamodule = build(cfg.data, _partial_=True)(balancing=build(cfg.augment))
    datamodule.setup()
    table = datamodule.split_table()
    assert table.loc[table.split == "test", "augmented_copy"].any()  # the leak, reproduced
    assert datamodule.natural_prevalence().sum() == pytest.approx(1.0)


def test_the_leaks_upper_bound_tests_on_exact_copies_of_its_images(compose, tiny_dataset):
    cfg = compose(
        f"data.root={tiny_dataset}",
        "data.preprocess.size=32",
        "experiment=seed_balanced_copies",
        "augment.factor=2",
        "augment.target=40",
    )
    assert cfg.run_name == "seed_balanced_copies"  # an experiment names its runs
    datamodule = build(cfg.data, _partial_=True)(balancing=build(cfg.augment))
    datamodule.setup()
    table = datamodule.split_table()
    images = datamodule.image_set.images
    original_row = {file: row for row, file in table.file[~table.augmented_copy].items()}
    test_copies = table.index[(table.split == "test") & table.augmented_copy]
    assert len(test_copies) > 0
    for row in test_copies:
        assert np.array_equal(images[row], images[original_row[table.file[row]]])


@pytest.mark.parametrize(
    "override, key",
    [("augment.method=smote", "augment.method"), ("augment.target=-3", "augment.target")],
)
def test_bad_balancing_settings_name_the_key(compose, override, key):
    with pytest.raises(ConfigError, match=key):
        build(compose("augment=balanced", override).augment)
