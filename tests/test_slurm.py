"""The cluster path against a real Slurm (one node on this machine: scripts/slurm-local.sh up,
which .ci/run starts): sweeps whose workers and finish are sbatch jobs, and the faults a real
scheduler brings — a worker cancelled mid-trial, a pre-emption and requeue, every worker
cancelled mid-arm and the same command run again, a new controller whose job ids repeat, and
jobs the partition cannot run. Each fault is counted in the fault suite's tally."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from fersweep.errors import ConfigError
from fersweep.studies.storage import counted_trials
from fersweep.tasks.sweep import run_sweep
from fersweep.tasks.sweep.launch import FINISH_JOB_TAG, JOB_IDS_TAG
from tests.conftest import PROJECT_ROOT, record_faults
from tests.test_reliability import one_arm, wait_for
from tests.test_sweep import TINY, client_for, definition, make_sweep, sweep_arguments

SLURM_LOCAL = PROJECT_ROOT / "scripts" / "slurm-local.sh"


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "--noheader"], capture_output=True).returncode == 0


@pytest.fixture(autouse=True)
def slurm():
    """A Slurm that answers; CI (FERSWEEP_REQUIRE_SLURM=1) fails rather than skips without one."""
    if not slurm_answers():
        if os.environ.get("FERSWEEP_REQUIRE_SLURM") == "1":
            pytest.fail("no Slurm answers here, and FERSWEEP_REQUIRE_SLURM=1: make slurm-up")
        pytest.skip("no Slurm here: `make slurm-up` (as root) starts a one-node Slurm")


# Two worker jobs of one CPU each fit this 2-CPU node beside each other; the finish job waits.
JOBS = {
    "launcher.jobs": 2,
    "launcher.cpus_per_task": 1,
    "launcher.mem_gb": 2,
    "launcher.timeout_min": 15,
}


def on_slurm(path: Path, overrides: list[str], storage: str, **own):
    return make_sweep(
        path,
        ["launcher@sweep.launcher=slurm_cpu", *overrides],
        storage=storage,
        **{**JOBS, **own},
    )


def queued(*job_ids: str) -> list[str]:
    """Those of the jobs Slurm still holds (pending, running, requeued)."""
    out = subprocess.run(
        ["squeue", "--noheader", "--format=%i", "--jobs", ",".join(job_ids)],
        capture_output=True,
        text=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def wait_until_ended(job_ids: list[str], seconds: float = 600) -> None:
    wait_for(lambda: not queued(*job_ids), seconds, f"jobs {job_ids} to end")


def trial_of_job(storage: str, study: str, job: str | None = None):
    """A running trial of `study` (of job `job`, if named) whose MLflow run has started."""
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return None
    for trial in trials:
        mine = job is None or trial.user_attrs.get("job_id") == job
        if trial.state == TrialState.RUNNING and "mlflow_run_id" in trial.user_attrs and mine:
            return trial
    return None


def stop_mid_trial(storage: str, study: str, job: str | None = None):
    """Stop a job (SIGSTOP to its step) while one of its trials runs, and return that trial:
    a stopped job cannot finish it, so what follows lands mid-trial, never at a trial's end."""
    while True:
        trial = wait_for(lambda: trial_of_job(storage, study, job), 300, "a running trial")
        running = trial.user_attrs["job_id"]
        signal_job(running, "STOP")
        if trial_of_job(storage, study, running):
            return trial
        signal_job(running, "CONT")  # it finished between the two looks: go on


def signal_job(job: str, name: str) -> None:
    subprocess.run(["scancel", f"--signal={name}", job], check=True)


def cancel(*jobs: str) -> None:
    """Jobs lost where they stand, as when their node goes: their processes killed (SIGKILL),
    then the jobs cancelled. (A plain `scancel` sends SIGTERM, which submitit's jobs let pass,
    and SIGKILL only after the cluster's KillWait, 30 s here: a short trial would finish, and
    the worker would start the next, in between.)"""
    for job in jobs:
        listed = subprocess.run(["scontrol", "listpids", job], capture_output=True, text=True)
        for line in listed.stdout.splitlines()[1:]:
            pid, _, step = line.split()[:3]
            if step != "batch":
                subprocess.run(["kill", "-KILL", pid])
    subprocess.run(["scancel", *jobs], check=True)


def runs_of(sweep) -> list:
    client = client_for(sweep)
    experiment = client.get_experiment_by_name(sweep.base_config().tracking.experiment)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def sweep_run(sweep):
    (found,) = [r for r in runs_of(sweep) if r.data.tags.get("kind") == "sweep"]
    return found


def assert_settled(sweep, trials: int, finishes: int = 1) -> None:
    """What a sweep that was never interrupted leaves: each arm exactly its budget, nothing
    RUNNING or WAITING in Optuna or MLflow, each arm's best retrained once a finish (a resume
    that adds trials finishes again), a champion."""
    for arm in sweep.definition.arms:
        study = sweep.open_study(arm)
        assert counted_trials(study) == trials, arm
        states = {t.state for t in study.trials}
        assert not states & {TrialState.RUNNING, TrialState.WAITING}, (arm, states)
    runs = runs_of(sweep)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    best = [r for r in runs if r.data.tags.get("kind") == "best"]
    assert sorted(r.data.tags["arm"] for r in best) == sorted([*sweep.definition.arms] * finishes)
    assert sweep_run(sweep).info.status == "FINISHED"
    versions = mlflow.MlflowClient().search_model_versions(
        f"name = '{sweep.definition.registered_model}'"
    )
    assert {v.tags["arm"] for v in versions} == set(sweep.definition.arms)


@pytest.mark.timeout(600)
def test_a_sweep_of_slurm_jobs_runs_to_its_end_with_job_ids_on_every_run_a_job_made(
    tmp_path, sweep_overrides, postgres_database, monkeypatch, capfd
):
    # Some clusters set this for everyone; the jobs must still get the launching environment.
    monkeypatch.setenv("SBATCH_EXPORT", "NONE")
    sweep = on_slurm(
        TINY,
        [*sweep_overrides, "+sweep.launcher.sbatch.qos=normal"],  # an sbatch option by name
        postgres_database,
        **{"launcher.wait": True},
    )
    outcome = run_sweep(sweep)
    assert outcome["champion"]["arm"] in sweep.definition.arms  # the finish job's answer
    # The wait asks squeue: sacct fails on a cluster without accounting, as on this one, and
    # submitit's own wait would warn of it twice a poll.
    assert subprocess.run(["sacct"], capture_output=True).returncode != 0
    assert "sacct" not in capfd.readouterr().err
    assert_settled(sweep, trials=3)
    tags = sweep_run(sweep).data.tags
    workers, finish = tags[JOB_IDS_TAG].split(), tags[FINISH_JOB_TAG]
    runs = runs_of(sweep)
    trial_jobs = {r.data.tags["job_id"] for r in runs if r.data.tags.get("kind") == "trial"}
    assert trial_jobs <= set(workers) and trial_jobs
    assert {r.data.tags["job_id"] for r in runs if r.data.tags.get("kind") == "best"} == {finish}
    (launch,) = (tmp_path / "outputs" / "launcher").iterdir()  # this launch's own folder
    for job in workers:
        script = (launch / job / f"{job}_submission.sh").read_text()
        for line in ("--cpus-per-task=1", "--time=15", "--qos=normal", "--export=ALL"):
            assert f"#SBATCH {line}" in script
        assert "--gpus-per-node" not in script  # slurm_cpu asks for no GPU
    finish_script = (launch / finish / f"{finish}_submission.sh").read_text()
    assert f"#SBATCH --dependency=afterany:{':'.join(workers)}" in finish_script


@pytest.mark.timeout(600)
def test_a_worker_cancelled_mid_trial_is_made_good_by_the_other_and_the_count_stays_exact(
    tmp_path, sweep_overrides, postgres_database
):
    path = one_arm(tmp_path, heartbeat_seconds=2, max_retry=2)
    sweep = on_slurm(path, sweep_overrides, postgres_database, trials=4)
    launched = run_sweep(sweep)
    victim = stop_mid_trial(postgres_database, sweep.definition.study_name("original"))
    job = victim.user_attrs["job_id"]
    cancel(job)
    wait_until_ended([*launched["worker_jobs"], launched["finish_job"]])
    retry = retried_and_settled(sweep, victim, trials=4)
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.user_attrs["job_id"] != job  # the other worker took it


@pytest.mark.timeout(600)
def test_a_preempted_worker_is_requeued_starts_again_and_its_lost_trial_is_retried(
    tmp_path, sweep_overrides, postgres_database
):
    path = one_arm(tmp_path, heartbeat_seconds=2, max_retry=2)
    sweep = on_slurm(path, sweep_overrides, postgres_database, trials=4, **{"launcher.jobs": 1})
    launched = run_sweep(sweep)
    (job,) = launched["worker_jobs"]
    victim = stop_mid_trial(postgres_database, sweep.definition.study_name("original"), job)
    # Pre-emption as the scheduler signals it to submitit's jobs; submitit requeues the job.
    signal_job(job, "USR2")
    signal_job(job, "CONT")
    wait_for(lambda: _pending(job), 120, f"job {job} requeued")
    # Slurm holds a requeued job back two minutes (its begin time); an administrator's release:
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    wait_until_ended([job, launched["finish_job"]])
    retry = retried_and_settled(sweep, victim, trials=4)
    assert retry.user_attrs["job_id"] == job  # the same job, started again


def retried_and_settled(sweep, victim, trials: int):
    """The lost trial failed, its one retry, and the sweep settled as if never interrupted."""
    study = sweep.open_study("original")
    assert study.trials[victim.number].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1, [(t.number, t.state.name, t.user_attrs.get("error")) for t in study.trials]
    assert_settled(sweep, trials=trials)
    record_faults("faults injected")
    record_faults("trials lost", 0)
    return retries[0]


def _pending(job: str) -> bool:
    state = subprocess.run(
        ["squeue", "--noheader", "--format=%T", "--jobs", job], capture_output=True, text=True
    ).stdout.strip()
    return state == "PENDING"


@pytest.mark.timeout(900)
def test_all_workers_cancelled_mid_arm_then_the_same_command_ends_as_if_never_interrupted(
    tmp_path, sweep_overrides, postgres_database
):
    path = definition(tmp_path, heartbeat_seconds=2, max_retry=2)
    sweep = on_slurm(path, sweep_overrides, postgres_database, trials=2)
    first = run_sweep(sweep)
    stop_mid_trial(postgres_database, sweep.definition.study_name("original"))
    cancel(*first["worker_jobs"])
    wait_until_ended([first["finish_job"]])  # afterany: the finish runs all the same
    # The finish judged only finished trials: nothing registered, nothing left RUNNING, and
    # the sweep says it was interrupted.
    assert not mlflow.MlflowClient().search_model_versions(
        f"name = '{sweep.definition.registered_model}'"
    )
    runs = runs_of(sweep)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert not [r for r in runs if r.data.tags.get("kind") == "best"]
    parents = [r for r in runs if r.data.tags.get("kind") in ("sweep", "sweep-arm")]
    assert {(r.info.status, r.data.tags.get("state")) for r in parents} == {
        ("KILLED", "interrupted")
    }
    assert "run the same command again" in sweep_run(sweep).data.tags["interrupted"]
    # The same command again resumes, and finishes once every arm is done.
    again = on_slurm(path, sweep_overrides, postgres_database, trials=2, **{"launcher.wait": True})
    outcome = run_sweep(again)
    assert outcome["champion"]["arm"] in sweep.definition.arms
    assert_settled(again, trials=2)
    tags = sweep_run(again).data.tags
    assert len(tags[JOB_IDS_TAG].split()) == 4 and len(tags[FINISH_JOB_TAG].split()) == 2
    assert "state" not in tags and "interrupted" not in tags
    record_faults("faults injected")
    record_faults("trials lost", 0)


@pytest.mark.timeout(900)
def test_two_launches_whose_job_ids_repeat_each_wait_for_their_own_finish(
    tmp_path, sweep_overrides, postgres_database
):
    outcomes, finishes = [], []
    for trials in (1, 2):  # the second launch resumes the sweep with one trial more an arm
        subprocess.run([str(SLURM_LOCAL), "fresh"], check=True, capture_output=True)
        sweep = on_slurm(
            TINY, sweep_overrides, postgres_database, trials=trials, **{"launcher.wait": True}
        )
        outcomes.append(run_sweep(sweep))
        finishes.append(sweep_run(sweep).data.tags[FINISH_JOB_TAG].split()[-1])
        for arm in sweep.definition.arms:  # the wait returned after this launch's finish
            assert counted_trials(sweep.open_study(arm)) == trials
    assert finishes[0] == finishes[1]  # a new controller: the same job ids again
    assert outcomes[0] != outcomes[1]  # yet each wait returned its own launch's outcome
    assert_settled(sweep, trials=2, finishes=2)
    launches = sorted((tmp_path / "outputs" / "launcher").iterdir())
    assert len(launches) == 2  # each launch its own folder: no log appended to another's
    for launch in launches:
        log = (launch / finishes[0] / f"{finishes[0]}_0_log.out").read_text()
        assert log.count("Job completed successfully") == 1
    record_faults("faults injected")


@pytest.mark.parametrize(
    "setting, message",
    [
        ("sweep.launcher.gpus_per_node=1", r"sweep.launcher.gpus_per_node=1: .* has 0 GPUs"),
        ("sweep.launcher.cpus_per_task=64", r"sweep.launcher.cpus_per_task=64: .* has \d+ CPUs"),
        ("sweep.launcher.mem_gb=4096", r"sweep.launcher.mem_gb=4096: .* has [\d.]+ GB"),
        ("sweep.launcher.partition=gpu", r"sweep.launcher.partition=gpu: no such partition"),
        ("+sweep.launcher.sbatch.export=NONE", r"sweep.launcher.sbatch.export=NONE: the jobs"),
    ],
)
def test_jobs_the_partition_cannot_run_are_refused_before_anything_is_recorded(
    tmp_path, sweep_overrides, postgres_database, setting, message
):
    sweep = on_slurm(TINY, [*sweep_overrides, setting], postgres_database)
    with pytest.raises(ConfigError, match=message):
        run_sweep(sweep)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # no run recorded
    assert optuna.get_all_study_names(postgres_database) == []  # no study made
    assert not (tmp_path / "outputs" / "launcher").exists()  # nothing submitted
    record_faults("bad settings")


def test_the_command_says_what_the_cluster_cannot_give_in_one_line(
    tmp_path, sweep_overrides, postgres_database
):
    arguments = sweep_arguments(
        TINY,
        ["launcher@sweep.launcher=slurm", *sweep_overrides],  # slurm.yaml asks for a GPU
        storage=postgres_database,
    )
    done = subprocess.run(
        [sys.executable, "sweep.py", *arguments], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("fersweep: error: sweep.launcher.gpus_per_node=1")
    record_faults("bad settings")
