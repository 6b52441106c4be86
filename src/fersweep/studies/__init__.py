"""The study storage, below the tasks: Optuna's storage opened for a URL (SQLite or
PostgreSQL, with its heartbeat), the locks that make one worker at a time create or finish a
study, and the gRPC proxy that puts one connection pool in front of PostgreSQL for many
workers (`storage`, `proxy`, `proxy_server`)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna


@contextmanager
def experimental_features() -> Iterator[None]:
    """Optuna's experimental features, used on purpose (heartbeats, stale-trial retries, the
    gRPC proxy, enqueued trials, metric names): their ExperimentalWarning not passed on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
