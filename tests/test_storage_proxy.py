"""The study storage through Optuna's gRPC proxy (`make grpc-proxy`, sweep.storage=grpc://):
trials, heartbeats and the study's lock work as they do on PostgreSQL itself, a lost worker's
trial is failed and retried, a job that dies holding the lock lets go of it, and a proxy that
is not there, or disagrees on the heartbeat, stops the sweep at start naming the key."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from fersweep.errors import ConfigError
from fersweep.services.processes import free_port
from fersweep.studies.proxy import ProxiedStorage
from fersweep.studies.storage import heartbeat, open_storage, storage_lock
from fersweep.tasks.sweep import run_sweep
from tests.conftest import PROJECT_ROOT, record_faults
from tests.test_sweep import definition, make_sweep, runs_by_kind

pytestmark = pytest.mark.postgres


def study_through(url: str, heartbeat_seconds: int = 1) -> optuna.Study:
    storage = open_storage(url, heartbeat_seconds, max_retry=1)
    assert isinstance(storage, ProxiedStorage)
    return optuna.create_study(study_name="s", storage=storage, direction="maximize")


def test_a_trial_that_beats_lives_and_one_whose_worker_went_silent_is_failed_and_retried(
    storage_proxy, postgres_database
):
    study = study_through(storage_proxy(postgres_database, heartbeat_seconds=1))
    beating, silent = study.ask(), study.ask()
    study._storage.record_heartbeat(silent._trial_id)  # once, then silence
    with heartbeat(study._storage, beating):
        time.sleep(4)  # past the grace period (3 heartbeats) for the silent one
        optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[beating.number] == TrialState.RUNNING
    assert states[silent.number] == TrialState.FAIL
    (retry,) = [
        t for t in study.get_trials() if t.system_attrs.get("failed_trial") == silent.number
    ]
    assert retry.state == TrialState.WAITING  # re-queued, as on PostgreSQL directly
    direct = optuna.load_study(study_name="s", storage=postgres_database)
    assert [t.state for t in direct.get_trials()] == [t.state for t in study.get_trials()]
    record_faults("faults injected")


HOLD_THE_LOCK = """
import sys, time
from fersweep.studies.storage import open_storage, storage_lock
with storage_lock(open_storage(sys.argv[1], 30, max_retry=1), "study"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_workers_take_turns_under_the_study_lock_and_a_job_killed_holding_it_lets_go(
    storage_proxy, postgres_database
):
    url = storage_proxy(postgres_database)
    storage = open_storage(url, 30, max_retry=1)
    events: list[str] = []

    def hold() -> None:
        with storage_lock(storage, "study"):
            events.append("in")
            time.sleep(0.3)
            events.append("out")

    assert within(20)(hold)
    threads = [threading.Thread(target=hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert events == ["in", "out"] * 4  # never two inside at once
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, url], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    assert not within(2)(hold)  # the live holder keeps it
    holder.kill()  # as a node lost under the job
    holder.wait()
    assert within(10)(hold), "the killed job's lock was never let go"
    record_faults("faults injected")


def within(seconds: float):
    """Runs a function in a thread; whether it returned within `seconds`."""

    def run(function) -> bool:
        thread = threading.Thread(target=function, daemon=True)
        thread.start()
        thread.join(seconds)
        return not thread.is_alive()

    return run


def test_a_sweep_through_the_proxy_keeps_its_study_in_postgresql_and_its_runs_in_mlflow(
    tmp_path, sweep_overrides, storage_proxy, postgres_database
):
    path = definition(tmp_path, arms={"original": {"overrides": ["balancing=none"]}})
    url = storage_proxy(postgres_database, heartbeat_seconds=5)  # sweeps/tiny.yaml's
    sweep = make_sweep(path, sweep_overrides, trials=2, storage=url)
    run_sweep(sweep)
    study = optuna.load_study(study_name="tiny-original", storage=postgres_database)
    assert [t.number for t in study.trials] == [0, 1]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert len(runs_by_kind(sweep, "trial")) == 2


def test_a_proxy_that_is_not_there_or_disagrees_on_the_heartbeat_stops_at_start(
    storage_proxy, postgres_database
):
    with pytest.raises(ConfigError, match=r"sweep.storage=grpc://127.0.0.1:\d+: no storage proxy"):
        open_storage(f"grpc://127.0.0.1:{free_port()}", 30, max_retry=1)
    with pytest.raises(ConfigError, match="sweep.storage=grpc://nohost: expected grpc://host:port"):
        open_storage("grpc://nohost", 30, max_retry=1)
    url = storage_proxy(postgres_database, heartbeat_seconds=30)
    with pytest.raises(ConfigError, match="sweep.heartbeat_seconds=5, but the storage proxy"):
        open_storage(url, 5, max_retry=1)
    record_faults("bad settings", 3)


def test_fersweep_grpc_proxy_serves_the_database_named_in_conf_server_yaml(postgres_database):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "fersweep.cli",
        "grpc-proxy",
        f"proxy.storage={postgres_database}",
        f"proxy.port={port}",
        "proxy.heartbeat_seconds=7",
    ]
    proxy = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    try:
        assert proxy.stdout.readline().startswith(
            f"Optuna storage proxy on grpc://127.0.0.1:{port}"
        )
        study = study_through(f"grpc://127.0.0.1:{port}", heartbeat_seconds=7)
        study.set_user_attr("written", "through the proxy")
        direct = optuna.load_study(study_name="s", storage=postgres_database)
        assert direct.user_attrs == {"written": "through the proxy"}  # in the database
    finally:
        proxy.terminate()
        proxy.wait(30)


def test_the_proxy_starts_without_loading_the_trainer_or_mlflow():
    # A proxy is started once per sweep on a login node: it needs Optuna and the database,
    # not Lightning, torch or MLflow (seconds each to import on a small machine).
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, fersweep.cli, fersweep.studies.proxy_server; "
            "print(sorted({'lightning', 'torch', 'mlflow'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
    )
    assert loaded.stdout.strip() == "[]"
