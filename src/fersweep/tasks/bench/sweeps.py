"""Sweeps measured: trials per hour, and the same sweep through the embedded store and a tracking
server with each number of workers."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from fersweep.config.bench_schemas import BenchDefinition, BenchTracking
from fersweep.config.compose import build, compose_config
from fersweep.services.postgres import drop_database
from fersweep.services.processes import free_port
from fersweep.tasks.sweep import Sweep, run_sweep
from fersweep.tracking.server import TrackingServer


def bench_sweep(
    config_dir: Path, settings: BenchDefinition, overrides: list[str]
) -> dict[str, float]:
    """Finished (complete + pruned) trials per hour of a fixed small sweep, pruned and not."""
    rates = {}
    for label, pruning in (("pruning", True), ("no_pruning", False)):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        sweep = Sweep.compose(
            config_dir,
            [
                f"sweeps@sweep={settings.sweep.definition}",
                f"sweep.name=bench-{label}-{stamp}",
                *overrides,
                *settings.sweep.overrides,
                "tracking.experiment=fersweep-bench",
                "trainer.enable_progress_bar=false",
            ],
        )
        if not pruning:
            sweep = without_pruning(sweep)
        start = time.perf_counter()
        run_sweep(sweep)
        hours = (time.perf_counter() - start) / 3600
        trials = all_trials(sweep)
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        rates[label] = {
            "trials": len(finished),
            "pruned": pruned,
            "trials_per_hour": len(finished) / hours,
        }
    return rates


def bench_tracking(
    config_dir: Path, settings: BenchTracking, overrides: list[str]
) -> dict[str, dict[str, float]]:
    """Trials per hour of one sweep with each number of workers, through the embedded SQLite
    store and through a tracking server (PostgreSQL backend, served artifacts), measured in
    turns (embedded, server, server, embedded, ...) so a drift in the machine's speed is shared.
    The study storage is the same local SQLite file for both; only the MLflow store differs."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    database = f"fersweep_bench_{stamp.replace('-', '_')}"
    server_cfg = compose_config(
        config_dir,
        [
            f"server.port={free_port()}",
            f"server.backend_store=${{postgres}}/{database}",
            *settings.server,
        ],
        config_name="server",
    )
    rates: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="fersweep-bench-") as folder:
        server_cfg.server.artifacts_destination = f"{folder}/served"
        server: TrackingServer = build(server_cfg.server)
        stores = {"embedded": f"sqlite:///{folder}/mlflow.db", "server": server.url}
        turns = [
            (store, workers)
            for index, workers in enumerate(settings.workers)
            for store in (("embedded", "server") if index % 2 == 0 else ("server", "embedded"))
        ]
        with server.running(Path(folder) / "server.log"):
            for store, workers in turns:
                sweep = Sweep.compose(
                    config_dir,
                    [
                        f"sweeps@sweep={settings.definition}",
                        f"sweep.name=bench-tracking-{store}-{workers}-{stamp}",
                        f"sweep.workers={workers}",
                        *overrides,
                        *settings.overrides,
                        f"tracking.tracking_uri={stores[store]}",
                        f"tracking.artifact_root={folder}/artifacts",
                        "tracking.experiment=fersweep-bench-tracking",
                        "trainer.enable_progress_bar=false",
                    ],
                )
                sweep = without_pruning(sweep)
                rates[f"{store}_{workers}_workers"] = {
                    "store": store,
                    "workers": workers,
                    **timed_sweep(sweep),
                }
        drop_database(server.backend_store)
    for workers in settings.workers:
        embedded, through = rates[f"embedded_{workers}_workers"], rates[f"server_{workers}_workers"]
        rates[f"server_cost_{workers}_workers"] = {
            "workers": workers,
            "throughput_cost": 1 - through["trials_per_hour"] / embedded["trials_per_hour"],
        }
    return rates


def timed_sweep(sweep: Sweep) -> dict[str, float]:
    """Trials per hour while the arms' trials ran (first start to last end, every arm), and
    the whole sweep's wall time (with its finish: best retrained, registered, compared)."""
    start = time.perf_counter()
    run_sweep(sweep)
    seconds = time.perf_counter() - start
    trials = all_trials(sweep)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    span = max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)
    return {
        "trials": len(finished),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "trials_per_hour": len(finished) / (span.total_seconds() / 3600),
        "sweep_seconds": seconds,
    }


def all_trials(sweep: Sweep) -> list[optuna.trial.FrozenTrial]:
    """Every arm's trials."""
    return [t for arm in sweep.definition.arms for t in sweep.open_study(arm).trials]


def without_pruning(sweep: Sweep) -> Sweep:
    """The same sweep with every trial run whole (the same work per trial, turn after turn);
    the pruner replaced, not merged: the default one's settings would not fit NopPruner."""
    definition = dataclasses.replace(
        sweep.definition, pruner={"_target_": "optuna.pruners.NopPruner"}
    )
    return dataclasses.replace(sweep, definition=definition)
