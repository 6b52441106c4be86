"""A comparison's (or a champion gate's) runs on several processes of this machine: each run
is independent of the others, and on a small CPU two processes of one thread each get more
through than one process of two threads (a small network's layers do not split well)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import torch

from fersweep.config.compose import register_resolvers
from fersweep.services.processes import core_share
from fersweep.tasks.compare.arms import ArmRuns, EarlierRuns, Job, PlannedArm
from fersweep.tasks.train import RunResult


def share_cores(workers: int) -> None:
    """Give this process its share of the cores it may run on (a Slurm job's, not the whole
    node's, where the scheduler pins it), one of `workers` processes."""
    if workers > 1:
        torch.set_num_threads(core_share(workers))


def run_arms(
    planned: Sequence[PlannedArm],
    configs: Mapping[str, Mapping],
    parent: str,
    earlier: EarlierRuns,
    workers: int,
) -> dict[str, ArmRuns]:
    """Every arm's runs, `workers` at a time (1: in this process, in turn). With several, an
    arm whose run fails is left out as it is in turn, though its other runs go on."""
    if workers <= 1:
        return {arm.name: arm.run(configs[arm.name], parent, earlier) for arm in planned}
    jobs = {arm.name: arm.jobs(configs[arm.name], parent, earlier) for arm in planned}
    context = multiprocessing.get_context("spawn")  # no forked copies of threads or MLflow state
    with ProcessPoolExecutor(workers, context, _start_worker, (workers,)) as pool:
        futures = {
            name: [None if job.found else pool.submit(Job.run, job) for job in arm_jobs]
            for name, arm_jobs in jobs.items()
        }
        return {arm.name: _gathered(arm, jobs[arm.name], futures[arm.name]) for arm in planned}


def _start_worker(workers: int) -> None:
    """A worker process: its share of the cores, and the resolvers its configs name."""
    share_cores(workers)
    register_resolvers()


def _gathered(arm: PlannedArm, jobs: list[Job], futures: list[Future | None]) -> ArmRuns:
    finished: list[tuple[Job, RunResult]] = []
    failure = None
    for job, future in zip(jobs, futures):
        try:
            finished.append((job, job.found if future is None else future.result()))
        except Exception as error:  # recorded FAILED in MLflow by the run's own process
            failure = failure or job.failure(error)
    return arm.summary([j for j, _ in finished], [r for _, r in finished], failure)
