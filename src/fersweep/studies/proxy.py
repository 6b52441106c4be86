"""The jobs' side of the study storage proxy (proxy_server): `sweep.storage=grpc://host:port`
makes many jobs talk to one proxy, and only the proxy holds PostgreSQL connections.

Optuna's proxy carries studies and trials but neither heartbeats nor locks, and fersweep's
workers need both (a lost trial is failed by its missing heartbeat and retried; trials are asked
under the study's lock so the count is exact). The proxy serves them beside Optuna's service:
heartbeats go to the database's own heartbeat table (Optuna's staleness rule), and a lock is
held for as long as its client keeps a stream open, so a job that dies lets go of it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from optuna.storages import GrpcStorageProxy, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # what Optuna's fail_stale_trials asks for

from fersweep.errors import ConfigError
from fersweep.studies import experimental_features

SERVICE = "fersweep.Coordination"


def encode(value: Any) -> bytes:  # gRPC takes a message decoded as None for a broken one
    return json.dumps(value).encode()


def decode(data: bytes) -> Any:
    return json.loads(data)


class ProxiedStorage(GrpcStorageProxy, BaseHeartbeat):
    """The workers' side: Optuna's gRPC client, with heartbeats and locks through the proxy,
    so Optuna's own fail_stale_trials and fersweep's storage_lock work as on PostgreSQL."""

    def __init__(self, *, host: str, port: int, max_retry: int) -> None:
        with experimental_features():
            super().__init__(host=host, port=port)
            self._retry = RetryHeartbeatStaleTrialCallback(max_retry)

    def _setup(self) -> None:
        super()._setup()
        call: Callable = self._channel.unary_unary
        codec = {"request_serializer": encode, "response_deserializer": decode}
        self._interval = call(f"/{SERVICE}/HeartbeatInterval", **codec)
        self._heartbeat = call(f"/{SERVICE}/RecordHeartbeat", **codec)
        self._stale = call(f"/{SERVICE}/StaleTrials", **codec)
        self._lock = self._channel.stream_stream(f"/{SERVICE}/Lock", **codec)
        self._known_interval: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in ("_interval", "_heartbeat", "_stale", "_lock"):
            state.pop(name)
        return state

    def record_heartbeat(self, trial_id: int) -> None:
        self._heartbeat(trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self._stale(study_id)

    def get_heartbeat_interval(self) -> int | None:
        # The proxy's (its database judges staleness by it), fixed while it runs: Optuna asks
        # before every trial and every stale-trial check, the proxy is asked once.
        if self._known_interval is None:
            self._known_interval = self._interval({})
        return self._known_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable | None:
        return self._retry

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Held while the stream is open: the proxy lets go when it ends or this process dies."""
        release = threading.Event()

        def requests() -> Iterator[str]:
            yield name
            release.wait()

        responses = self._lock(requests())
        next(responses)
        try:
            yield
        finally:
            release.set()
            for _ in responses:  # returns once the proxy has let go
                pass


def open_proxy(url: str, heartbeat_seconds: int, max_retry: int) -> ProxiedStorage:
    """The client of the proxy at grpc://host:port, once it answers; its database judges a
    trial lost by the proxy's heartbeat interval, which must be the sweep's."""
    address = url.removeprefix("grpc://").rstrip("/")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"sweep.storage={url}: expected grpc://host:port")
    storage = ProxiedStorage(host=host, port=int(port), max_retry=max_retry)
    try:
        storage.wait_server_ready(timeout=10)
    except ConnectionError as error:
        raise ConfigError(
            f"sweep.storage={url}: no storage proxy answers there (start one beside "
            "PostgreSQL: make grpc-proxy)"
        ) from error
    if (interval := storage.get_heartbeat_interval()) != heartbeat_seconds:
        raise ConfigError(
            f"sweep.heartbeat_seconds={heartbeat_seconds}, but the storage proxy at {url} judges "
            f"heartbeats every {interval} s (its proxy.heartbeat_seconds): make them agree"
        )
    return storage
