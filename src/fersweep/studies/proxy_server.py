"""`fersweep grpc-proxy`: Optuna's gRPC storage proxy and fersweep's coordination (heartbeats,
locks; see proxy) on one port, in front of the studies' database."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc
import optuna
from optuna.storages import RDBStorage
from optuna.storages._grpc.server import make_server  # what run_grpc_proxy_server builds

from fersweep.services.postgres import hide_password
from fersweep.studies.proxy import SERVICE, decode, encode
from fersweep.studies.storage import open_storage, storage_lock


class StorageProxy:
    """`fersweep grpc-proxy` (conf/server.yaml, `proxy`): Optuna's storage service and
    fersweep's coordination on one port, in front of the study database `storage`."""

    def __init__(
        self, storage: str, host: str, port: int, threads: int, heartbeat_seconds: int
    ) -> None:
        self.url, self.host, self.port = storage, host, port
        self.threads, self.heartbeat_seconds = threads, heartbeat_seconds

    @contextmanager
    def running(self) -> Iterator[grpc.Server]:
        """The proxy serving in this process's threads until the block ends."""
        # The retry callback runs in the workers (their sweep.max_retry), not here.
        backend = open_storage(self.url, self.heartbeat_seconds, max_retry=0)
        # Threads wait on locks for their clients: more threads than jobs, or a job holding
        # a lock could find no thread left for its own requests.
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="grpc-proxy")
        server = make_server(optuna.storages.get_storage(backend), self.host, self.port, pool)
        server.add_generic_rpc_handlers((Coordination(backend).handler(),))
        server.start()
        try:
            yield server
        finally:
            server.stop(grace=5).wait()
            pool.shutdown(wait=False, cancel_futures=True)

    def run(self) -> int:
        with self.running() as server:
            print(
                f"Optuna storage proxy on grpc://{self.host}:{self.port} for "
                f"{hide_password(self.url)}; sweeps: sweep.storage=grpc://{self.host}:{self.port}",
                flush=True,
            )
            server.wait_for_termination()
        return 0


class Coordination:
    """What the proxy serves beside Optuna's storage service."""

    def __init__(self, backend: RDBStorage) -> None:
        self.backend = backend
        self._local = defaultdict(threading.Lock)  # clients of this proxy queue here, not in SQL
        self._guard = threading.Lock()

    def handler(self) -> grpc.GenericRpcHandler:
        unary = grpc.unary_unary_rpc_method_handler
        codec = {"request_deserializer": decode, "response_serializer": encode}
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "HeartbeatInterval": unary(
                    lambda _, __: self.backend.get_heartbeat_interval(), **codec
                ),
                "RecordHeartbeat": unary(self._record_heartbeat, **codec),
                "StaleTrials": unary(self._stale_trials, **codec),
                "Lock": grpc.stream_stream_rpc_method_handler(self._lock, **codec),
            },
        )

    def _record_heartbeat(self, trial_id: int, _context) -> int:
        self.backend.record_heartbeat(trial_id)
        return trial_id

    def _stale_trials(self, study_id: int, _context) -> list[int]:
        return self.backend._get_stale_trial_ids(study_id)

    def _lock(self, requests: Iterator[str], context: grpc.ServicerContext) -> Iterator[str]:
        """Held from the first message until the client ends the stream or is gone; a
        PostgreSQL advisory lock as well, so clients of other proxies (or of the database
        itself) are kept out too."""
        name = next(requests)
        with self._guard:
            local = self._local[name]
        with local, storage_lock(self.backend, name):
            yield "held"
            try:
                for _ in requests:  # the client sends nothing more; this returns when it lets go
                    pass
            except grpc.RpcError:  # ... or when its connection is gone
                pass
