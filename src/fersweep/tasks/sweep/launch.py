"""Workers placed by a scheduler: `sweep.launcher` local or slurm submits `jobs` worker jobs
with submitit, all against the sweep's shared study storage and tracking store, then the
finish as one job after them. Optuna's storage still does the coordination (trial counts under
its lock, heartbeats, retries); the scheduler only places processes. A job that is pre-empted or
requeued simply starts again: the trial it lost is failed by its missing heartbeat and retried."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit

from fersweep.config.compose import build
from fersweep.config.sweep_options import Launcher, LauncherKind
from fersweep.errors import FersweepError
from fersweep.evaluation.console import console
from fersweep.tasks.compare.workers import share_cores
from fersweep.tasks.sweep.cluster import check_cluster, launch_environment, sbatch_options
from fersweep.tasks.sweep.finish import finish_once
from fersweep.tasks.sweep.study import Sweep, end_parent_runs
from fersweep.tasks.sweep.trials import job_ending, work
from fersweep.tracking import Tracker

JOB_IDS_TAG = "launcher_jobs"
FINISH_JOB_TAG = "finish_job"
POLL_SECONDS = 5.0


def check_launch(sweep: Sweep) -> None:
    """What the scheduler cannot give, refused before anything is submitted or recorded."""
    if sweep.definition.launcher.kind is LauncherKind.slurm:
        check_cluster(sweep.definition.launcher)


def launch(sweep: Sweep, sweep_run_id: str) -> dict[str, Any]:
    """Submit the worker jobs and the finish job for a checked sweep whose parent runs exist;
    with `local` (or `wait`), wait for the finish and return its outcome, else the job ids."""
    d = sweep.definition
    launcher = d.launcher
    tracker: Tracker = build(sweep.base_config().tracking)
    executor = executor_for(launcher, name=f"fersweep-{d.name}", launch=_launch_name(d.name))
    try:
        with launch_environment():
            workers = [executor.submit(WorkerJob(), sweep, i) for i in range(launcher.jobs)]
            ids = [job.job_id for job in workers]
            console.print(f"{d.name}: {len(ids)} worker jobs submitted ({', '.join(ids)})")
            if launcher.kind is LauncherKind.local:
                for job in workers:  # the local executor knows no dependencies: the wait is here
                    job.exception()
            else:
                executor.update_parameters(dependency=f"afterany:{':'.join(ids)}")
            finish = executor.submit(finish_once, sweep, sweep_run_id)
    except submitit.core.utils.FailedJobError as error:
        refused = f"sweep.launcher: the scheduler refused a job: {_one_line(error)}"
        end_parent_runs(sweep, sweep_run_id, "FAILED", {"error": refused})
        raise FersweepError(refused) from error
    record_jobs(tracker, sweep_run_id, ids, finish.job_id)
    console.print(f"{d.name}: finish job {finish.job_id} runs after them")
    if launcher.kind is LauncherKind.local:
        return finish.result()
    if launcher.wait:
        return wait_for_finish(finish)
    return {"worker_jobs": ids, "finish_job": finish.job_id}


def record_jobs(tracker: Tracker, sweep_run_id: str, workers: list[str], finish: str) -> None:
    """The sweep run's job tags, with every launch's ids kept (a resume adds its own)."""
    tracker.connect()
    tags = tracker.run_tags(sweep_run_id)
    earlier = {key: tags.get(key, "").split() for key in (JOB_IDS_TAG, FINISH_JOB_TAG)}
    tracker.set_tags(
        sweep_run_id,
        {
            JOB_IDS_TAG: " ".join([*earlier[JOB_IDS_TAG], *workers]),
            FINISH_JOB_TAG: " ".join([*earlier[FINISH_JOB_TAG], finish]),
        },
    )


def _launch_name(sweep_name: str) -> str:
    """Each launch's own folder: job ids repeat (a new controller starts again at 1), and a
    folder shared with an earlier launch would hand the wait that launch's result."""
    return f"{sweep_name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def executor_for(launcher: Launcher, name: str, launch: str) -> submitit.Executor:
    """submitit's executor for the launcher, its resources set, writing under its own folder."""
    folder = Path(launcher.folder) / launch / "%j"
    if launcher.kind is LauncherKind.local:
        executor: submitit.Executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=launcher.timeout_min)
        return executor
    executor = submitit.SlurmExecutor(folder=folder)
    executor.update_parameters(**sbatch_options(launcher, name))
    return executor


def wait_for_finish(finish: submitit.Job) -> dict[str, Any]:
    """Stay until the finish job has ended; asks `squeue`, which every cluster answers (submitit's
    own wait asks `sacct`, which fails where the cluster keeps no accounting)."""
    console.print(f"waiting for finish job {finish.job_id} (its log: {finish.paths.stdout})")
    while not finish.paths.result_pickle.exists() and _queued(finish.job_id):
        time.sleep(POLL_SECONDS)
    if not finish.paths.result_pickle.exists():
        raise FersweepError(
            f"finish job {finish.job_id} ended without a result (cancelled, or its node was "
            f"lost); its log: {finish.paths.stdout}. Run the same command again to finish."
        )
    outcome = finish.result()
    ended = f"finish job {finish.job_id} ended: {_summary(outcome)}"
    if "interrupted" in outcome or not outcome.get("champion"):
        # A waiting caller (a script, a CI step) learns from the exit status that it is not done.
        raise FersweepError(ended)
    console.print(ended)
    return outcome


def _summary(outcome: dict[str, Any]) -> str:
    if "interrupted" in outcome:
        return f"the sweep was interrupted ({outcome['interrupted']}); run the same command again"
    if champion := outcome.get("champion"):
        moved = "is now" if champion.get("moved") else "did not become"
        return f"{champion['model']} version {champion['version']} ({champion['arm']}) {moved} champion"
    return "no arm completed a trial"


def _queued(job_id: str) -> bool:
    done = subprocess.run(
        ["squeue", "--noheader", "--jobs", job_id, "--format=%T"],
        capture_output=True,
        text=True,
    )
    return done.returncode == 0 and bool(done.stdout.strip())


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:500]


class WorkerJob(submitit.helpers.Checkpointable):
    """One worker job: one sweep worker (one GPU where there is one). Pre-empted or timed out,
    submitit requeues it with the same arguments (`checkpoint`): it takes trials again, and the
    one it was running is failed by its missing heartbeat and retried by whichever worker."""

    def __call__(self, sweep: Sweep, index: int) -> None:
        if sweep.definition.launcher.kind is LauncherKind.local:  # jobs share these cores
            share_cores(sweep.definition.launcher.jobs)
        work(sweep, worker=index)

    def checkpoint(self, sweep: Sweep, index: int) -> submitit.helpers.DelayedSubmission:
        """submitit's call on pre-emption or time-out, before it requeues the job and exits."""
        job_ending()
        return super().checkpoint(sweep, index)
