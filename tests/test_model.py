"""The seed's CNNs, the residual network, batch mixing and the HOG reference, built from the
real configs; shapes that cannot work fail at start."""

import warnings

import mlflow
import numpy as np
import pytest
import torch

from fersweep.config.compose import build
from fersweep.errors import ConfigError
from fersweep.models.nets import count_parameters
from fersweep.tasks.train import train


def test_seed_cnn_has_the_parameter_count_of_the_seed_reports_figure_5(compose):
    net = build(compose("model=seed_cnn").model.net)
    assert count_parameters(net) == 2_168_776


def test_the_two_conv_cnn_maps_a_batch_of_uint8_images_to_eight_logits(compose):
    cfg = compose("model=cnn", "model.net.filters=32")
    module = build(cfg.model)
    images = torch.randint(0, 256, (4, 1, 50, 50), dtype=torch.uint8)
    assert module(images).shape == (4, 8)
    assert module.net.layers[0].out_channels == 32 and module.net.layers[2].out_channels == 16


def test_colour_150px_images_are_a_config_change(compose):
    net = build(compose("data.preprocess.channels=3", "data.preprocess.size=150").model.net)
    assert net(torch.zeros(1, 3, 150, 150)).shape == (1, 8)


def test_glorot_init_draws_weights_as_keras_does_within_the_glorot_bound_and_zero_biases(
    compose,
):
    net = build(compose("model=seed_cnn", "model.net.init=glorot").model.net)
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    for layer in layers:
        fan_in = layer.weight[0].numel()
        fan_out = layer.weight.shape[0] * layer.weight[0, 0].numel()
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert layer.weight.abs().max() <= bound and layer.weight.std() > bound / 4
        assert not layer.bias.any()


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["data.preprocess.size=8", "model.net.kernel_size=9"], "model.net.kernel_size"),
        (
            ["data.preprocess.size=10", "model.net.second_kernel_size=7"],
            "model.net.second_kernel_size",
        ),
        (["data.preprocess.size=10", "model.net.pool_size=5"], "model.net.pool_size"),
        (["model.net.filters=0"], "model.net.filters"),
        (["model.net.activation=sigmoidish"], "model.net.activation"),
        (["model.net.conv_dropout=1.5"], "model.net.conv_dropout"),
        (["model.net.init=he"], "model.net.init"),
    ],
)
def test_a_config_that_cannot_work_fails_clearly_naming_the_key(compose, overrides, key):
    with pytest.raises(ConfigError, match=key):
        build(compose(*overrides).model)


def test_the_seed_reports_short_names_compose_for_good_without_a_warning(compose):
    """`python train.py model.filters=32` is the product's promise: no warning, no end date."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = compose("model.filters=32", "augment=balanced", "augment.factor=4")
    assert cfg.model.net.filters == 32
    assert cfg.balancing.method == "augment" and cfg.balancing.factor == 4


def without_cnn(overrides: list[str]) -> list[str]:
    """The tiny run's overrides without its CNN settings, for another model."""
    return [o for o in overrides if not o.startswith("model.")]


def test_the_residual_network_takes_grey_faces_and_grows_with_width_and_depth(compose):
    small = build(compose("model=resnet").model)
    assert small(torch.randint(0, 256, (2, 1, 50, 50), dtype=torch.uint8)).shape == (2, 8)
    wider = build(compose("model=resnet", "model.net.width=32", "model.net.blocks=[2,2,2]").model)
    assert count_parameters(wider.net) > 4 * count_parameters(small.net)
    blocks = [m for m in wider.net.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 6  # torchvision's


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["model.net.blocks=[1,1,1,1,1,1,1]", "data.preprocess.size=32"], "model.net.blocks"),
        (["model.net.blocks=[]"], "model.net.blocks"),
        (["model.net.width=0"], "model.net.width"),
        (["model.net.dropout=1.0"], "model.net.dropout"),
    ],
)
def test_a_residual_network_that_cannot_work_fails_naming_the_key(compose, overrides, key):
    with pytest.raises(ConfigError, match=key):
        build(compose("model=resnet", *overrides).model)


@pytest.mark.parametrize("option", ["mixup", "cutmix", "mixup_cutmix"])
def test_mixing_turns_a_batch_into_blended_images_and_soft_targets(compose, option):
    mix = build(compose(f"mix={option}", "mix.probability=1.0").mix)
    images = torch.randint(0, 256, (8, 1, 50, 50), dtype=torch.uint8)
    labels = torch.arange(8)
    mixed, targets = mix(images, labels)
    assert mixed.dtype == torch.float32 and mixed.shape == images.shape
    assert targets.shape == (8, 8) and targets.sum(dim=1) == pytest.approx(torch.ones(8))
    assert (targets > 0).sum(dim=1).max() <= 2  # each image and its neighbour


def test_no_mixing_passes_the_batch_through_and_bad_mix_settings_are_named(compose):
    mix = build(compose("mix=none").mix)
    images, labels = torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])
    assert mix(images, labels) == (images, labels)
    for override, key in (("mix.methods=[blend]", "mix.methods"), ("mix.alpha=0", "mix.alpha")):
        with pytest.raises(ConfigError, match=key):
            build(compose("mix=mixup", override).mix)


def test_a_residual_network_trains_with_mixing_in_a_tracked_run(compose, tiny_run_overrides):
    cfg = compose(*without_cnn(tiny_run_overrides), "model=resnet", "mix=mixup_cutmix")
    result = train(cfg)
    run = mlflow.MlflowClient(cfg.tracking.tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED" and np.isfinite(run.data.metrics["train/loss"])
    assert "mixup" in run.data.params["mix.methods"] and "cutmix" in run.data.params["mix.methods"]


def test_the_hog_reference_is_a_tracked_run_scored_like_a_network(compose, tiny_run_overrides):
    cfg = compose(*without_cnn(tiny_run_overrides), "model=hog_svm")
    result = train(cfg)
    run = mlflow.MlflowClient(cfg.tracking.tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test/macro_f1"] == pytest.approx(result.metrics["test/macro_f1"])
    assert result.outputs.probabilities.sum(axis=1) == pytest.approx(np.ones(len(result.truth)))
    assert len(result.files) == len(result.people) == len(result.truth)
    assert run.data.params["model._target_"] == "fersweep.models.classical.HogLinearSVC"


def test_hog_settings_that_cannot_work_are_named(compose):
    for override, key in (("model.cell=7", "model.cell"), ("model.C=0", "model.C")):
        with pytest.raises(ConfigError, match=key):
            build(compose("model=hog_svm", override).model)
