"""One short training run on a tiny data set leaves a complete MLflow run behind."""

import json
import math
import os
import re
import subprocess
import sys

import lightning.pytorch as pl
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import torch.utils.deterministic

import fersweep.tasks.fitting
from fersweep import EMOTIONS
from fersweep.cli import main as cli
from fersweep.config.compose import build, compose_config
from fersweep.errors import ConfigError
from fersweep.tasks.fitting import quiet_library
from fersweep.tasks.train import train
from tests.conftest import (
    CONFIG_DIR,
    PROJECT_ROOT,
    tiny_overrides,
    write_legend,
    write_legend_dataset,
)


@pytest.fixture(scope="module")
def finished_run(module_workspace):
    _, overrides = module_workspace
    overrides = [*overrides, "tracking.system_metrics_seconds=1"]  # a tiny run lasts seconds
    cfg = compose_config(CONFIG_DIR, overrides)
    results = train(cfg, overrides=overrides).metrics
    mlflow.set_tracking_uri(cfg.tracking.tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    return results, run, client, cfg


def artifact_paths(client, run_id, path=""):
    for item in client.list_artifacts(run_id, path):
        yield from artifact_paths(client, run_id, item.path) if item.is_dir else [item.path]


def test_the_run_holds_config_metrics_per_epoch_and_test_scores(finished_run):
    results, run, client, cfg = finished_run
    assert run.info.status == "FINISHED" and run.data.tags["state"] == "complete"
    assert run.data.params["model.net.filters"] == "32"
    assert run.data.params["optimizer._target_"] == "torch.optim.Adadelta"
    assert int(run.data.params["model.n_parameters"]) > 0
    for metric in ("train/loss", "val/loss", "val/macro_f1"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [0, 1]
    for metric in ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy"):
        assert run.data.metrics[f"test/{metric}"] == pytest.approx(results[f"test/{metric}"])
    assert 0 <= results["test/macro_f1"] <= 1
    assert run.data.tags["data_fingerprint"] and "git_commit" in run.data.tags


def test_the_run_records_its_machine_load_and_what_it_was_trained_validated_and_tested_on(
    finished_run,
):
    _, run, client, _ = finished_run
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(
        run.data.metrics
    )
    inputs = {}  # by what the split was used for
    for given in run.inputs.dataset_inputs:
        tags = {tag.key: tag.value for tag in given.tags}
        inputs[tags["mlflow.data.context"]] = (given.dataset, tags)
    assert set(inputs) == {"training", "validation", "test"}
    split = client.download_artifacts(run.info.run_id, "data/split.csv")
    counts = pd.read_csv(split)["split"].value_counts()
    for context, split_name in (("training", "train"), ("validation", "val"), ("test", "test")):
        dataset, tags = inputs[context]
        assert tags["data_fingerprint"] == run.data.tags["data_fingerprint"]
        assert int(tags["images"]) == counts[split_name]
        assert dataset.name.endswith(f"-{split_name}") and dataset.digest
    assert len({dataset.digest for dataset, _ in inputs.values()}) == 3


def test_the_run_holds_reports_confusion_matrices_split_and_data_report(finished_run):
    _, run, client, _ = finished_run
    paths = set(artifact_paths(client, run.info.run_id))
    assert {
        "config/config.yaml",
        "data/data_report.json",
        "data/split.csv",
        "data/class_counts.json",
        "data/class_distribution_original.png",
        "data/samples.png",
        "evaluation/test_report.csv",
        "evaluation/test_report.json",
        "evaluation/test_report.txt",
        "evaluation/test_confusion.json",
        "evaluation/test_confusion_counts.png",
        "evaluation/test_confusion_normalised.png",
    } <= paths
    confusion = json.loads(
        mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/evaluation/test_confusion.json")
    )
    split = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/data/split.csv").splitlines()
    test_rows = sum(line.endswith(",test") for line in split)
    assert sum(map(sum, confusion["counts"])) == test_rows
    assert split[0] == "file,identity,emotion,split"
    # Each tested image's prediction, with its person: folds can be pooled again from MLflow.
    predictions = mlflow.artifacts.load_text(
        f"runs:/{run.info.run_id}/evaluation/test_predictions.csv"
    ).splitlines()
    assert predictions[0].startswith("file,person,truth,predicted,p_anger")
    assert len(predictions) - 1 == test_rows


def test_the_logged_models_load_the_network_and_the_raw_image_classifier(finished_run):
    _, run, _, _ = finished_run
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    by_name = {m.name: m for m in models}
    assert set(by_name) == {"model", "classifier"}
    assert {m.source_run_id for m in models} == {run.info.run_id}
    network = by_name["model"].model_uri
    assert mlflow.models.get_model_info(network).signature is not None
    net = mlflow.pytorch.load_model(network)
    assert net(torch.zeros(3, 1, 32, 32, dtype=torch.uint8)).shape == (3, 8)
    classifier = mlflow.pyfunc.load_model(by_name["classifier"].model_uri)
    inputs = classifier.metadata.get_input_schema()
    assert inputs.input_names() == ["image", "name"] and inputs.required_input_names() == ["image"]
    assert classifier.metadata.get_params_schema().to_dict()[0]["name"] == "whole_image"


def test_class_weights_reach_the_loss_as_inverse_frequencies_of_the_training_split(
    compose, tmp_path
):
    # Happiness and neutral have three times the people (and images) of the other emotions.
    root = tmp_path / "skewed"
    rows = write_legend_dataset(root, people_per_emotion=6)
    common = ("happiness", "neutral")
    kept = [(f, e) for f, e in rows if e in common or int(f.split("_")[2]) < 2]
    write_legend(root / "legend.csv", kept)
    cfg = compose(*tiny_overrides(root), "balancing=class_weights")
    datamodule, module = build(cfg.data), build(cfg.model)
    with quiet_library():
        trainer = pl.Trainer(
            fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False
        )
        trainer.fit(module, datamodule=datamodule)

    labels = datamodule.image_set.labels[datamodule.indices("train")]
    counts = np.bincount(labels, minlength=8)
    present = counts > 0  # an emotion absent from the training split weighs nothing
    expected = np.zeros(8)
    expected[present] = len(labels) / (present.sum() * counts[present])
    assert module.loss.weight.numpy() == pytest.approx(expected)
    rare, frequent = EMOTIONS.index("anger"), EMOTIONS.index("happiness")
    assert counts[frequent] >= 2 * counts[rare]  # the split kept the skew
    assert module.loss.weight[rare] >= 2 * module.loss.weight[frequent]


def test_without_class_weights_the_loss_is_unweighted(compose, tiny_run_overrides):
    cfg = compose(*tiny_run_overrides)
    datamodule, module = build(cfg.data), build(cfg.model)
    with quiet_library():
        trainer = pl.Trainer(
            fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False
        )
        trainer.fit(module, datamodule=datamodule)
    assert module.loss.weight.numel() == 0  # no weights


def test_a_run_without_a_validation_split_trains_and_tests(compose, tiny_run_overrides):
    """The seed report kept no validation images: val_fraction=0 with nothing monitoring it."""
    cfg = compose(*tiny_run_overrides, "data.split.val_fraction=0", "callbacks=last_epoch")
    metrics = train(cfg).metrics
    assert 0 <= metrics["test/accuracy"] <= 1
    assert math.isnan(metrics["val/macro_f1_best"])  # never validated


def test_no_validation_split_while_callbacks_monitor_it_is_refused_at_start(
    compose, tiny_run_overrides
):
    cfg = compose(*tiny_run_overrides, "data.split.val_fraction=0")
    with pytest.raises(ConfigError, match="data.split.val_fraction=0"):
        train(cfg)


def test_the_framing_check_scores_the_test_images_framed_both_ways_beside_the_originals(
    compose, tiny_dataset
):
    cfg = compose(*tiny_overrides(tiny_dataset), "reframe=both", "face=haar")
    result = train(cfg)
    assert list(result.reframed) == ["reframed", "tightened"] and result.face_step
    client = mlflow.MlflowClient(cfg.tracking.tracking_uri)
    run = client.get_run(result.run_id)
    paths = set(artifact_paths(client, result.run_id))
    for name, framed in result.reframed.items():
        assert np.array_equal(framed.truth, result.truth)
        assert 0 <= result.metrics[f"test_{name}/macro_f1"] <= 1
        assert run.data.metrics[f"test_{name}/macro_f1"] == pytest.approx(
            result.metrics[f"test_{name}/macro_f1"]
        )
        recorded = {f"evaluation/test_{name}_{part}" for part in ("report.csv", "samples.png")}
        assert recorded <= paths
    # Two different pictures of each image: the two directions are not one scored twice.
    larger, tighter = result.reframed.values()
    assert not np.allclose(larger.probabilities, tighter.probabilities)
    # What the face step did to every image is in the data report and the split table.
    assert run.data.metrics["data/face_step/no_face_found"] == run.data.metrics["data/images_used"]
    split = client.download_artifacts(result.run_id, "data/split.csv")
    assert {"face_step", "face_x", "face_width"} <= set(open(split).readline().strip().split(","))


def test_the_framing_check_refuses_the_seed_protocols_augmented_test_split(compose, tiny_dataset):
    cfg = compose(*tiny_overrides(tiny_dataset), "reframe=default", "experiment=seed_balanced")
    with pytest.raises(ConfigError, match="reframe: the framing check reframes original test"):
        build(cfg.data)


def test_the_missions_command_trains_without_a_warning_and_records_the_full_key(
    tmp_path, tiny_run_overrides
):
    """`python train.py model.filters=32`, as users were promised: it runs, prints no warning
    of any kind, and the run records the setting under the key the configs name."""
    command = [sys.executable, "train.py", "model.filters=8", f"paths.root_dir={tmp_path}"]
    tiny = "+trainer.log_every_n_steps=1"  # 6 tiny batches would draw Lightning's note
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "FERSWEEP_DATA")}
    result = subprocess.run(
        [*command, *tiny_run_overrides, tiny],
        cwd=PROJECT_ROOT,
        env=env,  # as a user runs it
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    assert not re.search(r"Warning:|\.py:\d+: ", printed), printed[-3000:]  # no Python warning
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("fersweep").experiment_id])
    assert run.data.params["model.net.filters"] == "8"
    assert "model.net.filters=8" in run.data.tags["overrides"]


def test_fersweep_train_takes_the_overrides_train_py_takes(
    tmp_path, tiny_run_overrides, capsys, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = [
        f"paths.root_dir={tmp_path}",
        *tiny_run_overrides,
        "model.filters=8",
    ]  # a short name
    code = cli(["--config-dir", str(CONFIG_DIR), "train", *overrides])
    assert code == 0 and "test/macro_f1 = " in capsys.readouterr().out
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("fersweep").experiment_id])
    assert run.info.status == "FINISHED" and "test/macro_f1" in run.data.metrics
    assert run.data.params["model.net.filters"] == "8"


def test_a_run_leaves_torchs_memory_unfilled_and_trains_exactly_as_with_the_nan_fill(
    compose, tiny_run_overrides, monkeypatch
):
    # With deterministic algorithms on, torch fills each new tensor with NaN: a debugging aid
    # that cost a CPU training step 13-25%. fersweep turns it off; a run trains the same.
    cfg = compose(*tiny_run_overrides, "tracking.log_model=false")
    unfilled = train(cfg)
    assert torch.are_deterministic_algorithms_enabled()  # trainer.deterministic: warn
    assert not torch.utils.deterministic.fill_uninitialized_memory
    monkeypatch.setattr(fersweep.tasks.fitting, "without_nan_fill", lambda: None)
    monkeypatch.setattr(torch.utils.deterministic, "fill_uninitialized_memory", True)
    filled = train(cfg)
    assert filled.metrics == unfilled.metrics
