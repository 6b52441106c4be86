"""Where Optuna keeps a study, how workers take turns creating trials, and heartbeats."""

from __future__ import annotations

import fcntl
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from fersweep.errors import ConfigError
from fersweep.services.postgres import hide_password
from fersweep.studies import experimental_features
from fersweep.studies.proxy import ProxiedStorage, open_proxy

StudyStorage = RDBStorage | ProxiedStorage
_OPEN: dict[tuple[str, int, int], StudyStorage] = {}  # one engine (or channel) per process and URL


def open_storage(url: str, heartbeat_seconds: int, max_retry: int) -> StudyStorage:
    """An RDB storage (SQLite file or any SQLAlchemy URL, e.g. PostgreSQL) with heartbeats:
    a trial whose worker stops beating is failed and re-queued up to `max_retry` times. A
    grpc://host:port URL is the storage proxy in front of one (its heartbeat interval)."""
    key = (url, heartbeat_seconds, max_retry)
    if key in _OPEN:
        return _OPEN[key]
    if url.startswith("grpc://"):
        _OPEN[key] = open_proxy(url, heartbeat_seconds, max_retry)
        return _OPEN[key]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        with experimental_features(), _one_at_a_time(url):
            storage = RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=heartbeat_seconds,
                grace_period=heartbeat_seconds * 3,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry),
            )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise ConfigError(
            f"sweep.storage={hide_password(url)}: cannot be opened ({error})"
        ) from error
    _OPEN[key] = storage
    return storage


@contextmanager
def _one_at_a_time(url: str) -> Iterator[None]:
    """Workers on several machines that open a new PostgreSQL database at the same moment would
    each create Optuna's tables (and one fail on the other's): they take turns."""
    if not url.startswith("postgresql"):
        yield
        return
    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, **_engine_kwargs(url)
    )
    try:
        with _advisory_lock(engine, "fersweep: creating the Optuna schema"):
            yield
    finally:
        engine.dispose()


@contextmanager
def _advisory_lock(engine: sqlalchemy.Engine, name: str) -> Iterator[None]:
    """A PostgreSQL advisory lock named `name`, held on one connection of `engine`."""
    key = zlib.crc32(name.encode())
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def _engine_kwargs(url: str) -> dict:
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {}


@contextmanager
def storage_lock(storage: StudyStorage, name: str) -> Iterator[None]:
    """A lock shared by every worker of a study: a PostgreSQL advisory lock across machines
    (through the storage proxy, held there for its clients), a file lock beside a SQLite
    database on one machine."""
    if isinstance(storage, ProxiedStorage):
        with storage.lock(name):
            yield
        return
    url = str(storage.engine.url)
    if url.startswith("postgresql"):
        with _advisory_lock(storage.engine, name):
            yield
        return
    database = storage.engine.url.database
    lock_path = Path(database).with_suffix(".lock") if database else Path("/tmp/fersweep.lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def heartbeat(storage: StudyStorage, trial: optuna.Trial) -> Iterator[None]:
    """Record the trial's heartbeat every interval while it runs (study.optimize does this for
    its own trials; fersweep's workers ask and tell so they can count trials exactly)."""
    stop = threading.Event()
    interval = storage.get_heartbeat_interval()
    trial_id = trial._trial_id

    def beat() -> None:
        while not stop.wait(interval):
            storage.record_heartbeat(trial_id)

    storage.record_heartbeat(trial_id)
    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def counted_trials(study: optuna.Study) -> int:
    """Trials that use up the budget: every trial that has started, except those failed by a
    lost heartbeat and re-queued (their retry takes their place)."""
    trials = study.get_trials(deepcopy=False)
    started = sum(t.state != optuna.trial.TrialState.WAITING for t in trials)
    retried = sum("failed_trial" in t.system_attrs for t in trials)
    return started - retried
