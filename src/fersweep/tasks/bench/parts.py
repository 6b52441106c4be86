"""Where a sweep's time goes: one sweep run as `make sweep` runs it, its time split into parts
from what its MLflow runs recorded: the work before the first run (the face step's pass, the
data set-up), each trial, each arm's best run (its trial's weights tested, or trained again),
and each arm of the champion gate; within a run, its training (to its last epoch) and what
follows it (the test, post-hoc steps and framings, recording and model logging)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run

from fersweep.config.bench_schemas import BenchSweepParts
from fersweep.tasks.sweep import Sweep, run_sweep
from fersweep.tasks.sweep.finish import WEIGHTS_FROM_RUN_TAG

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
    since the epoch, as the sweep ran. A part's seconds are the wall time its runs covered
    (runs of one part may overlap: the gate's on several processes); outside the runs is what
    no run covered after the first began (the finish between runs, registry, reports)."""
    leaves = sorted(
        (run for run in runs if run.data.tags.get("kind") in PARTS),
        key=lambda run: run.info.start_time,
    )
    timed = [run_times(client, run) for run in leaves]
    by_part: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run, row in zip(leaves, timed):
        by_part[row["part"]].append(_interval(run))
    first = min((run.info.start_time for run in leaves), default=end * 1000) / 1000
    in_runs = _covered([_interval(run) for run in leaves])
    return {
        "seconds": end - start,
        "before_first_run_seconds": first - start,
        "by_part_seconds": {part: _covered(spans) for part, spans in by_part.items()},
        "outside_runs_seconds": end - first - in_runs,
        "runs": timed,
    }


def _interval(run: Run) -> tuple[float, float]:
    return run.info.start_time / 1000, (run.info.end_time or run.info.start_time) / 1000


def _covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of the spans."""
    total, reach = 0.0, float("-inf")
    for low, high in sorted(spans):
        if high > reach:
            total += high - max(low, reach)
            reach = high
    return total


def run_times(client: mlflow.MlflowClient, run: Run) -> dict[str, Any]:
    """A run's seconds, and its training's (start to its last epoch) where it trains by epoch;
    a gate run's part is its arm (`gate/candidate`)."""
    info, tags = run.info, run.data.tags
    seconds = ((info.end_time or info.start_time) - info.start_time) / 1000
    epochs = client.get_metric_history(info.run_id, EPOCH_METRIC)
    trained = (max(m.timestamp for m in epochs) - info.start_time) / 1000 if epochs else seconds
    part = f"gate/{tags.get('arm', '?')}" if tags["kind"] == "gate" else tags["kind"]
    first = (min(m.timestamp for m in epochs) - info.start_time) / 1000 if epochs else seconds
    if WEIGHTS_FROM_RUN_TAG in tags:  # it tested a trial's weights: the curves are the trial's
        trained = first = 0.0
    return {
        "part": part,
        "run": info.run_name,
        "status": info.status,
        "seconds": seconds,
        "first_epoch_seconds": first,  # with the run's data set-up (a cold face step's pass)
        "training_seconds": trained,
        "after_training_seconds": seconds - trained,
    }
