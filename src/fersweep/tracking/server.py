"""The team's MLflow tracking server: a PostgreSQL backend store, artifacts served through the
server (`mlflow-artifacts:/`), optionally MLflow's basic-auth app.

`conf/server.yaml` configures it; `make db` creates its databases, `make tracking-server` runs
it. What it runs is plain `mlflow server` (`TrackingServer.command`), so it can be started
without fersweep too (README, "On many machines").
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg
import requests
from psycopg import sql
from sqlalchemy.engine import make_url

from fersweep.errors import ConfigError, FersweepError

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


def hide_password(url: str) -> str:
    """A database URL fit to print: its password, if any, as ***."""
    return make_url(url).render_as_string(hide_password=True)


def answers(server_url: str, timeout: float) -> bool:
    """Whether the MLflow server at `server_url` answers its /health check now."""
    try:
        return requests.get(f"{server_url.rstrip('/')}/health", timeout=timeout).ok
    except requests.RequestException:
        return False


def free_port() -> int:
    """A port nobody listens on now, for a server of one's own (tests, bench)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen, seconds: float = 30) -> None:
    """Stop a server started by `TrackingServer.start` and its worker processes."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_until_stopped(command: list[str], env: Mapping[str, str]) -> int:
    """Run a server in the foreground, in a process group of its own; SIGTERM (a service
    manager, a container's stop) or Ctrl-C stops that whole group: the server and the workers
    it started, which would otherwise be left answering on the port. Returns its exit status."""
    process = subprocess.Popen(command, env=env, start_new_session=True)

    def forward(number: int, _frame) -> None:
        with_group(process, number)

    handlers = {
        number: signal.signal(number, forward) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        return process.wait()
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        end_group(process)


def with_group(process: subprocess.Popen, number: int) -> bool:
    """Send a signal to the process's group; False once nothing of it is left."""
    try:
        os.killpg(process.pid, number)
        return True
    except ProcessLookupError:
        return False


def end_group(process: subprocess.Popen, seconds: float = 10) -> None:
    """Whatever of the group outlived its leader: asked to stop, then killed."""
    deadline = time.monotonic() + seconds
    if with_group(process, signal.SIGTERM):
        while with_group(process, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        with_group(process, signal.SIGKILL)
    if process.poll() is None:
        process.wait()


def create_database(url: str) -> bool:
    """CREATE DATABASE for a postgresql:// URL if it does not exist; True if it was created."""
    name = make_url(url).database
    with maintenance_connection(url) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if found.fetchone():
            return False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(url: str) -> None:
    """DROP DATABASE for a postgresql:// URL (a benchmark's own, once it is done)."""
    name = sql.Identifier(make_url(url).database)
    with maintenance_connection(url) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def maintenance_connection(url: str) -> psycopg.Connection:
    """A connection to the `postgres` database of the server that `url` names."""
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    try:
        return psycopg.connect(
            admin.render_as_string(hide_password=False), connect_timeout=10, autocommit=True
        )
    except psycopg.OperationalError as error:
        raise FersweepError(
            f"PostgreSQL at {hide_password(url)} cannot be reached: "
            + " ".join(line.strip() for line in str(error).splitlines())
        ) from error
