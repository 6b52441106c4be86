"""The seed's CNNs, built from the real configs; shapes that cannot work fail at start."""

import pytest
import torch

from fersweep.config import build
from fersweep.errors import ConfigError
from fersweep.model import count_parameters


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


def test_the_old_spellings_still_compose_for_one_release_with_a_warning(compose):
    """`python train.py model.filters=32` (before 0.2) still works, and says what to write."""
    with pytest.warns(FutureWarning, match="'model.net.filters=32'"):
        cfg = compose("model.filters=32", "augment=balanced", "augment.factor=4")
    assert cfg.model.net.filters == 32
    assert cfg.balancing.method == "augment" and cfg.balancing.factor == 4
