"""Augmentation: how a copy of a rare-class image is made, by either pipeline (the augment
config group); balancing decides how many copies there are."""

import numpy as np
import pytest
import torch

from fersweep.config.compose import build
from fersweep.errors import ConfigError


@pytest.mark.parametrize("pipeline", ["batched", "albumentations"])
def test_copies_are_fresh_augmented_versions_of_their_images(compose, pipeline):
    balancing = build(compose("balancing=balanced", f"augment={pipeline}").balancing)
    images = np.random.default_rng(0).integers(0, 255, (8, 50, 50, 1), dtype=np.uint8)
    first, second = balancing.augment(images), balancing.augment(images)
    assert first.shape == images.shape and first.dtype == np.uint8
    assert not np.array_equal(first, images)
    assert not np.array_equal(first, second)  # fresh every time
    assert balancing.augment(images[:0]).shape == (0, 50, 50, 1)


def batch_augment(compose, *overrides: str):
    """The batched pipeline with every operation off unless an override turns it on."""
    off = [
        f"augment.{key}=0"
        for key in ("flip_p", "affine_p", "brightness_contrast_p", "noise_p", "dropout_p")
    ]
    return build(compose(*off, *overrides).augment)


def test_the_batched_pipeline_with_every_operation_off_returns_the_images_unchanged(compose):
    images = torch.randint(0, 256, (4, 1, 20, 20), dtype=torch.uint8)
    assert torch.equal(batch_augment(compose)(images), images)


def test_a_certain_flip_mirrors_every_image(compose):
    images = torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8)
    assert torch.equal(batch_augment(compose, "augment.flip_p=1")(images), images.flip(-1))


def test_scaling_down_shrinks_the_face_inside_black_borders(compose):
    augment = batch_augment(
        compose,
        "augment.affine_p=1",
        "augment.rotate_degrees=0",
        "augment.translate=0",
        "augment.scale=[0.5,0.5]",
    )
    white = torch.full((2, 1, 40, 40), 255, dtype=torch.uint8)
    out = augment(white).float() / 255
    assert out.mean().item() == pytest.approx(0.25, abs=0.03)  # half the side: a quarter left
    assert out[:, :, 20, 20].min() == 1 and out[:, :, 0, 0].max() == 0  # centred


def test_brightness_shifts_each_image_by_one_amount_within_its_range(compose):
    augment = batch_augment(
        compose,
        "augment.brightness_contrast_p=1",
        "augment.brightness=0.2",
        "augment.contrast=0",
    )
    out = augment(torch.full((16, 1, 10, 10), 128, dtype=torch.uint8)).float()
    per_image = out.flatten(1)
    assert (per_image == per_image[:, :1]).all()  # the whole image moves together
    assert per_image.min() >= 128 - 51 and per_image.max() <= 128 + 51
    assert per_image[:, 0].unique().numel() > 1  # a fresh amount per image


def test_dropout_blacks_out_one_or_two_rectangles_of_the_configured_size(compose):
    augment = batch_augment(compose, "augment.dropout_p=1")
    out = augment(torch.full((32, 1, 50, 50), 255, dtype=torch.uint8))
    black = (out == 0).flatten(1).sum(dim=1)
    assert black.min() >= 5 * 5 and black.max() <= 2 * 10 * 10  # sides 10-20% of 50


@pytest.mark.parametrize(
    "override, key",
    [
        ("augment.flip_p=1.5", "augment.flip_p"),
        ("augment.scale=[1.1,0.9]", "augment.scale"),
    ],
)
def test_bad_pipeline_settings_name_the_key(compose, override, key):
    with pytest.raises(ConfigError, match=key):
        build(compose(override).augment)
