"""Run lifecycle: where runs live, how they start, nest and end, and runs shared by processes."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import mlflow
import submitit
from mlflow.entities import Run
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from mlflow.exceptions import MlflowException

from fersweep.errors import ConfigError, FersweepError
from fersweep.tracking.server import answers

CLASSIFIER_NAME = "classifier"  # the raw-image pyfunc that the registry and `fersweep` use


class Tracker:
    """One MLflow experiment in one store: a SQLite file under mlruns/ unless the URI says
    otherwise. Through a tracking server (`http(s)://`), the server keeps the artifacts too."""

    def __init__(
        self,
        tracking_uri: str,
        artifact_root: str,
        experiment: str,
        log_model: bool,
        system_metrics: bool = False,
        system_metrics_seconds: float = 10.0,
    ) -> None:
        self.tracking_uri, self.artifact_root = tracking_uri, artifact_root
        self.experiment, self.log_model = experiment, log_model
        if system_metrics_seconds <= 0:
            raise ConfigError(
                f"tracking.system_metrics_seconds={system_metrics_seconds}: must be positive"
            )
        self.system_metrics, self.system_metrics_seconds = system_metrics, system_metrics_seconds

    @property
    def through_server(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    def connect(self) -> str:
        """Point MLflow at the store and return the experiment's id, creating it if needed."""
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        if self.through_server and not self.reachable():
            raise FersweepError(
                f"MLflow tracking server {self.tracking_uri} cannot be reached "
                "(MLFLOW_TRACKING_URI): start it with `make tracking-server` or fix the URL"
            )
        mlflow.set_tracking_uri(self.tracking_uri)
        if self.system_metrics:
            mlflow.set_system_metrics_sampling_interval(self.system_metrics_seconds)
            mlflow.set_system_metrics_samples_before_logging(1)
            # one INFO line per run on start and stop is noise in a sweep's output
            logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
        found = mlflow.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return mlflow.create_experiment(self.experiment, artifact_location=self._location())
        except MlflowException:
            # Another worker created it between our lookup and our create.
            return mlflow.get_experiment_by_name(self.experiment).experiment_id

    def _location(self) -> str | None:
        """A tracking server decides where artifacts go (served as mlflow-artifacts:/), so
        every machine writes them through it; an embedded store keeps them under mlruns/."""
        if self.through_server:
            return None
        return Path(self.artifact_root).expanduser().resolve().as_uri()

    def reachable(self, timeout: float = 5.0) -> bool:
        """Whether the store answers now: the server's /health for a tracking server; an
        embedded store (a database URL) is taken to be there."""
        return not self.through_server or answers(self.tracking_uri, timeout)

    def wait_until_reachable(self, minutes: float, poll_seconds: float = 5.0) -> None:
        """Block while the tracking server is down (restarting, say), up to `minutes`."""
        if self.reachable():
            return
        print(
            f"MLflow tracking server {self.tracking_uri} unreachable: waiting up to {minutes:g} min"
        )
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline:
            time.sleep(poll_seconds)
            if self.reachable():
                print(f"MLflow tracking server {self.tracking_uri} is back")
                return
        raise FersweepError(
            f"MLflow tracking server {self.tracking_uri} unreachable for {minutes:g} min "
            "(sweep.tracking_outage_minutes)"
        )

    @contextmanager
    def run(
        self,
        name: str | None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        killed_by: tuple[type[BaseException], ...] = (),
    ) -> Iterator[Run]:
        """An MLflow run that always ends: FINISHED; KILLED (tag state=pruned) when one of
        `killed_by` stops it, as a sweep's pruner does; FAILED with its error otherwise."""
        experiment_id = self.connect()
        active = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=name,
            parent_run_id=parent_run_id,
            nested=mlflow.active_run() is not None,
            tags={**origin_tags(), **(tags or {})},
            log_system_metrics=self.system_metrics,
        )
        try:
            yield active
        except killed_by:
            mlflow.set_tag("state", "pruned")
            mlflow.end_run("KILLED")
            raise
        except BaseException as error:
            # With the store out of reach this cannot be recorded; the run stays RUNNING there
            # until a sweep closes it (sweep._close_runs_of_failed_trials), and the error that
            # stopped the run is the one raised.
            with suppress(MlflowException):
                try:
                    mlflow.set_tags(
                        {"state": "failed", "error": f"{type(error).__name__}: {error}"[:5000]}
                    )
                finally:
                    mlflow.end_run("FAILED")  # leaves the active run even when it cannot record
            raise
        else:
            mlflow.set_tag("state", "complete")
            mlflow.end_run("FINISHED")

    # --- runs that outlive one process (a sweep's parents) ------------------------------------

    def start_detached_run(
        self, name: str, parent_run_id: str | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        """A RUNNING run that is not this process's active run; several workers log under it."""
        experiment_id = self.connect()
        all_tags = {**origin_tags(), **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = mlflow.MlflowClient().create_run(experiment_id, run_name=name, tags=all_tags)
        return run.info.run_id

    def end_detached_run(self, run_id: str, status: str) -> None:
        mlflow.MlflowClient().set_terminated(run_id, status)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        client = mlflow.MlflowClient()
        for key, value in tags.items():
            client.set_tag(run_id, key, value)

    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(mlflow.MlflowClient().get_run(run_id).data.tags)

    def reopen_detached_run(self, run_id: str) -> None:
        """A run that an interrupted sweep ended, RUNNING again while the sweep resumes."""
        if self.run_status(run_id) == "RUNNING":
            return
        client = mlflow.MlflowClient()
        client.update_run(run_id, status="RUNNING")
        for key in ("state", "interrupted"):  # what the interruption said no longer holds
            if key in self.run_tags(run_id):
                client.delete_tag(run_id, key)

    def fail_detached_run(self, run_id: str, reason: str) -> None:
        client = mlflow.MlflowClient()
        client.set_tag(run_id, "state", "failed")
        client.set_tag(run_id, "error", reason)
        client.set_terminated(run_id, "FAILED")

    def finished_runs(self, tags: Mapping[str, str]) -> list[Run]:
        """The experiment's FINISHED runs that carry all these tags, newest first."""
        experiment_id = self.connect()
        conditions = [f"tags.{key} = '{value}'" for key, value in tags.items()]
        return mlflow.search_runs(
            [experiment_id],
            " and ".join([*conditions, "attributes.status = 'FINISHED'"]),
            order_by=["attributes.start_time DESC"],
            output_format="list",
        )

    def run_status(self, run_id: str) -> str:
        self.connect()
        return mlflow.MlflowClient().get_run(run_id).info.status

    @contextmanager
    def resumed(self, run_id: str) -> Iterator[Run]:
        """Make an existing run the active one for a while, leaving its status as it was."""
        self.connect()
        status = mlflow.get_run(run_id).info.status
        with mlflow.start_run(run_id=run_id) as run:
            yield run
        mlflow.MlflowClient().set_terminated(run_id, status)


def origin_tags() -> dict[str, str]:
    """What made a run: the commit, and the scheduler job (Slurm's, or submitit's local
    executor's) when a job made it."""
    tags = {"git_commit": git_commit()}
    if (job := job_id()) is not None:
        tags["job_id"] = job
    return tags


def job_id() -> str | None:
    """The submitit job this process runs as, or None outside one."""
    try:
        return str(submitit.JobEnvironment().job_id)
    except RuntimeError:
        return None


def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def working_tree_clean() -> bool:
    """Whether the checkout's tracked files are as committed (False outside a checkout), so
    that the commit names the code that runs."""
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return not result.stdout.strip()


@contextmanager
def quiet_downloads() -> Iterator[None]:
    """No artifact progress bars while the block runs (one line per file, 55 for one model)."""
    name = MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
