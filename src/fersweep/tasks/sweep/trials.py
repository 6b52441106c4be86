"""The workers: processes that take trials of each arm in turn, under the study's lock so the
trial count is exact, each trial one training run (`tasks.train`) with Optuna's pruner and a
time budget; lost or crashed trials are recorded and retried as Optuna does."""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import lightning.pytorch as pl
import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback

from fersweep.config.compose import build, compose_config
from fersweep.config.schemas import BestWeights, sample_space
from fersweep.errors import TrialTimeout
from fersweep.evaluation.console import console
from fersweep.studies import experimental_features
from fersweep.studies.storage import counted_trials, heartbeat, storage_lock
from fersweep.tasks.compare.workers import share_cores
from fersweep.tasks.sweep.study import PARENT_RUN_ATTR, Sweep
from fersweep.tasks.sweep.warm import STOPPED_ATTR, stop_if_stalled
from fersweep.tasks.train import RunPlacement, RunResult, train
from fersweep.tracking import Tracker
from fersweep.tracking.callbacks import KeepBestCheckpoint
from fersweep.tracking.runs import job_id

log = logging.getLogger(__name__)

# Set when the scheduler ends this worker's job to requeue it (pre-emption, time limit): an error
# raised from then on comes from the job being taken down (Slurm signals all its processes), not
# from the trial, which is left RUNNING so its silence fails it and Optuna retries it, as for any
# trial lost with its worker.
JOB_ENDING = threading.Event()


def job_ending() -> None:
    """Say that this process's job is being requeued (submitit checkpoints it first)."""
    JOB_ENDING.set()


def run_worker_processes(sweep: Sweep) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=work, args=(sweep, index), name=f"fersweep-worker-{index}")
        for index in range(sweep.definition.workers)
    ]
    gpus = torch.cuda.device_count()
    for index, process in enumerate(processes):
        with _visible_gpu(index, gpus):  # one GPU per worker when there are several
            process.start()
    for process in processes:
        process.join()


def work(sweep: Sweep, worker: int) -> None:
    """One worker: takes trials of each arm in turn until the arm's budget is spent."""
    share_cores(sweep.definition.workers)
    tracker: Tracker = build(sweep.base_config().tracking)
    studies = {arm: sweep.open_study(arm, worker) for arm in sweep.definition.arms}
    # First each arm while it has trials to give (a full arm is left to the workers still
    # running its trials), then each again until none of its trials runs anywhere: a trial
    # lost with its worker is failed by its silence, re-queued and taken here.
    for until_settled in (False, True):
        for arm, study in studies.items():
            deadline = _deadline(study, sweep.definition.timeout_minutes)
            while trial := _next_trial(sweep, study, deadline, tracker, until_settled):
                trial.set_user_attr("worker", worker)
                if (job := job_id()) is not None:  # which scheduler job ran it
                    trial.set_user_attr("job_id", job)
                _run_trial(sweep, study, arm, trial, tracker)


@contextmanager
def _visible_gpu(worker: int, gpus: int) -> Iterator[None]:
    """While a worker process starts, it sees only its own GPU (it inherits the environment)."""
    if gpus <= 1:
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = str(worker % gpus)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES")
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def _deadline(study: optuna.Study, timeout_minutes: float | None) -> float | None:
    """The arm's time budget counts from its first trial, so a resumed sweep keeps it."""
    if timeout_minutes is None:
        return None
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    started = min(starts).timestamp() if starts else time.time()
    return started + timeout_minutes * 60


def _next_trial(
    sweep: Sweep,
    study: optuna.Study,
    deadline: float | None,
    tracker: Tracker,
    until_settled: bool = True,
) -> optuna.Trial | None:
    """The next trial, or None when the budget is spent and, `until_settled`, no other
    worker's trial is still running (a running trial may yet be lost and re-queued). Asking
    happens under the study's lock, so concurrent workers never overshoot the trial count."""
    while True:
        tracker.wait_until_reachable(sweep.definition.tracking_outage_minutes)
        fail_stale(study)
        close_runs_of_failed_trials(study, tracker)
        with storage_lock(sweep.storage(), study.study_name):
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            running = any(t.state == TrialState.RUNNING for t in trials)
            limit = sweep.definition.trials
            out_of_time = deadline is not None and time.time() >= deadline
            within_budget = limit is None or counted_trials(study) < limit
            if within_budget and not waiting and stop_if_stalled(sweep, study, trials, tracker):
                within_budget = False
            if waiting or (within_budget and not out_of_time):
                with warnings.catch_warnings():
                    # fersweep records heartbeats itself (study_storage.heartbeat).
                    warnings.filterwarnings("ignore", "Heartbeat of storage is supposed")
                    return study.ask()
        if not (running and until_settled):
            return None
        time.sleep(sweep.definition.heartbeat_seconds)


def fail_stale(study: optuna.Study) -> None:
    """Optuna fails the trials whose worker stopped beating, and re-queues them (max_retry)."""
    with experimental_features():
        optuna.storages.fail_stale_trials(study)


def finished_trials(study: optuna.Study) -> int:
    """Trials that have ended (complete, pruned or failed): what a finish judged."""
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def unfinished(sweep: Sweep, study: optuna.Study) -> str | None:
    """Why the arm has not finished yet (trials running or waiting, or fewer started than its
    budget while it has time and has not stalled), or None when it has."""
    trials = study.get_trials(deepcopy=False)
    for state in (TrialState.RUNNING, TrialState.WAITING):
        if numbers := [t.number for t in trials if t.state == state]:
            return f"trials {numbers} {state.name.lower()}"
    limit = sweep.definition.trials
    deadline = _deadline(study, sweep.definition.timeout_minutes)
    out_of_time = deadline is not None and time.time() >= deadline
    if limit is None or out_of_time or STOPPED_ATTR in study.user_attrs:
        return None
    if (started := counted_trials(study)) < limit:
        return f"{started} of {limit} trials started"
    return None


def close_runs_of_failed_trials(study: optuna.Study, tracker: Tracker) -> None:
    """A worker killed mid-trial, or a trial stopped by a tracking server outage, leaves its
    MLflow run RUNNING; once Optuna has failed the trial, its run is ended as FAILED too, with
    the trial's error, so Optuna and MLflow agree."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id and tracker.run_status(run_id) == "RUNNING":
            reason = trial.user_attrs.get("error", "worker lost: no heartbeat")
            tracker.fail_detached_run(run_id, f"{reason}; the trial is retried")


trial_clock: Callable[[], float] = time.monotonic  # what trial budgets are measured with


class TrialTimeBudget(pl.Callback):
    """Stops a trial that runs past its budget; the sweep records it as failed and goes on."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = trial_clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trial_clock() - self.start > self.seconds:
            raise TrialTimeout(f"trial exceeded sweep.trial_timeout_minutes={self.seconds / 60:g}")


def _run_trial(
    sweep: Sweep, study: optuna.Study, arm: str, trial: optuna.Trial, tracker: Tracker
) -> None:
    """One trial, told to the study as complete, pruned or failed (and retried when the
    tracking server was out of reach: not the trial's fault)."""
    metric = sweep.definition.objective.metric
    overrides = sweep.trial_overrides(arm, _sampled(sweep, arm, trial))
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr("arm", arm)
    with heartbeat(sweep.storage(), trial):
        try:
            value = objective(sweep, study, arm, trial, overrides).metrics[metric]
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            console.print(f"[yellow]{arm} trial {trial.number} pruned[/yellow]")
            return
        except Exception as error:  # a crashed trial is recorded and the sweep goes on
            if JOB_ENDING.is_set():
                raise
            _record_failure(sweep, study, arm, trial, tracker, error)
            return
    study.tell(trial, value)
    console.print(f"{arm} trial {trial.number}: {metric} = {value:.4f}")


def _sampled(sweep: Sweep, arm: str, trial: optuna.Trial) -> dict:
    space = sweep.definition.arm_space(arm)
    return sample_space(space, lambda key, param: param.suggest(trial, key))


def objective(
    sweep: Sweep, study: optuna.Study, arm: str, trial: optuna.Trial, overrides: list[str]
) -> RunResult:
    """The trial as a training run scored on the validation split, nested under its arm's run,
    with Optuna's pruner and the trial's time budget; no model is logged, only its best epoch's
    checkpoint, for the finish to test should it be the best (`sweep.best_weights: trial`)."""
    d = sweep.definition
    cfg = compose_config(
        sweep.config_dir, [*overrides, "eval_split=val", "tracking.log_model=false"]
    )
    callbacks: list[pl.Callback] = [
        PyTorchLightningPruningCallback(trial, monitor=d.objective.monitor)
    ]
    if d.trial_timeout_minutes:
        callbacks.append(TrialTimeBudget(d.trial_timeout_minutes))
    if d.best_weights is BestWeights.trial:
        callbacks.append(KeepBestCheckpoint())
    tags = {
        "arm": arm,
        "sweep": d.name,
        "study": study.study_name,
        "optuna_trial": str(trial.number),
        "kind": "trial",
        "worker_host": socket.gethostname(),  # which machine and checkout ran it
        "worker_dir": os.getcwd(),
    }
    placement = RunPlacement(
        parent_run_id=study.user_attrs[PARENT_RUN_ATTR],
        name=f"{arm}-trial-{trial.number}",
        tags=tags,
        killed_by=(optuna.TrialPruned,),
        on_start=lambda run_id: trial.set_user_attr("mlflow_run_id", run_id),
    )
    return train(cfg, overrides, callbacks, placement)


def _record_failure(
    sweep: Sweep,
    study: optuna.Study,
    arm: str,
    trial: optuna.Trial,
    tracker: Tracker,
    error: Exception,
) -> None:
    outage = not tracker.reachable()
    message = f"{type(error).__name__}: {error}"
    if outage:
        message = f"tracking server {tracker.tracking_uri} unreachable: {message}"
    trial.set_user_attr("error", message[:2000])
    study.tell(trial, state=TrialState.FAIL)
    console.print(f"[red]{arm} trial {trial.number} failed: {message[:500]}[/red]")
    log.debug("trial %s failed", trial.number, exc_info=True)
    if outage:  # not the trial's fault: run it again once the server is back
        _retry(study, trial.number, sweep.definition.max_retry)


def _retry(study: optuna.Study, number: int, max_retry: int) -> None:
    """Queue the failed trial again with its parameters, as Optuna does for a trial whose worker
    was lost; the retry takes its place in the trial count (study_storage.counted_trials)."""
    failed = study.get_trials(deepcopy=True)[number]
    failed.user_attrs = {
        k: v for k, v in failed.user_attrs.items() if k not in ("error", "mlflow_run_id")
    }
    with experimental_features():
        RetryHeartbeatStaleTrialCallback(max_retry)(study, failed)
