"""Post-hoc steps: logit offsets fitted on validation for macro F1, the training prior taken out
with a strength chosen on validation, flip test-time augmentation, and all of them travelling
inside the logged classifier."""

import json

import mlflow
import numpy as np
import pytest
import torch

from fersweep.errors import ConfigError
from fersweep.evaluation.metrics import macro_f1
from fersweep.imbalance.posthoc import (
    PostHoc,
    apply_offsets,
    fit_offsets,
    fit_prior_tau,
    probabilities,
)
from fersweep.tasks.train import train

GRID = np.linspace(-3, 3, 25).tolist()
TAUS = np.linspace(0, 2, 9).tolist()


def biased_scores(rng, truth, classes=3):
    """A classifier that ranks the rare class 2 second when it is right: argmax never says 2."""
    scores = rng.dirichlet(np.ones(classes), len(truth)) * 0.05
    scores[np.arange(len(truth)), truth] += 0.5
    scores[truth == 2, 0] += 0.6  # class 0 edges out the true class 2
    return scores / scores.sum(axis=1, keepdims=True)


def test_offsets_fitted_on_validation_lift_a_class_the_network_never_predicts():
    rng = np.random.default_rng(0)
    truth = rng.choice(3, 600, p=[0.6, 0.3, 0.1])
    validation, test = biased_scores(rng, truth[:300]), biased_scores(rng, truth[300:])
    offsets = fit_offsets(truth[:300], validation, GRID, rounds=3)
    before = macro_f1(truth[300:], test.argmax(axis=1))
    after = macro_f1(truth[300:], apply_offsets(test, offsets).argmax(axis=1))
    assert (test.argmax(axis=1) == 2).sum() == 0
    assert offsets[2] > offsets[0] and after > before + 0.2


def test_offsets_stay_at_zero_when_there_is_nothing_to_gain_and_none_changes_nothing():
    truth = np.arange(90) % 3
    perfect = np.eye(3)[truth] * 0.8 + 0.2 / 3
    assert fit_offsets(truth, perfect, GRID, rounds=3) == pytest.approx(np.zeros(3))
    assert apply_offsets(perfect, None) is perfect
    shifted = apply_offsets(perfect, np.array([0.0, 0.0, 10.0]))
    assert shifted.sum(axis=1) == pytest.approx(1) and (shifted.argmax(axis=1) == 2).all()


def test_the_prior_taken_out_lifts_a_class_the_network_never_predicts_with_one_number():
    rng = np.random.default_rng(0)
    truth = rng.choice(3, 600, p=[0.6, 0.3, 0.1])
    validation, test = biased_scores(rng, truth[:300]), biased_scores(rng, truth[300:])
    tau, offsets = fit_prior_tau(truth[:300], validation, np.array([600, 300, 100]), TAUS)
    log_prior = np.log(np.array([0.6, 0.3, 0.1]))
    assert tau > 0 and offsets == pytest.approx(-tau * log_prior)
    before = macro_f1(truth[300:], test.argmax(axis=1))
    after = macro_f1(truth[300:], apply_offsets(test, offsets).argmax(axis=1))
    assert after > before + 0.2


def test_the_prior_stays_out_when_it_does_not_help_and_ties_go_to_the_lighter_change():
    truth = np.arange(90) % 3
    perfect = np.eye(3)[truth] * 0.8 + 0.2 / 3
    tau, offsets = fit_prior_tau(truth, perfect, np.array([10, 10, 10]), TAUS)
    assert tau == 0.0 and offsets == pytest.approx(np.zeros(3))


def test_prior_then_offsets_add_up_and_each_alone_is_what_it_fits():
    rng = np.random.default_rng(2)
    truth = rng.choice(3, 300, p=[0.6, 0.3, 0.1])
    scores, counts = biased_scores(rng, truth), np.array([600, 300, 100])
    tau, prior_only = fit_prior_tau(truth, scores, counts, TAUS)
    assert PostHoc(prior=True, taus=TAUS).fit(truth, scores, counts)[0] == pytest.approx(prior_only)
    both, both_tau = PostHoc(prior=True, offsets=True, grid=GRID, taus=TAUS).fit(
        truth, scores, counts
    )
    rest = fit_offsets(truth, apply_offsets(scores, prior_only), GRID, rounds=3)
    assert both_tau == tau and both == pytest.approx(prior_only + rest)
    assert PostHoc(flip=True).fit(truth, scores, counts) == (None, None)


def test_flip_averages_each_image_with_its_mirror_image():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    images = torch.rand(5, 1, 4, 4)
    with torch.no_grad():
        own = torch.softmax(net(images), dim=1).numpy()
        mirrored = torch.softmax(net(images.flip(-1)), dim=1).numpy()
        assert probabilities(net, images, flip=True).numpy() == pytest.approx((own + mirrored) / 2)
        assert probabilities(net, images, flip=False).numpy() == pytest.approx(own)


def test_posthoc_settings_out_of_range_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match="posthoc.grid"):
        PostHoc(offsets=True, grid=[0.5, 1.0])
    with pytest.raises(ConfigError, match="posthoc.rounds"):
        PostHoc(rounds=0)
    with pytest.raises(ConfigError, match="posthoc.taus"):
        PostHoc(prior=True, taus=[1.0])


def test_offsets_without_a_validation_split_are_refused_before_any_run(compose, tiny_run_overrides):
    cfg = compose(
        *tiny_run_overrides, "posthoc=offsets", "data.split.val_fraction=0", "callbacks=last_epoch"
    )
    with pytest.raises(ConfigError, match="posthoc=offsets.*val_fraction"):
        train(cfg)


def test_flip_and_offsets_travel_inside_the_logged_classifier(compose, tiny_run_overrides):
    cfg = compose(*tiny_run_overrides, "posthoc=flip_offsets")
    result = train(cfg)
    client = mlflow.MlflowClient(cfg.tracking.tracking_uri)
    recorded = json.loads(
        open(client.download_artifacts(result.run_id, "evaluation/posthoc.json")).read()
    )
    assert recorded["flip"] is True and len(recorded["offsets"]) == 8
    run = client.get_run(result.run_id)
    assert "test_plain/macro_f1" in run.data.metrics
    assert result.plain is not None and result.plain.truth.shape == result.outputs.truth.shape

    mlflow.set_tracking_uri(cfg.tracking.tracking_uri)
    served = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/classifier").unwrap_python_model()
    assert served.flip and served.offsets.tolist() == recorded["offsets"]
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 1), dtype=np.uint8)
    batch = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        expected = apply_offsets(
            probabilities(served.net, batch, flip=True).numpy(), np.array(recorded["offsets"])
        )
    assert served.probabilities(images) == pytest.approx(expected, abs=1e-6)


def test_the_prior_step_travels_inside_the_logged_classifier_with_its_tau(
    compose, tiny_run_overrides
):
    cfg = compose(*tiny_run_overrides, "posthoc=flip_prior")
    result = train(cfg)
    client = mlflow.MlflowClient(cfg.tracking.tracking_uri)
    recorded = json.loads(
        open(client.download_artifacts(result.run_id, "evaluation/posthoc.json")).read()
    )
    assert recorded["flip"] is True and recorded["prior_tau"] in TAUS
    mlflow.set_tracking_uri(cfg.tracking.tracking_uri)
    served = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/classifier").unwrap_python_model()
    assert served.offsets.tolist() == pytest.approx(recorded["offsets"])


def test_a_validation_report_after_offsets_fitted_on_it_says_it_is_in_sample(
    compose, tiny_run_overrides, capsys
):
    """As in a sweep trial: offsets fitted on the validation split and scored on it too. The
    printed report says so and shows the network's own score beside it."""
    cfg = compose(
        *tiny_run_overrides, "posthoc=offsets", "eval_split=val", "tracking.log_model=false"
    )
    result = train(cfg)
    printed = " ".join(capsys.readouterr().out.split())
    assert "after offsets fitted on it (in-sample, optimistic)" in printed
    assert "val split, network alone (before post-hoc steps)" in printed
    assert result.plain is not None and result.outputs is not None
