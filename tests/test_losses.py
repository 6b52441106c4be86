"""Each loss of the `loss` group against values computed by hand on a two-image, two-class batch:
image 0 has logits (2, 0) and is class 0, image 1 has logits (0, 1) and is class 1."""

from __future__ import annotations

from math import exp, log

import mlflow
import pytest
import torch

from fersweep.config.compose import build
from fersweep.errors import ConfigError
from fersweep.imbalance.losses import (
    LDAM,
    BalancedSoftmax,
    ClassWeighted,
    CrossEntropy,
    Focal,
    LogitAdjusted,
)
from fersweep.tasks.train import train

LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
LABELS = torch.tensor([0, 1])
COUNTS = torch.tensor([3, 1])  # class 0 three times as common as class 1


def ce(true: float, other: float) -> float:
    """-log softmax of the true class, two classes."""
    return log(1 + exp(other - true))


def value(loss, counts=COUNTS, logits=LOGITS) -> float:
    loss.fit(counts)
    return loss.train()(logits, LABELS).item()


def test_cross_entropy():
    assert value(CrossEntropy()) == pytest.approx((ce(2, 0) + ce(1, 0)) / 2)


def test_label_smoothing_mixes_in_the_mean_over_classes():
    smoothed = 0.8 * ce(2, 0) + 0.2 * (ce(2, 0) + ce(0, 2)) / 2
    smoothed_2 = 0.8 * ce(1, 0) + 0.2 * (ce(1, 0) + ce(0, 1)) / 2
    assert value(CrossEntropy(label_smoothing=0.2)) == pytest.approx((smoothed + smoothed_2) / 2)


def test_inverse_frequency_weights_average_one_over_the_classes():
    loss = ClassWeighted("inverse")
    weights = (0.5, 1.5)  # 1/3 and 1, scaled to average 1
    expected = (weights[0] * ce(2, 0) + weights[1] * ce(1, 0)) / sum(weights)
    assert value(loss) == pytest.approx(expected)
    assert loss.weight.tolist() == pytest.approx(weights)


def test_effective_number_weights_follow_cui_et_al():
    loss = ClassWeighted("effective_number", beta=0.5)
    effective = ((1 - 0.5**3) / 0.5, (1 - 0.5**1) / 0.5)  # 1.75 and 1 images' worth
    raw = (1 / effective[0], 1 / effective[1])
    weights = tuple(2 * w / sum(raw) for w in raw)
    expected = (weights[0] * ce(2, 0) + weights[1] * ce(1, 0)) / sum(weights)
    assert value(loss) == pytest.approx(expected)


def test_logit_adjustment_adds_tau_times_the_log_prior_while_training():
    prior = (0.75, 0.25)
    first = ce(2 + log(prior[0]), log(prior[1]))
    second = ce(1 + log(prior[1]), log(prior[0]))
    loss = LogitAdjusted(tau=1.0)
    assert value(loss) == pytest.approx((first + second) / 2)
    loss.eval()  # evaluated on the raw logits
    assert loss(LOGITS, LABELS).item() == pytest.approx((ce(2, 0) + ce(1, 0)) / 2)


def test_balanced_softmax_adds_the_log_count():
    first = ce(2 + log(3), log(1))
    second = ce(1 + log(1), log(3))
    assert value(BalancedSoftmax()) == pytest.approx((first + second) / 2)


def smoothed_value(
    adjusted: tuple, smooth: float, toward: tuple, weights: tuple = (1.0, 1.0)
) -> float:
    """The batch's weighted mean loss by hand: each image's adjusted logits against its one-hot
    target with a share `smooth` moved to `toward`, times its class's weight."""
    total = 0.0
    for (first, second), label, weight in zip(adjusted, (0, 1), weights):
        target = [(1 - smooth) * (k == label) + smooth * toward[k] for k in (0, 1)]
        total += weight * (target[0] * ce(first, second) + target[1] * ce(second, first))
    return total / sum(weights)


def test_class_weights_weigh_each_image_by_its_own_class_smoothed_share_included():
    inverse = (0.5, 1.5)  # inverse frequency of COUNTS, scaled to average 1
    expected = smoothed_value(((2, 0), (0, 1)), 0.2, (0.5, 0.5), weights=inverse)
    assert value(ClassWeighted("inverse", label_smoothing=0.2)) == pytest.approx(expected)


def test_logit_adjusted_smoothing_moves_its_share_toward_the_adjusted_prior():
    toward = (0.75**2 / (0.75**2 + 0.25**2), 0.25**2 / (0.75**2 + 0.25**2))  # prior^τ, τ = 2
    adjusted = ((2 + 2 * log(0.75), 2 * log(0.25)), (2 * log(0.75), 1 + 2 * log(0.25)))
    expected = smoothed_value(adjusted, 0.1, toward)
    assert value(LogitAdjusted(tau=2.0, label_smoothing=0.1)) == pytest.approx(expected)


def test_balanced_softmax_smoothing_moves_its_share_toward_the_prior():
    adjusted = ((2 + log(3), 0.0), (log(3), 1.0))
    expected = smoothed_value(adjusted, 0.2, (0.75, 0.25))
    assert value(BalancedSoftmax(label_smoothing=0.2)) == pytest.approx(expected)


def optimal_logits(loss, counts: torch.Tensor, label: int) -> torch.Tensor:
    """The raw logits that minimise the loss (fitted to `counts`) for one image of `label`."""
    loss.fit(counts)
    logits = torch.zeros(1, len(counts), requires_grad=True)
    optimiser = torch.optim.LBFGS([logits], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value = loss.train()(logits, torch.tensor([label]))
        value.backward()
        return value

    optimiser.step(closure)
    return logits.detach()


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogitAdjusted(tau=1.0, label_smoothing=0.15),
        lambda: LogitAdjusted(tau=1.5, label_smoothing=0.15),
        lambda: BalancedSoftmax(label_smoothing=0.15),
        lambda: ClassWeighted("inverse", label_smoothing=0.15),
        lambda: LDAM(drw_epoch=0, label_smoothing=0.15),
    ],
)
def test_smoothed_adjusted_or_weighted_losses_still_teach_each_image_its_own_class(make):
    """Trained to the optimum, a common class's image must come out as that class, not as the
    rarest (as smoothing toward uniform targets makes the prior-adjusted losses, and weighing
    each class's smoothed share by its class weight makes the weighted ones)."""
    counts = torch.tensor([5000, 3000, 10, 2])
    for label in range(len(counts)):
        assert optimal_logits(make(), counts, label).argmax().item() == label


def test_ldam_lowers_the_true_logit_by_its_margin_and_reweights_from_drw_epoch():
    counts = torch.tensor([16, 1])  # n^(-1/4): 0.5 and 1, so margins 0.25 and 0.5
    loss = LDAM(max_margin=0.5, scale=2.0, drw_epoch=1, beta=0.5)
    plain = (ce(2 * (2 - 0.25), 0) + ce(2 * (1 - 0.5), 0)) / 2
    assert value(loss, counts) == pytest.approx(plain)
    loss.set_epoch(1)
    effective = ((1 - 0.5**16) / 0.5, 1.0)
    raw = (1 / effective[0], 1 / effective[1])
    weights = tuple(2 * w / sum(raw) for w in raw)
    deferred = (weights[0] * ce(3.5, 0) + weights[1] * ce(1, 0)) / sum(weights)
    assert loss(LOGITS, LABELS).item() == pytest.approx(deferred)


def test_focal_loss_scales_each_image_by_one_minus_p_to_the_gamma():
    p_first, p_second = 1 / (1 + exp(-2)), 1 / (1 + exp(-1))
    expected = ((1 - p_first) ** 2 * -log(p_first) + (1 - p_second) ** 2 * -log(p_second)) / 2
    assert value(Focal(gamma=2.0)) == pytest.approx(expected)
    assert value(Focal(gamma=0.0)) == pytest.approx(value(CrossEntropy()))


def test_a_class_absent_from_training_weighs_nothing_and_breaks_nothing():
    loss = ClassWeighted("inverse")
    loss.fit(torch.tensor([3, 0, 1]))
    assert loss.weight[1] == 0
    adjusted = LogitAdjusted()
    adjusted.fit(torch.tensor([3, 0, 1]))
    logits = torch.zeros(2, 3)
    assert torch.isfinite(adjusted.train()(logits, torch.tensor([0, 2])))


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: LogitAdjusted(tau=-1), "loss.tau=-1"),
        (lambda: ClassWeighted("effective_number", beta=1.0), "loss.beta=1.0"),
        (lambda: ClassWeighted("square_root"), "loss.weighting='square_root'"),
        (lambda: Focal(gamma=-0.5), "loss.gamma=-0.5"),
        (lambda: CrossEntropy(label_smoothing=1.0), "loss.label_smoothing=1.0"),
        (lambda: LDAM(drw_epoch=-1), "loss.drw_epoch=-1"),
    ],
)
def test_a_setting_out_of_range_is_refused_naming_it(make, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        make()


def test_class_weights_from_balancing_and_a_weighted_loss_are_not_both_applied():
    with pytest.raises(ConfigError, match="balancing=class_weights and loss=ClassWeighted"):
        ClassWeighted().fit(COUNTS, class_weights=torch.tensor([0.5, 1.5]))


ALL_LOSSES = [
    lambda: CrossEntropy(label_smoothing=0.1),
    lambda: ClassWeighted("effective_number", beta=0.9),
    lambda: LogitAdjusted(tau=1.0),
    lambda: BalancedSoftmax(),
    lambda: LDAM(drw_epoch=0),
    lambda: Focal(gamma=2.0),
]


@pytest.mark.parametrize("make", ALL_LOSSES)
def test_every_loss_takes_a_mixed_batchs_soft_targets_one_hot_ones_as_the_labels(make):
    loss = make()
    loss.fit(torch.tensor([3, 1, 2]))
    loss.train()
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 0, 2])
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    assert loss(logits, one_hot).item() == pytest.approx(loss(logits, labels).item(), rel=1e-5)
    # Half of each image's target on another class: the mean of the two losses, by weight.
    other = labels.roll(1)
    mixed = 0.5 * one_hot + 0.5 * torch.nn.functional.one_hot(other, 3).float()
    both = torch.cat([loss.per_sample(logits, labels), loss.per_sample(logits, other)])
    weights = torch.cat([loss.sample_weight(labels), loss.sample_weight(other)])
    assert loss(logits, mixed).item() == pytest.approx(
        (both.sum() / weights.sum()).item(), rel=1e-5
    )


@pytest.mark.parametrize(
    "option",
    ["cross_entropy", "class_weighted", "logit_adjusted", "balanced_softmax", "ldam_drw", "focal"],
)
def test_every_option_of_the_loss_group_builds_inside_the_model(compose, option):
    model = build(compose(f"loss={option}").model)
    assert type(model.loss).__name__ == build(compose(f"loss={option}").loss).__class__.__name__


def test_a_run_trains_with_ldam_and_records_the_loss_it_used(compose, tiny_run_overrides):
    cfg = compose(
        *tiny_run_overrides, "loss=ldam_drw", "loss.drw_epoch=1", "tracking.log_model=false"
    )
    result = train(cfg)
    run = mlflow.MlflowClient(cfg.tracking.tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["loss._target_"] == "fersweep.imbalance.losses.LDAM"
    assert run.data.params["loss.drw_epoch"] == "1"
    assert "model.loss._target_" not in run.data.params  # recorded once, under the key that sets it
