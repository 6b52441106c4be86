"""Sweep workers placed by a scheduler through submitit: jobs of its local executor against one
PostgreSQL study, directly or through the gRPC storage proxy (the trial count exact, job ids on
the trials and runs, the finish once), a job killed mid-trial and submitted again, and settings that cannot work
refused at start. The Slurm executor meets a real Slurm in tests/test_slurm.py."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from optuna.trial import TrialState

import fersweep.tasks.sweep.trials
from fersweep.errors import ConfigError, FersweepError
from fersweep.tasks.sweep import run_sweep
from fersweep.tasks.sweep.finish import finish_once
from fersweep.tasks.sweep.launch import JOB_IDS_TAG, WorkerJob, executor_for, wait_for_finish
from fersweep.tasks.sweep.study import ensure_parent_runs
from tests.conftest import record_faults
from tests.test_reliability import (
    assert_nothing_lost,
    one_arm,
    trial_in_flight,
    wait_for,
    wait_until_failed_for_silence,
)
from tests.test_sweep import TINY, client_for, definition, make_sweep


def launched(path: Path, overrides: list[str], launcher: str, **own) -> object:
    return make_sweep(path, [f"launcher@sweep.launcher={launcher}", *overrides], **own)


@pytest.fixture(params=["postgresql", "grpc-proxy"])
def shared_storage(request, postgres_database, storage_proxy):
    """The jobs' study storage: the PostgreSQL database itself, or the gRPC storage proxy in
    front of it (make grpc-proxy); given the sweep's heartbeat interval, gives sweep.storage."""

    def url(heartbeat_seconds: int) -> str:
        if request.param == "postgresql":
            return postgres_database
        return storage_proxy(postgres_database, heartbeat_seconds)

    return url


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_local_jobs_share_one_postgresql_study_and_the_finish_runs_once(
    tmp_path, sweep_overrides, shared_storage
):
    path = definition(tmp_path, trials=3)
    storage = shared_storage(heartbeat_seconds=5)  # sweeps/tiny.yaml's
    sweep = launched(path, sweep_overrides, "local", storage=storage, **{"launcher.jobs": 2})
    outcome = run_sweep(sweep)
    jobs = set()
    for arm in sweep.definition.arms:
        study = sweep.open_study(arm)
        counted = [t for t in study.trials if t.state.is_finished()]
        assert len(counted) == 3  # exactly the budget, across both jobs
        jobs |= {t.user_attrs["job_id"] for t in counted}
    client = client_for(sweep)
    (sweep_run,) = client.search_runs(
        [client.get_experiment_by_name("fersweep").experiment_id], "tags.kind = 'sweep'"
    )
    assert jobs == set(sweep_run.data.tags[JOB_IDS_TAG].split())  # both jobs took trials
    assert outcome["champion"]["arm"] in sweep.definition.arms  # the finish job's answer
    runs = client.search_runs([sweep_run.info.experiment_id])
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert len([r for r in runs if r.data.tags.get("kind") == "best"]) == 2  # finished once
    trial_runs = [r for r in runs if r.data.tags.get("kind") == "trial"]
    assert {r.data.tags["job_id"] for r in trial_runs} == jobs


@pytest.mark.parametrize(
    "launcher, own, message",
    [
        ("local", {"launcher.jobs": 0}, "sweep.launcher.jobs=0"),
        ("slurm", {}, "sweep.storage=null .* cannot share a local SQLite file"),
        ("slurm", {"storage": "sqlite:///x.db"}, "sweep.storage=sqlite:///x.db"),
    ],
)
def test_settings_that_cannot_work_stop_at_start_naming_the_key(
    sweep_overrides, launcher, own, message
):
    with pytest.raises(ConfigError, match=message):
        launched(TINY, sweep_overrides, launcher, **own)
    record_faults("bad settings")


def test_an_unknown_launcher_is_refused_naming_it(sweep_overrides):
    with pytest.raises(ConfigError, match="Could not find 'launcher/kubernetes'"):
        launched(TINY, sweep_overrides, "kubernetes")
    record_faults("bad settings")


def job_processes(controller_pid: int) -> list[psutil.Process]:
    """A local job's processes: submitit's controller and the task it started."""
    controller = psutil.Process(controller_pid)
    return [controller, *controller.children(recursive=True)]


def signal_job(processes: list[psutil.Process], number: int) -> None:
    for process in processes:
        process.send_signal(number)


def freeze_job_mid_trial(processes: list[psutil.Process], storage: str, study: str):
    """Stop the job's processes while one of its trials runs and return that trial."""
    while True:
        wait_for(lambda: trial_in_flight(storage, study, after=0), 240, "a running trial")
        signal_job(processes, signal.SIGSTOP)
        if running := trial_in_flight(storage, study, after=0):
            return running
        signal_job(processes, signal.SIGCONT)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_job_killed_mid_trial_and_submitted_again_retries_its_trial_and_keeps_the_count(
    tmp_path, sweep_overrides, postgres_database, shared_storage
):
    path = one_arm(tmp_path, heartbeat_seconds=1, max_retry=2)
    storage = shared_storage(heartbeat_seconds=1)
    sweep = launched(path, sweep_overrides, "local", storage=storage, trials=3)
    sweep.check()
    sweep_run_id = ensure_parent_runs(sweep)
    executor = executor_for(sweep.definition.launcher, name="fersweep-test", launch="test")
    first = executor.submit(WorkerJob(), sweep, 0)
    wait_for(lambda: len(job_processes(first._process.pid)) > 1, 60, "the job's task")
    processes = job_processes(first._process.pid)
    victim = freeze_job_mid_trial(processes, postgres_database, "tiny-original")
    signal_job(processes, signal.SIGKILL)  # as a node lost under the job
    first._process.wait()
    wait_until_failed_for_silence(sweep, victim.number)
    again = executor.submit(WorkerJob(), sweep, 0)  # as Slurm's requeue would
    again.result()
    finish_once(sweep, sweep_run_id)
    study = sweep.open_study("original")
    assert study.trials[victim.number].state == TrialState.FAIL
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.user_attrs["job_id"] == again.job_id != victim.user_attrs["job_id"]
    assert_nothing_lost(sweep, {}, requested=3)
    record_faults("faults injected")
    record_faults("trials lost", 0)


def test_an_error_while_the_job_is_being_requeued_leaves_its_trial_to_be_retried_not_failed(
    tmp_path, sweep_overrides, monkeypatch
):
    # Slurm's requeue signals every process of the job; whatever error that brings up in the
    # trial (a child killed, a store cut off) is the job's end, not the trial's fault.
    monkeypatch.setattr(fersweep.tasks.sweep.trials, "JOB_ENDING", threading.Event())
    path = one_arm(tmp_path, heartbeat_seconds=1, max_retry=2)
    sweep = make_sweep(path, sweep_overrides, trials=1)
    ensure_parent_runs(sweep)

    def preempted_mid_trial(*args) -> None:
        WorkerJob().checkpoint(sweep, 0)  # what submitit calls on SIGUSR2, before it requeues
        raise RuntimeError("a process of the job was terminated")

    monkeypatch.setattr(fersweep.tasks.sweep.trials, "objective", preempted_mid_trial)
    with pytest.raises(RuntimeError, match="terminated"):
        WorkerJob()(sweep, 0)
    study = sweep.open_study("original")
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # not failed by the worker
    wait_until_failed_for_silence(sweep, 0)
    (retry,) = [t for t in sweep.open_study("original").trials if "failed_trial" in t.system_attrs]
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == 0


class EndedFinishJob:
    """A finish job that has ended with `outcome` (its result file written)."""

    def __init__(self, tmp_path: Path, outcome: dict) -> None:
        result = tmp_path / "9_0_result.pkl"
        result.touch()
        self.job_id, self.outcome = "9", outcome
        self.paths = SimpleNamespace(result_pickle=result, stdout=tmp_path / "9_0_log.out")

    def result(self) -> dict:
        return self.outcome


@pytest.mark.parametrize(
    "outcome, said",
    [
        ({"interrupted": {"demo-original": "trials [2] waiting"}}, "run the same command again"),
        ({"best": {}}, "no arm completed a trial"),
    ],
)
def test_a_waiting_launch_whose_sweep_did_not_finish_exits_with_an_error(tmp_path, outcome, said):
    with pytest.raises(FersweepError, match=said):
        wait_for_finish(EndedFinishJob(tmp_path, outcome))


def test_a_waiting_launch_returns_the_outcome_of_a_finished_sweep(tmp_path):
    champion = {"model": "m", "version": "3", "arm": "balanced", "moved": False}
    assert wait_for_finish(EndedFinishJob(tmp_path, {"champion": champion}))["champion"] == champion
