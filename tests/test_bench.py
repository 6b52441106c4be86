"""`make bench`'s measurements run on tiny data and give numbers that add up (their speed is
what `make bench` itself reports, on the real data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fersweep.config.bench_schemas import BenchServing, BenchSweepParts
from fersweep.tasks.bench.finetune import bench_finetune
from fersweep.tasks.bench.measure import bench_face_step, machine, steps_rate
from fersweep.tasks.bench.parts import bench_sweep_parts
from fersweep.tasks.bench.serving import bench_serving
from tests.conftest import CONFIG_DIR


def test_every_result_names_the_cpu_and_the_kernels_torch_picked_for_it():
    # Speeds, and the last digits of float results, compare only on the same CPU and kernels.
    info = machine()
    assert info["cpu_capability"] in {"NO AVX", "DEFAULT", "AVX2", "AVX512", "SVE256", "ZVECTOR", "VSX"}
    assert isinstance(info["cpu_model"], str)
    assert info["cpu_threads"] >= 1


def test_the_face_step_section_times_the_cold_pass_both_ways_and_the_detectors_share(
    compose, tiny_run_overrides
):
    cfg = compose(*tiny_run_overrides, "face=mtcnn")
    measured = bench_face_step(cfg, images=12)
    assert measured["images"] == 12 and measured["detector"] == "Mtcnn"
    assert measured["images_per_s"] > 0 and measured["all_threads_each_images_per_s"] > 0
    assert measured["speed_up"] == pytest.approx(
        measured["images_per_s"] / measured["all_threads_each_images_per_s"]
    )
    assert 0 < measured["detection_share"] < 1


def test_the_finetune_section_times_each_phase_in_lightning_a_bare_loop_and_with_the_memo(
    compose, tiny_run_overrides
):
    cfg = compose(
        *(o for o in tiny_run_overrides if not o.startswith("model.")),  # the CNN's
        "data.preprocess.size=64",
        "model=mini_xception",
        "model.net.freeze=backbone",
        "model.net.unfreeze_at_epoch=2",  # two epochs a phase, the first of each warms up
        "model.net.frozen_after_thaw=2",
        "model.net.backbone_lr=1.0e-4",
    )
    measured = bench_finetune(cfg, bare_batches=2)
    assert measured["train_images_per_epoch"] > 0
    for phase in ("frozen", "thawed"):
        row = measured[phase]
        assert row["lightning_images_per_s"] > 0 and len(row["bare_loop_before_after"]) == 2
        assert row["bare_loop_images_per_s"] == pytest.approx(
            np.mean(row["bare_loop_before_after"])
        )
        assert row["lightning_over_bare"] == pytest.approx(
            row["lightning_images_per_s"] / row["bare_loop_images_per_s"]
        )
        assert row["memo_speed_up"] == pytest.approx(
            row["lightning_memo_images_per_s"] / row["lightning_images_per_s"]
        )
    assert measured["frozen_memo_mb"] == cfg.model.net.frozen_memo_mb > 0


@pytest.mark.parametrize("setting, during", [("warn", True), (True, True), (False, False)])
def test_the_bare_loop_steps_under_the_trainers_deterministic_setting_and_then_gives_it_back(
    compose, tiny_run_overrides, setting, during
):
    # The same work as Lightning's step: its trainer turns torch's deterministic algorithms on
    # (and fersweep's trainers turn their NaN fill of new tensors off, as the bare loop does).
    cfg = compose(*tiny_run_overrides, f"trainer.deterministic={setting}")
    seen = []

    class Recording(torch.nn.Linear):
        def forward(self, x):
            seen.append(torch.are_deterministic_algorithms_enabled())
            return super().forward(x.float().flatten(1))

    net = Recording(4, 2)
    images, labels = torch.zeros(8, 1, 2, 2, dtype=torch.uint8), torch.zeros(8, dtype=torch.long)
    before = torch.are_deterministic_algorithms_enabled()
    rate = steps_rate(net, torch.optim.SGD(net.parameters()), images, labels, 4, 2, cfg, warmup=1)
    assert rate > 0 and seen == [during] * 3
    assert torch.are_deterministic_algorithms_enabled() == before


def test_the_serving_section_asks_fersweep_serve_one_image_and_a_batch_a_request(
    compose, tiny_run_overrides
):
    cfg = compose(*tiny_run_overrides, "trainer.max_epochs=1")
    measured = bench_serving(cfg, BenchServing(images=6, concurrency=2, batch=4, workers=[1, 2]))
    for workers in ("workers_1", "workers_2"):
        single, batch = measured[workers]["single"], measured[workers]["batch"]
        assert single["requests"] == 6 and single["images"] == 6
        assert batch["requests"] == 2 and batch["images"] == 6
        for row in (single, batch):
            assert row["images_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]


def test_the_sweep_parts_section_accounts_for_the_whole_sweep_by_part(
    tmp_path, compose, tiny_run_overrides
):
    settings = BenchSweepParts("tiny", ["sweep.trials=1", "sweep.gate.folds=2"])
    overrides = [f"paths.root_dir={tmp_path}", *tiny_run_overrides]
    measured = bench_sweep_parts(CONFIG_DIR, settings, overrides)
    parts = measured["by_part_seconds"]
    assert set(parts) == {"trial", "best", "gate/candidate", "gate/hog_svm"}
    assert [r["part"] for r in measured["runs"]].count("trial") == 2  # one an arm
    # One process here: the parts' runs do not overlap, and with the time outside every run
    # and before the first they make up the whole.
    accounted = sum(parts.values()) + measured["before_first_run_seconds"]
    assert accounted + measured["outside_runs_seconds"] == pytest.approx(measured["seconds"])
    assert 0 < accounted <= measured["seconds"] and measured["outside_runs_seconds"] >= 0
    for row in measured["runs"]:
        assert 0 <= row["first_epoch_seconds"] <= row["training_seconds"] <= row["seconds"]
        if row["part"] in ("trial", "best", "gate/candidate"):  # by epochs, then the test
            assert row["after_training_seconds"] > 0
        if row["part"] == "best":  # it tested its trial's own weights: no training of its own
            assert row["training_seconds"] == 0
