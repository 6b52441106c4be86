"""Optuna sweeps over the Hydra config: one study per arm, Lightning trials, MLflow runs.

Each trial's config is composed by Hydra from the sweep's overrides plus the sampled values,
so any trial can be re-run as `python train.py <its overrides>` (kept in the trial's
`overrides` attribute and its MLflow run's `overrides` tag).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import torch
from omegaconf import OmegaConf
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback
from rich.markdown import Markdown

from fersweep import champion
from fersweep.compare import ArmSummary, summarise
from fersweep.config import as_overrides, build, check_builds, compose_config, compose_definition
from fersweep.console import console
from fersweep.definitions import Direction, SweepDefinition, example_samples, sample_space
from fersweep.errors import ConfigError, TrialTimeout
from fersweep.study_storage import counted_trials, heartbeat, open_storage, storage_lock
from fersweep.tracking import Tracker, artifacts
from fersweep.train import RunPlacement, RunResult, train

log = logging.getLogger(__name__)
PARENT_RUN_ATTR = "mlflow_parent_run_id"
SWEEP_RUN_ATTR = "mlflow_sweep_run_id"
FINISHED_ATTR = "finished_with_trials"
OUTCOME_ATTR = "outcome"


@dataclass
class Sweep:
    """A sweep definition bound to the project's configs and the user's extra overrides."""

    definition: SweepDefinition
    config_dir: Path
    overrides: list[str]

    @classmethod
    def compose(cls, config_dir: Path, argv: Sequence[str] = ()) -> Sweep:
        """The sweep `python sweep.py <argv>` runs: `sweeps@sweep=<name>` picks the definition,
        `sweep.<key>=<value>` changes it, any other override changes every trial's config."""
        cfg, overrides = compose_definition(config_dir, "sweep", argv)
        return cls(OmegaConf.to_object(cfg.sweep), config_dir, overrides)

    def trial_overrides(self, arm: str, sampled: dict[str, Any]) -> list[str]:
        d = self.definition
        return [
            *d.base,
            *d.arms[arm].overrides,
            *as_overrides(sampled),
            *self.overrides,
            f"seed={d.seed}",
        ]

    def base_config(self):
        return compose_config(self.config_dir, [*self.definition.base, *self.overrides])

    @cached_property
    def storage_url(self) -> str:
        return (
            self.definition.storage or f"sqlite:///{self.base_config().paths.mlruns_dir}/optuna.db"
        )

    def storage(self) -> RDBStorage:
        d = self.definition
        return open_storage(self.storage_url, d.heartbeat_seconds, d.max_retry)

    def open_study(self, arm: str, worker: int = 0) -> optuna.Study:
        d = self.definition
        storage = self.storage()
        sampler = build(OmegaConf.create(d.sampler), seed=self.sampler_seed(worker))
        study = optuna.create_study(
            study_name=d.study_name(arm),
            storage=storage,
            sampler=sampler,
            pruner=build(OmegaConf.create(d.pruner)),
            direction=d.objective.direction.value,
            load_if_exists=True,
        )
        if study.metric_names is None:  # what optuna-dashboard and the plots call the objective
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([d.objective.metric])
        return study

    def sampler_seed(self, worker: int) -> int:
        """Each worker its own seed, or parallel workers would propose the same values. Workers
        of this machine's study are told apart by their index (the seeds repeat run to run); a
        shared study (sweep.storage) may have workers 0 on several machines, so its seeds also
        depend on the machine and the process."""
        seed = self.definition.seed + worker
        if self.definition.storage is not None:
            seed = (seed + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode())) % 2**32
        return seed

    def check(self) -> None:
        """Compose and build one trial config per arm before any training: bad keys fail here."""
        for arm in self.definition.arms:
            for sampled in example_samples(self.definition.arm_space(arm)):
                try:
                    cfg = compose_config(self.config_dir, self.trial_overrides(arm, sampled))
                except ConfigError as error:  # Hydra's composition errors name the bad override
                    raise ConfigError(f"sweep arm {arm!r}: {error}") from error
                check_builds(cfg, ("data", "model", "optimizer", "loss"))


# --- running trials -------------------------------------------------------------------------


def run_sweep(sweep: Sweep) -> dict[str, Any]:
    """Run (or resume) every arm with `workers` processes, then finish: best trials retrained
    on the test split, the champion registered, and the arms compared."""
    sweep.check()
    sweep_run_id = ensure_parent_runs(sweep)
    if sweep.definition.workers == 1:
        work(sweep, worker=0)
    else:
        _run_worker_processes(sweep)
    return _finish_once(sweep, sweep_run_id)


def _run_worker_processes(sweep: Sweep) -> None:
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


def _finish_once(sweep: Sweep, sweep_run_id: str) -> dict[str, Any]:
    """Every machine's driver gets here; the first finishes the sweep for the trials there are,
    the others find it finished."""
    d = sweep.definition
    with storage_lock(sweep.storage(), f"{d.name}-finish"):
        studies = [sweep.open_study(arm) for arm in d.arms]
        done = {s.study_name: counted_trials(s) for s in studies}
        if all(s.user_attrs.get(FINISHED_ATTR) == done[s.study_name] for s in studies):
            console.print(f"sweep {d.name} was already finished for these trials")
            return studies[0].user_attrs.get(OUTCOME_ATTR, {})
        outcome = finish(sweep, sweep_run_id)
        for study in studies:
            study.set_user_attr(FINISHED_ATTR, done[study.study_name])
            study.set_user_attr(OUTCOME_ATTR, outcome)
    return outcome


def ensure_parent_runs(sweep: Sweep) -> str:
    """The sweep's MLflow run and one nested run per arm, created once and found again on resume
    (their ids live in the studies' user attributes)."""
    d = sweep.definition
    tracker: Tracker = build(sweep.base_config().tracking)
    tracker.connect()
    studies = {arm: sweep.open_study(arm) for arm in d.arms}
    first = next(iter(studies.values()))
    with storage_lock(sweep.storage(), f"{d.name}-parents"):
        sweep_run_id = first.user_attrs.get(SWEEP_RUN_ATTR)
        if sweep_run_id is None:
            sweep_run_id = tracker.start_detached_run(
                f"sweep-{d.name}", tags={"kind": "sweep", "sweep": d.name}
            )
            definition = OmegaConf.to_container(OmegaConf.structured(d), enum_to_str=True)
            artifacts.log_dict(definition, "sweep/definition.json", sweep_run_id)
            artifacts.log_params({"sweep": definition}, sweep_run_id)
        for arm, study in studies.items():
            study.set_user_attr(SWEEP_RUN_ATTR, sweep_run_id)
            if PARENT_RUN_ATTR not in study.user_attrs:
                run_id = tracker.start_detached_run(
                    f"{d.name}/{arm}",
                    parent_run_id=sweep_run_id,
                    tags={
                        "kind": "sweep-arm",
                        "sweep": d.name,
                        "arm": arm,
                        "study": d.study_name(arm),
                    },
                )
                study.set_user_attr(PARENT_RUN_ATTR, run_id)
    return sweep_run_id


def work(sweep: Sweep, worker: int) -> None:
    """One worker: takes trials of each arm in turn until the arm's budget is spent."""
    _share_machine(worker, sweep.definition.workers)
    tracker: Tracker = build(sweep.base_config().tracking)
    for arm in sweep.definition.arms:
        study = sweep.open_study(arm, worker)
        deadline = _deadline(study, sweep.definition.timeout_minutes)
        while (trial := _next_trial(sweep, study, deadline, tracker)) is not None:
            trial.set_user_attr("worker", worker)
            _run_trial(sweep, study, arm, trial, tracker)


def _share_machine(worker: int, workers: int) -> None:
    """Split the CPU cores between the workers of one machine."""
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


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
    sweep: Sweep, study: optuna.Study, deadline: float | None, tracker: Tracker
) -> optuna.Trial | None:
    """The next trial, or None when the budget is spent and no other worker's trial is still
    running (a running trial may yet be lost and re-queued). Asking happens under the study's
    lock, so concurrent workers never overshoot the trial count."""
    while True:
        tracker.wait_until_reachable(sweep.definition.tracking_outage_minutes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        _close_runs_of_failed_trials(study, tracker)
        with storage_lock(sweep.storage(), study.study_name):
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            running = any(t.state == TrialState.RUNNING for t in trials)
            limit = sweep.definition.trials
            out_of_time = deadline is not None and time.time() >= deadline
            within_budget = limit is None or counted_trials(study) < limit
            if waiting or (within_budget and not out_of_time):
                with warnings.catch_warnings():
                    # fersweep records heartbeats itself (study_storage.heartbeat).
                    warnings.filterwarnings("ignore", "Heartbeat of storage is supposed")
                    return study.ask()
        if not running:
            return None
        time.sleep(sweep.definition.heartbeat_seconds)


def _close_runs_of_failed_trials(study: optuna.Study, tracker: Tracker) -> None:
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
    d = sweep.definition
    sampled = sample_space(d.arm_space(arm), lambda key, param: param.suggest(trial, key))
    overrides = sweep.trial_overrides(arm, sampled)
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr("arm", arm)
    metric = d.objective.metric
    tags = {
        "arm": arm,
        "sweep": d.name,
        "study": study.study_name,
        "optuna_trial": str(trial.number),
        "kind": "trial",
        "worker_host": socket.gethostname(),  # which machine and checkout ran it
        "worker_dir": os.getcwd(),
    }
    with heartbeat(sweep.storage(), trial):
        try:
            cfg = compose_config(
                sweep.config_dir, [*overrides, "eval_split=val", "tracking.log_model=false"]
            )
            callbacks = [PyTorchLightningPruningCallback(trial, monitor=d.objective.monitor)]
            if d.trial_timeout_minutes:
                callbacks.append(TrialTimeBudget(d.trial_timeout_minutes))
            placement = RunPlacement(
                parent_run_id=study.user_attrs[PARENT_RUN_ATTR],
                name=f"{arm}-trial-{trial.number}",
                tags=tags,
                killed_by=(optuna.TrialPruned,),
                on_start=lambda run_id: trial.set_user_attr("mlflow_run_id", run_id),
            )
            result = train(cfg, overrides, callbacks, placement)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            console.print(f"[yellow]{arm} trial {trial.number} pruned[/yellow]")
            return
        except Exception as error:  # a crashed trial is recorded and the sweep goes on
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
            return
    study.tell(trial, result.metrics[metric])
    console.print(f"{arm} trial {trial.number}: {metric} = {result.metrics[metric]:.4f}")


def _retry(study: optuna.Study, number: int, max_retry: int) -> None:
    """Queue the failed trial again with its parameters, as Optuna does for a trial whose worker
    was lost; the retry takes its place in the trial count (study_storage.counted_trials)."""
    failed = study.get_trials(deepcopy=True)[number]
    failed.user_attrs = {
        k: v for k, v in failed.user_attrs.items() if k not in ("error", "mlflow_run_id")
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry)(study, failed)


# --- finishing ------------------------------------------------------------------------------


def finish(sweep: Sweep, sweep_run_id: str) -> dict[str, Any]:
    """Plots and the trial table per arm, each arm's best config retrained and tested, the
    best overall registered as `champion`, and the arms compared on the test split."""
    from fersweep.study_report import log_study

    d = sweep.definition
    base = sweep.base_config()
    tracker: Tracker = build(base.tracking)
    best: dict[str, tuple[optuna.trial.FrozenTrial, RunResult]] = {}
    for arm in d.arms:
        study = sweep.open_study(arm)
        parent = study.user_attrs[PARENT_RUN_ATTR]
        log_study(study, parent)
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not completed:
            console.print(f"[red]{arm}: no completed trial, nothing to retrain[/red]")
            tracker.end_detached_run(parent, "FAILED")
            continue
        trial = study.best_trial
        console.print(f"{arm}: best trial {trial.number}, {d.objective.metric} = {trial.value:.4f}")
        cfg = compose_config(sweep.config_dir, [*trial.user_attrs["overrides"], "eval_split=test"])
        tags = {"arm": arm, "sweep": d.name, "kind": "best", "optuna_trial": str(trial.number)}
        placement = RunPlacement(parent_run_id=parent, name=f"{arm}-best", tags=tags)
        result = train(cfg, trial.user_attrs["overrides"], placement=placement)
        best[arm] = (trial, result)
        tracker.end_detached_run(parent, "FINISHED")
    outcome = {
        "best": {
            arm: {
                "trial": t.number,
                "value": t.value,
                "params": t.params,
                "test_macro_f1": r.metrics["test/macro_f1"],
                "run_id": r.run_id,
            }
            for arm, (t, r) in best.items()
        }
    }
    if best:
        outcome["champion"] = register_models(sweep, tracker, best, sweep_run_id)
    folder = Path(base.paths.output_dir) / "sweep" / sweep_run_id
    folder.mkdir(parents=True, exist_ok=True)
    if len(best) >= 2:
        with tracker.resumed(sweep_run_id):
            report, summary, figures = summarise(
                {arm: ArmSummary(arm, [[r]]) for arm, (_, r) in best.items()},
                {},
                d.bootstrap,
                d.seed,
            )
            artifacts.log_comparison(report, summary, figures)
        console.print(Markdown(report))
        (folder / "report.md").write_text(report)
    artifacts.log_dict(outcome, "sweep/outcome.json", sweep_run_id)
    (folder / "outcome.json").write_text(json.dumps(outcome, indent=2, default=str))
    console.print(f"outcome written to {folder} and to MLflow run {sweep_run_id}")
    tracker.end_detached_run(sweep_run_id, "FINISHED")
    return outcome


def register_models(sweep: Sweep, tracker: Tracker, best, sweep_run_id: str) -> dict[str, Any]:
    """Register each arm's best model; the best by the sweep's objective (validation, never by
    test score) is the candidate. The alias `champion` moves to it only if it passes the gate
    (sweep.gate: cross-validated against the current champion and the references); otherwise
    it stays, and the outcome says why."""
    d = sweep.definition
    versions = {
        arm: tracker.register(
            result.run_id,
            d.registered_model,
            {
                "arm": arm,
                "sweep": d.name,
                "validation_" + d.objective.metric.replace("/", "_"): str(t.value),
            },
        )
        for arm, (t, result) in best.items()
    }
    pick = max if d.objective.direction is Direction.maximize else min
    arm = pick(best, key=lambda a: best[a][0].value)
    version = versions[arm]
    outcome = {"arm": arm, "version": version, "model": d.registered_model, "moved": True}
    if d.gate.folds is not None:
        judged = champion.run_gate(
            sweep.config_dir,
            d.gate,
            d.bootstrap,
            d.seed,
            [*d.base, *sweep.overrides],
            best[arm][0].user_attrs["overrides"],
            champion.current_champion_overrides(d.registered_model),
            sweep_run_id,
        )
        champion.record(judged, d.registered_model, version, best[arm][1].run_id)
        outcome.update(moved=judged.passed, gate=judged.reasons)
    if outcome["moved"]:
        tracker.set_alias(d.registered_model, "champion", version)
        console.print(f"champion: {d.registered_model} version {version} ({arm})")
    else:
        console.print(
            f"[yellow]champion unchanged: {d.registered_model} version {version} ({arm}) did not "
            f"pass the gate: {'; '.join(outcome['gate'])}[/yellow]"
        )
    return outcome
