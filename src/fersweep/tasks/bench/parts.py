"""Where a sweep's time goes: one sweep run as `make sweep` runs it, its time split into parts
from what its MLflow runs recorded: the work before the first run (the face step's pass, the
data set-up), each trial, the re-training of each arm's best, and each arm of the champion
gate; within a run, its training (to its last epoch) and what follows it (the test, post-hoc
steps and framings, recording and model logging)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run

from fersweep.config.bench_schemas import BenchSweepParts
from fersweep.tasks.sweep import Sweep, run_sweep

PARTS = ("trial", "best", "gate")  # the runs that train, by their `kind` tag
EPOCH_METRIC = "train/loss"  # logged at the end of every training epoch


def bench_sweep_parts(
    config_dir: Path, settings: BenchSweepParts, overrides: list[str]
) -> dict[str, Any]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    sweep = Sweep.compose(
        config_dir,
        [
            f"sweeps@sweep={settings.definition}",
            f"sweep.name=bench-parts-{stamp}",
            "sweep.registered_model=fersweep-bench",  # the user's champion stays where it is
            *overrides,
            *settings.overrides,
            f"tracking.experiment=fersweep-bench-parts-{stamp}",
            "trainer.enable_progress_bar=false",
        ],
    )
    start = time.time()
    run_sweep(sweep)
    end = time.time()
    tracking = sweep.base_config().tracking
    client = mlflow.MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    return {"definition": settings.definition, **time_split(client, runs, start, end)}


def time_split(client: mlflow.MlflowClient, runs: list[Run], start: float, end: float):
    """The sweep's seconds by part (see the module's docstring); `start` and `end` in seconds
    since the epoch, as the sweep ran."""
    leaves = sorted(
        (run for run in runs if run.data.tags.get("kind") in PARTS),
        key=lambda run: run.info.start_time,
    )
    timed = [run_times(client, run) for run in leaves]
    by_part: dict[str, float] = defaultdict(float)
    for row in timed:
        by_part[row["part"]] += row["seconds"]
    first = min((run.info.start_time for run in leaves), default=end * 1000) / 1000
    in_runs = sum(row["seconds"] for row in timed)
    return {
        "seconds": end - start,
        "before_first_run_seconds": first - start,
        "by_part_seconds": dict(by_part),
        "outside_runs_seconds": end - start - in_runs - (first - start),
        "runs": timed,
    }


def run_times(client: mlflow.MlflowClient, run: Run) -> dict[str, Any]:
    """A run's seconds, and its training's (start to its last epoch) where it trains by epoch;
    a gate run's part is its arm (`gate/candidate`)."""
    info, tags = run.info, run.data.tags
    seconds = ((info.end_time or info.start_time) - info.start_time) / 1000
    epochs = client.get_metric_history(info.run_id, EPOCH_METRIC)
    trained = (max(m.timestamp for m in epochs) - info.start_time) / 1000 if epochs else seconds
    part = f"gate/{tags.get('arm', '?')}" if tags["kind"] == "gate" else tags["kind"]
    return {
        "part": part,
        "run": info.run_name,
        "status": info.status,
        "seconds": seconds,
        "training_seconds": trained,
        "after_training_seconds": seconds - trained,
    }
