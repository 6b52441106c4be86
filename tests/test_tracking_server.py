"""Many machines: one MLflow tracking server (PostgreSQL backend, artifacts served by it) and
sweep workers in separate checkouts that share nothing else but the study's database.

Each test starts a real `mlflow server` on this machine's PostgreSQL (127.0.0.1:5432)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
import requests
from optuna.trial import TrialState

from fersweep import EMOTIONS
from fersweep.config.compose import build, compose_config
from fersweep.errors import ConfigError
from fersweep.services.processes import free_port, stop
from fersweep.studies.storage import counted_trials
from fersweep.tasks.sweep import run_sweep
from fersweep.tracking import Tracker
from fersweep.tracking.server import TrackingServer, answers
from tests.conftest import CONFIG_DIR, PROJECT_ROOT, WEIGHTS, record_faults
from tests.test_reliability import assert_nothing_lost, trial_in_flight, wait_for
from tests.test_sweep import definition, make_sweep, runs_by_kind, sweep_arguments

pytestmark = pytest.mark.postgres

SECRETS = {
    "MLFLOW_AUTH_ADMIN_PASSWORD": "a-test-password-1",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-test-key-2",
}


def server_config(backend: str, artifacts: Path, *overrides: str) -> TrackingServer:
    """conf/server.yaml, as `make tracking-server ARGS=...` composes it."""
    cfg = compose_config(
        CONFIG_DIR,
        [
            f"server.port={free_port()}",
            f"server.backend_store={backend}",
            f"server.artifacts_destination={artifacts}",
            *overrides,
        ],
        config_name="server",
    )
    return build(cfg.server)


@pytest.fixture
def server(tmp_path, new_postgres_database) -> Iterator[TrackingServer]:
    server = server_config(new_postgres_database(), tmp_path / "served")
    with server.running(tmp_path / "server.log"):
        yield server


def checkout(folder: Path) -> Path:
    """What a machine's checkout holds for a sweep: configs, sweep definitions, the entry point
    (the package itself is this environment's)."""
    for name in ("conf", "sweeps"):
        shutil.copytree(PROJECT_ROOT / name, folder / name)
    shutil.copy(PROJECT_ROOT / "sweep.py", folder)
    return folder


def sweep_in(folder: Path, arguments: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "sweep.py", *arguments],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **env},
        stdout=(folder / "sweep.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_workers_in_two_checkouts_share_a_study_and_the_server_keeps_every_artifact(
    tmp_path, server, postgres_database, tiny_run_overrides, monkeypatch
):
    path = definition(tmp_path, arms={"original": {"overrides": ["balancing=none"]}})
    arguments = sweep_arguments(
        path, [*tiny_run_overrides, "trainer.max_epochs=3"], trials=6, storage=postgres_database
    )
    env = {"MLFLOW_TRACKING_URI": server.url}
    machines = [checkout(tmp_path / name) for name in ("machine_a", "machine_b")]
    workers = [sweep_in(folder, arguments, env) for folder in machines]
    for folder, worker in zip(machines, workers):
        assert worker.wait(timeout=600) == 0, (folder / "sweep.log").read_text()[-3000:]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    study = optuna.load_study(study_name="tiny-original", storage=postgres_database)
    assert counted_trials(study) == 6
    sweep = make_sweep(path, [f"paths.root_dir={tmp_path}", *tiny_run_overrides])
    trials = runs_by_kind(sweep, "trial")
    assert len(trials) == len(study.trials)
    assert {run.data.tags["worker_dir"] for run in trials} == {str(m) for m in machines}
    learning_rates = [t.params["optimizer.lr"] for t in study.trials]
    assert len(set(learning_rates)) == len(learning_rates), "two machines proposed the same point"
    client = mlflow.MlflowClient()
    for run in [*trials, *runs_by_kind(sweep, "best")]:
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
        assert client.list_artifacts(run.info.run_id), run.info.run_name
    assert files_under(Path(server.artifacts_destination))
    for folder in machines:
        assert not files_under(folder / "mlruns"), "an artifact was written on a worker's disk"

    elsewhere = tmp_path / "third_machine"
    elsewhere.mkdir()
    image = next((Path(tiny_run_overrides[0].split("=", 1)[1]) / "images").iterdir())
    answer = subprocess.run(
        [
            str(Path(sys.executable).parent / "fersweep"),
            "predict",
            f"images={image}",
            "output=a.csv",
        ],
        cwd=elsewhere,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    (row,) = pd.read_csv(elsewhere / "a.csv").to_dict(orient="records")
    assert row["file"] == str(image) and row["emotion"] in EMOTIONS
    assert files_under(elsewhere) == [elsewhere / "a.csv"]  # the model came from the server


def test_a_sweep_outlives_a_tracking_server_restart_mid_trial(
    tmp_path, new_postgres_database, postgres_database, tiny_run_overrides, monkeypatch
):
    backend = new_postgres_database()
    server = server_config(backend, tmp_path / "served")
    log = tmp_path / "server.log"
    server.ensure_databases()
    process = server.start(tmp_path, log)
    server.wait_ready(process, log, 120)
    path = definition(tmp_path, arms={"original": {"overrides": ["balancing=none"]}})
    overrides = [*tiny_run_overrides, "trainer.max_epochs=6"]
    own = {"trials": 3, "storage": postgres_database, "tracking_outage_minutes": 5}
    env = {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # fail at once rather than retrying for minutes
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    }
    folder = checkout(tmp_path / "machine")
    worker = sweep_in(folder, sweep_arguments(path, overrides, **own), env)
    try:
        in_flight = partial(trial_in_flight, postgres_database, "tiny-original", 0)
        while True:  # the server goes down while a trial runs (the worker frozen meanwhile)
            wait_for(in_flight, 240, "a trial")
            os.killpg(worker.pid, signal.SIGSTOP)
            if victim := in_flight():
                break
            os.killpg(worker.pid, signal.SIGCONT)
        stop(process)
        os.killpg(worker.pid, signal.SIGCONT)
        wait_for(lambda: "unreachable: waiting" in (folder / "sweep.log").read_text(), 120, "wait")
        process = server.start(tmp_path, log)  # back, on the same store and port
        server.wait_ready(process, log, 120)
        assert worker.wait(timeout=600) == 0, (folder / "sweep.log").read_text()[-3000:]

        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        sweep = make_sweep(path, [f"paths.root_dir={tmp_path}", *tiny_run_overrides], **own)
        trials = sweep.open_study("original").trials
        assert trials[victim.number].state == TrialState.FAIL
        assert "unreachable" in trials[victim.number].user_attrs["error"]
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
        assert len(retries) == 1 and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert_nothing_lost(sweep, {}, requested=3)  # Optuna and MLflow agree on every trial
        (failed_run,) = [r for r in runs_by_kind(sweep, "trial") if r.info.status == "FAILED"]
        assert "unreachable" in failed_run.data.tags["error"]
    finally:
        worker.kill()
        stop(process)
    record_faults("faults injected")
    record_faults("trials lost", 0)


UNREACHABLE = "postgresql://postgres@127.0.0.1:1"


@pytest.mark.parametrize(
    "command, env, named",
    [
        (["fersweep", "db"], {"FERSWEEP_POSTGRES": UNREACHABLE}, f"{UNREACHABLE}/mlflow"),
        (["fersweep", "tracking-server"], {"FERSWEEP_POSTGRES": UNREACHABLE}, UNREACHABLE),
        (
            ["sweep.py", f"sweep.storage={UNREACHABLE}/optuna"],
            {"FERSWEEP_WEIGHTS": str(WEIGHTS)},  # its trials may use the pretrained network
            f"{UNREACHABLE}/optuna",
        ),
        (
            ["train.py", "data.root={tiny}"],
            {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"},
            "http://127.0.0.1:1",
        ),
    ],
    ids=["make db", "make tracking-server", "sweep storage", "tracking server down"],
)
def test_an_unreachable_database_or_server_at_start_is_one_line_naming_it(
    tmp_path, tiny_dataset, command, env, named
):
    command = [part.format(tiny=tiny_dataset) for part in command]
    program = [str(Path(sys.executable).parent / command[0])]
    if command[0].endswith(".py"):
        program = [sys.executable, str(PROJECT_ROOT / command[0])]
    result = subprocess.run(
        [*program, *command[1:]],
        cwd=PROJECT_ROOT,  # as `make` runs them
        env={**os.environ, "FERSWEEP_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("fersweep: error")]
    assert len(errors) == 1 and named in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    record_faults("bad settings")


def test_with_basic_auth_a_request_without_credentials_is_refused_and_the_sweep_signs_in(
    tmp_path, new_postgres_database, tiny_run_overrides, monkeypatch
):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    server = server_config(
        new_postgres_database(),
        tmp_path / "served",
        "server.auth=true",
        f"server.auth_database={new_postgres_database()}",
    )
    assert not any(secret in " ".join(server.command()) for secret in SECRETS.values())
    with server.running(tmp_path / "server.log"):
        search = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
        assert requests.get(search, timeout=10).status_code == 401
        signed = ("admin", SECRETS["MLFLOW_AUTH_ADMIN_PASSWORD"])
        assert requests.get(search, auth=signed, timeout=10).status_code == 200

        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", signed[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", signed[1])
        path = definition(tmp_path, arms={"original": {"overrides": ["balancing=none"]}})
        sweep = make_sweep(path, [f"paths.root_dir={tmp_path}", *tiny_run_overrides], trials=1)
        outcome = run_sweep(sweep)
        assert outcome["champion"]["version"] == "1"
        (trial,) = runs_by_kind(sweep, "trial")
        assert trial.info.status == "FINISHED"
    record_faults("requests without credentials refused")


def test_auth_without_its_secrets_in_the_environment_stops_naming_them(tmp_path, monkeypatch):
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    server = server_config(
        "postgresql://postgres@127.0.0.1:5432/none", tmp_path, "server.auth=true"
    )
    with pytest.raises(ConfigError, match="MLFLOW_AUTH_ADMIN_PASSWORD and MLFLOW_FLASK_SERVER"):
        server.environment(tmp_path)
    record_faults("bad settings")


def test_experiments_through_a_server_leave_the_artifact_location_to_it(tmp_path):
    through = Tracker("http://mlflow.example:5000", str(tmp_path / "artifacts"), "x", False)
    embedded = Tracker(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "artifacts"), "x", False)
    assert through._location() is None
    assert embedded._location() == (tmp_path / "artifacts").resolve().as_uri()


def processes_in_group(group: int) -> list[str]:
    listing = subprocess.run(
        ["ps", "-o", "pgid=,args=", "-e"], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.split(None, 1)[1] for line in listing.splitlines() if int(line.split()[0]) == group
    ]


def test_make_ui_starts_the_ui_alone_without_mlflows_job_runner(tmp_path):
    """`mlflow ui` starts a job runner and seven task consumers unless told not to; on a
    2-core machine `make ui` starts the UI and its one web worker only."""
    port = free_port()
    store = f"sqlite:///{tmp_path}/mlflow.db"
    printed = subprocess.run(
        ["make", "-s", "-n", "ui", f"UI_PORT={port}", f"MLFLOW_URI={store}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    command = printed.strip().splitlines()[-1]
    assert "mlflow ui" in command
    ui = subprocess.Popen(
        ["bash", "-c", command], cwd=PROJECT_ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}", timeout=2), 90, "the MLflow UI")
        started = processes_in_group(ui.pid)
        assert not [p for p in started if "huey" in p or "jobs._job_runner" in p], started
        assert sum("uvicorn" in p for p in started) == 1
    finally:
        stop(ui)
