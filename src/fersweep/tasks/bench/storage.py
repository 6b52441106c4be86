"""The study storage measured: one sweep's study on PostgreSQL itself and through the gRPC
storage proxy (make grpc-proxy), with each number of workers: trials per hour, and how many
connections the study's database held (every worker its own pool, or the proxy's alone)."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from fersweep.config.bench_schemas import BenchStorage
from fersweep.config.compose import compose_config
from fersweep.services.postgres import create_database, drop_database, maintenance_connection
from fersweep.services.processes import free_port
from fersweep.studies.proxy_server import StorageProxy
from fersweep.tasks.bench.sweeps import timed_sweep, without_pruning
from fersweep.tasks.sweep import Sweep

HEARTBEAT_SECONDS = 30  # the proxy's and the workers' (they must agree), direct or not


def bench_storage(
    config_dir: Path, settings: BenchStorage, overrides: list[str]
) -> dict[str, dict[str, float]]:
    """Each number of workers, directly and through the proxy, in alternating turns (so a drift
    in the machine's speed is shared); each turn its own fresh database."""
    postgres = compose_config(config_dir, config_name="server").postgres
    stamp = time.strftime("%Y%m%d_%H%M%S")
    turns = [
        (route, workers)
        for index, workers in enumerate(settings.workers)
        for route in (("direct", "proxy") if index % 2 == 0 else ("proxy", "direct"))
    ]
    rates: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="fersweep-bench-storage-") as folder:
        for route, workers in turns:
            database = f"{postgres}/fersweep_bench_{route}_{workers}_{stamp}"
            create_database(database)
            try:
                with _study_storage(route, database) as storage, counting(database) as counts:
                    sweep = _sweep(config_dir, settings, overrides, storage, workers, folder)
                    rates[f"{route}_{workers}_workers"] = {
                        "route": route,
                        "workers": workers,
                        **timed_sweep(sweep),
                    }
                rates[f"{route}_{workers}_workers"].update(counts)
            finally:
                drop_database(database)
    return rates


@contextmanager
def _study_storage(route: str, database: str) -> Iterator[str]:
    """sweep.storage for the turn: the database, or a proxy in front of it, in this process."""
    if route == "direct":
        yield database
        return
    port = free_port()
    with StorageProxy(database, "127.0.0.1", port, 64, HEARTBEAT_SECONDS).running():
        yield f"grpc://127.0.0.1:{port}"


def _sweep(
    config_dir: Path,
    settings: BenchStorage,
    overrides: list[str],
    storage: str,
    workers: int,
    folder: str,
) -> Sweep:
    sweep = Sweep.compose(
        config_dir,
        [
            f"sweeps@sweep={settings.definition}",
            f"sweep.name=bench-storage-{workers}-{time.strftime('%H%M%S')}",
            f"sweep.workers={workers}",
            f"sweep.storage={storage}",
            f"sweep.heartbeat_seconds={HEARTBEAT_SECONDS}",  # the proxy's, on both routes
            *overrides,
            *settings.overrides,
            f"tracking.tracking_uri=sqlite:///{folder}/mlflow.db",
            f"tracking.artifact_root={folder}/artifacts",
            "tracking.experiment=fersweep-bench-storage",
            "trainer.enable_progress_bar=false",
        ],
    )
    return without_pruning(sweep)


@contextmanager
def counting(database: str, every: float = 0.25) -> Iterator[dict[str, float]]:
    """The database's connections (pg_stat_activity, this counter's own left out), sampled
    while the block runs: their peak and mean."""
    name = make_url(database).database
    counts: list[int] = []
    done = threading.Event()

    def sample() -> None:
        with maintenance_connection(database) as connection:
            while not done.wait(every):
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
                ).fetchone()
                counts.append(row[0])

    thread = threading.Thread(target=sample, name="connection-counter", daemon=True)
    thread.start()
    summary: dict[str, float] = {}
    try:
        yield summary
    finally:
        done.set()
        thread.join()
        summary.update(
            peak_connections=max(counts, default=0),
            mean_connections=sum(counts) / len(counts) if counts else 0.0,
        )
