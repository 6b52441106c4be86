"""`make bench`'s measurements run on tiny data and give numbers that add up (their speed is
what `make bench` itself reports, on the real data)."""

from __future__ import annotations

import pytest

from fersweep.tasks.bench.measure import bench_face_step


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
