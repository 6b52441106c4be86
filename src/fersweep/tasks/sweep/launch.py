"""Workers placed by a scheduler: `sweep.launcher` local or slurm submits `jobs` worker jobs
with submitit, all against the sweep's shared study storage and tracking store, then the
finish as one job after them. Optuna's storage still does the coordination (trial counts under
its lock, heartbeats, retries); the scheduler only places processes. A job that is pre-empted or
requeued simply starts again: the trial it lost is failed by its missing heartbeat and retried."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import submitit
import torch

from fersweep.config.compose import build
from fersweep.config.sweep_options import Launcher, LauncherKind
from fersweep.evaluation.console import console
from fersweep.tasks.sweep.finish import finish_once
from fersweep.tasks.sweep.study import Sweep
from fersweep.tasks.sweep.trials import work
from fersweep.tracking import Tracker

JOB_IDS_TAG = "launcher_jobs"


def launch(sweep: Sweep, sweep_run_id: str) -> dict[str, Any]:
    """Submit the worker jobs and the finish job for a checked sweep whose parent runs exist;
    with `local` (or `wait`), wait for the finish and return its outcome, else the job ids."""
    d = sweep.definition
    launcher = d.launcher
    executor = executor_for(launcher, name=f"fersweep-{d.name}")
    workers = [executor.submit(WorkerJob(), sweep, index) for index in range(launcher.jobs)]
    ids = [job.job_id for job in workers]
    console.print(f"{d.name}: {len(ids)} worker jobs submitted ({', '.join(ids)})")
    if launcher.kind is LauncherKind.local:
        for job in workers:  # the local executor knows no dependencies: the wait is here
            job.exception()
    else:
        executor.update_parameters(dependency=f"afterany:{':'.join(ids)}")
    finish = executor.submit(finish_once, sweep, sweep_run_id)
    tracker: Tracker = build(sweep.base_config().tracking)
    tracker.connect()
    tracker.set_tags(sweep_run_id, {JOB_IDS_TAG: " ".join(ids), "finish_job": finish.job_id})
    console.print(f"{d.name}: finish job {finish.job_id} runs after them")
    if launcher.kind is LauncherKind.local or launcher.wait:
        return finish.result()
    return {"worker_jobs": ids, "finish_job": finish.job_id}


def executor_for(launcher: Launcher, name: str) -> submitit.Executor:
    """submitit's executor for the launcher, its resources set: Slurm's options by name."""
    folder = Path(launcher.folder)
    if launcher.kind is LauncherKind.local:
        executor: submitit.Executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=launcher.timeout_min)
        return executor
    executor = submitit.SlurmExecutor(folder=folder)
    options = {
        "job_name": name,
        "time": launcher.timeout_min,
        "gpus_per_node": launcher.gpus_per_node,
        "cpus_per_task": launcher.cpus_per_task,
        "mem": f"{int(launcher.mem_gb * 1024)}MB",
        "partition": launcher.partition,
        "account": launcher.account,
        "additional_parameters": dict(launcher.sbatch),
    }
    executor.update_parameters(**{k: v for k, v in options.items() if v is not None})
    return executor


class WorkerJob(submitit.helpers.Checkpointable):
    """One worker job: one sweep worker (one GPU where there is one). Pre-empted or timed out,
    submitit requeues it with the same arguments (`checkpoint`): it takes trials again, and the
    one it was running is failed by its missing heartbeat and retried by whichever worker."""

    def __call__(self, sweep: Sweep, index: int) -> None:
        if sweep.definition.launcher.kind is LauncherKind.local:  # jobs share these cores
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // sweep.definition.launcher.jobs))
        work(sweep, worker=index)
