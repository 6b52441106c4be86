"""The team's MLflow tracking server: a PostgreSQL backend store, artifacts served through the
server (`mlflow-artifacts:/`), optionally MLflow's basic-auth app.

`conf/server.yaml` configures it; `make db` creates its databases, `make tracking-server` runs
it. What it runs is plain `mlflow server` (`TrackingServer.command`), so it can be started
without fersweep too (README, "On many machines").
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

from fersweep.errors import ConfigError, FersweepError
from fersweep.services.postgres import create_database, hide_password
from fersweep.services.processes import run_until_stopped, stop

AUTH_SECRETS = ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")


class TrackingServer:
    """`mlflow server` with the settings of conf/server.yaml (see the comments there)."""

    def __init__(
        self,
        host: str,
        port: int,
        backend_store: str,
        artifacts_destination: str,
        workers: int,
        auth: bool,
        auth_database: str,
        allowed_hosts: str | None,
        job_execution: bool,
        databases: Mapping[str, str],
    ) -> None:
        if not 0 < port < 65536:
            raise ConfigError(f"server.port={port}: must be between 1 and 65535")
        if workers < 1:
            raise ConfigError(f"server.workers={workers}: must be at least 1")
        self.host, self.port, self.workers = host, port, workers
        self.backend_store, self.artifacts_destination = backend_store, artifacts_destination
        self.auth, self.auth_database = auth, auth_database
        self.allowed_hosts, self.job_execution = allowed_hosts, job_execution
        self.databases = dict(databases)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def command(self) -> list[str]:
        """The `mlflow server` command line; no credential is ever part of it."""
        command = [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", self.backend_store,
            "--serve-artifacts", "--artifacts-destination", self.artifacts_destination,
            "--host", self.host, "--port", str(self.port), "--workers", str(self.workers),
        ]  # fmt: skip
        if self.allowed_hosts:
            command += ["--allowed-hosts", self.allowed_hosts]
        if self.auth:
            command += ["--app-name", "basic-auth"]
        return command

    # --- databases ------------------------------------------------------------------------------

    def ensure_databases(self) -> dict[str, bool]:
        """Create the PostgreSQL databases the setup uses (MLflow's store, the auth app's users
        when auth is on, the Optuna studies) where missing: each URL, and whether it was made."""
        urls = [self.backend_store, *self.databases.values()]
        if self.auth:
            urls.append(self.auth_database)
        return {url: create_database(url) for url in urls if url.startswith("postgresql")}

    # --- running --------------------------------------------------------------------------------

    def environment(self, folder: Path) -> dict[str, str]:
        """The server's environment: the auth app's settings file (written to `folder`, no
        secrets in it: those come from MLflow's own environment variables)."""
        env = {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": str(self.job_execution).lower(),
        }
        if self.auth:
            missing = [name for name in AUTH_SECRETS if not os.environ.get(name)]
            if missing:
                raise ConfigError(
                    f"server.auth=true: set {' and '.join(missing)} in the environment "
                    "(MLflow reads the admin's password and the CSRF key from there)"
                )
            ini = folder / "basic_auth.ini"
            ini.write_text(
                "[mlflow]\n"
                "default_permission = READ\n"
                f"database_uri = {self.auth_database}\n"
                "admin_username = admin\n"  # MLFLOW_AUTH_ADMIN_USERNAME wins where set
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            )
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        return env

    def run(self) -> int:
        """Create the databases, then serve in the foreground until stopped (Ctrl-C)."""
        for url, created in self.ensure_databases().items():
            if created:
                print(f"created database {hide_password(url)}")
        self._refuse_taken_port()
        with tempfile.TemporaryDirectory(prefix="fersweep-server-") as folder:
            env = self.environment(Path(folder))
            print(" ".join(self.command()))
            print(f"MLFLOW_TRACKING_URI={self.url}")
            return run_until_stopped(self.command(), env)

    @contextmanager
    def running(self, log: Path, ready_seconds: float = 120) -> Iterator[TrackingServer]:
        """The server in the background while the block runs (tests, bench); stopped after."""
        self.ensure_databases()
        self._refuse_taken_port()
        with tempfile.TemporaryDirectory(prefix="fersweep-server-") as folder:
            process = self.start(Path(folder), log)
            try:
                self.wait_ready(process, log, ready_seconds)
                yield self
            finally:
                stop(process)

    def start(self, folder: Path, log: Path) -> subprocess.Popen:
        with log.open("a") as handle:
            return subprocess.Popen(
                self.command(),
                env=self.environment(folder),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers stop with it (stop() signals the group)
            )

    def wait_ready(self, process: subprocess.Popen, log: Path, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise FersweepError(f"mlflow server stopped at start:\n{tail}")
            if self.healthy():
                return
            time.sleep(0.5)
        stop(process)
        raise FersweepError(f"mlflow server at {self.url} not ready after {seconds:g} s")

    def healthy(self) -> bool:
        return answers(self.url, timeout=2)

    def _refuse_taken_port(self) -> None:
        if self.healthy():
            raise FersweepError(
                f"server.port={self.port}: a server already answers at {self.url} "
                "(use it, or pick another port)"
            )


def answers(server_url: str, timeout: float) -> bool:
    """Whether the MLflow server at `server_url` answers its /health check now."""
    try:
        return requests.get(f"{server_url.rstrip('/')}/health", timeout=timeout).ok
    except requests.RequestException:
        return False
