"""The bench task, `make bench`: speed where it matters, measured on the real data, printed, saved
and tracked. `measure`: one machine's measurements; `sweeps`: sweeps and tracking stores;
`results`: the table and the records."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fersweep.config.bench_schemas import BenchDefinition
from fersweep.config.compose import build, compose_config, compose_definition
from fersweep.errors import exits_cleanly
from fersweep.evaluation.console import console
from fersweep.tasks.bench.finetune import bench_finetune
from fersweep.tasks.bench.measure import (
    bench_end_to_end,
    bench_face_step,
    bench_preprocessing,
    bench_training,
    face_box_agreement,
    machine,
)
from fersweep.tasks.bench.parts import bench_sweep_parts
from fersweep.tasks.bench.results import save, show
from fersweep.tasks.bench.serving import bench_serving
from fersweep.tasks.bench.storage import bench_storage
from fersweep.tasks.bench.sweeps import bench_sweep, bench_tracking


def run_bench(root: Path, settings: BenchDefinition, overrides: list[str]) -> dict[str, Any]:
    config_dir = root / "conf"
    compose = lambda *extra: compose_config(config_dir, [*overrides, *extra])  # noqa: E731
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": {**dataclasses.asdict(settings), "overrides": overrides},
    }
    sections = settings.sections
    if "preprocessing" in sections:
        results["preprocessing"] = bench_preprocessing(compose("balancing=balanced"))
    if "face_crop" in sections:
        face_cfg = compose("balancing=balanced", "face=haar")
        results["face_crop"] = {
            **bench_preprocessing(face_cfg),
            **face_box_agreement(face_cfg, settings.face_agreement_images),
        }
    if "face_step" in sections:
        face_cfg = compose(*settings.face_step.overrides)
        results["face_step"] = bench_face_step(face_cfg, settings.face_step.images)
    if "finetune" in sections:
        results["finetune"] = bench_finetune(
            compose(*settings.face_step.overrides, *settings.finetune.overrides),
            settings.finetune.bare_batches,
        )
    if "serving" in sections:
        results["serving"] = bench_serving(
            compose(
                *settings.face_step.overrides,
                *settings.finetune.overrides,
                *settings.serving.overrides,
                "tracking.experiment=fersweep-bench",
            ),
            settings.serving,
        )
    if "training" in sections:
        results["training"] = {
            model: bench_training(compose(f"model={model}", "balancing=balanced"), settings)
            for model in settings.models
        }
    if "end_to_end" in sections:
        results["end_to_end"] = bench_end_to_end(
            compose(*settings.end_to_end, "tracking.experiment=fersweep-bench")
        )
    if "sweep" in sections:
        results["sweep"] = bench_sweep(config_dir, settings, overrides)
    if "sweep_parts" in sections:
        results["sweep_parts"] = bench_sweep_parts(config_dir, settings.sweep_parts, overrides)
    if "tracking" in sections:
        results["tracking"] = bench_tracking(config_dir, settings.tracking, overrides)
    if "storage" in sections:
        results["storage"] = bench_storage(config_dir, settings.storage, overrides)
    return results


@exits_cleanly
def main(root: Path, argv: list[str]) -> None:
    cfg, overrides = compose_definition(root / "conf", "bench", argv)
    settings: BenchDefinition = OmegaConf.to_object(cfg.bench)
    # Built first: MLflow exports the URI each measurement's store sets as MLFLOW_TRACKING_URI,
    # which the tracking config would otherwise read afterwards.
    tracker = build(cfg.tracking, experiment="fersweep-bench")
    results = run_bench(root, settings, overrides)
    show(results)
    console.print(f"results: {save(results, root, settings, tracker)}")
