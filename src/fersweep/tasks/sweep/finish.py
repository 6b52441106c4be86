"""The finish, once for the trials there are: each arm's study recorded, its best trial retrained
and tested, each best registered, the candidate judged by the champion gate, the arms compared."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from fersweep.config.compose import build, compose_config
from fersweep.config.schemas import BestWeights, Direction
from fersweep.evaluation.console import console, show_markdown
from fersweep.studies.storage import storage_lock
from fersweep.tasks import champion
from fersweep.tasks.compare.arms import ArmRuns
from fersweep.tasks.compare.report import summarise
from fersweep.tasks.sweep.report import log_study
from fersweep.tasks.sweep.study import (
    FINISHED_ATTR,
    OUTCOME_ATTR,
    PARENT_RUN_ATTR,
    Sweep,
    end_parent_runs,
)
from fersweep.tasks.sweep.trials import (
    close_runs_of_failed_trials,
    fail_stale,
    finished_trials,
    unfinished,
)
from fersweep.tasks.train import RunPlacement, RunResult, train
from fersweep.tracking import Tracker, artifacts, registry
from fersweep.tracking.callbacks import KeepBestCheckpoint


def finish_once(sweep: Sweep, sweep_run_id: str) -> dict[str, Any]:
    """Every machine's driver (or the finish job) gets here; the first finishes the sweep for
    the trials there are, the others find it finished. Only finished trials are judged: while
    an arm still has trials running, waiting or unstarted (its workers were cancelled, say),
    nothing is retrained or registered and the sweep's runs are ended as interrupted, so the
    same command resumes it and then finishes it."""
    d = sweep.definition
    with storage_lock(sweep.storage(), f"{d.name}-finish"):
        studies = [sweep.open_study(arm) for arm in d.arms]
        fail_lost_trials(sweep, studies)
        if unsettled := {s.study_name: why for s in studies if (why := unfinished(sweep, s))}:
            return interrupted(sweep, sweep_run_id, unsettled)
        done = {s.study_name: finished_trials(s) for s in studies}
        if all(s.user_attrs.get(FINISHED_ATTR) == done[s.study_name] for s in studies):
            console.print(f"sweep {d.name} was already finished for these trials")
            end_parent_runs(sweep, sweep_run_id, "FINISHED")
            return studies[0].user_attrs.get(OUTCOME_ATTR, {})
        try:
            outcome = finish(sweep, sweep_run_id)
        except BaseException as error:
            end_parent_runs(sweep, sweep_run_id, "FAILED", {"error": str(error)[:5000]})
            raise
        for study in studies:
            study.set_user_attr(FINISHED_ATTR, done[study.study_name])
            study.set_user_attr(OUTCOME_ATTR, outcome)
    return outcome


def fail_lost_trials(sweep: Sweep, studies: list[optuna.Study]) -> None:
    """Trials still RUNNING when the finish starts belong to workers that are gone (a finish
    job starts after its workers ended) or still at work elsewhere: each is given the time a
    silent worker is allowed (three heartbeat intervals), then failed by Optuna and re-queued
    if its worker stopped beating, and its MLflow run is closed."""
    tracker: Tracker = build(sweep.base_config().tracking)
    interval = sweep.definition.heartbeat_seconds
    deadline = time.monotonic() + 3 * interval + interval
    while any(_running(s) for s in studies) and time.monotonic() < deadline:
        time.sleep(interval)
        for study in studies:
            fail_stale(study)
    for study in studies:
        close_runs_of_failed_trials(study, tracker)


def _running(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def interrupted(sweep: Sweep, sweep_run_id: str, unsettled: dict[str, str]) -> dict[str, Any]:
    """The sweep's and arms' runs ended as KILLED, saying why and how to go on."""
    reasons = "; ".join(f"{name}: {why}" for name, why in unsettled.items())
    note = f"interrupted ({reasons}); run the same command again to resume and finish"
    end_parent_runs(sweep, sweep_run_id, "KILLED", {"state": "interrupted", "interrupted": note})
    console.print(f"[yellow]sweep {sweep.definition.name} not finished: {note}[/yellow]")
    return {"interrupted": unsettled}


def finish(sweep: Sweep, sweep_run_id: str) -> dict[str, Any]:
    """Plots and the trial table per arm, each arm's best config retrained and tested, the
    best overall registered as `champion`, and the arms compared on the test split."""
    base = sweep.base_config()
    tracker: Tracker = build(base.tracking)
    best = {
        arm: found for arm in sweep.definition.arms if (found := retrain_best(sweep, arm, tracker))
    }
    outcome: dict[str, Any] = {"best": {arm: _best_entry(t, r) for arm, (t, r) in best.items()}}
    if best:
        outcome["champion"] = register_models(sweep, tracker, best, sweep_run_id)
    folder = Path(base.paths.output_dir) / "sweep" / sweep_run_id
    folder.mkdir(parents=True, exist_ok=True)
    if len(best) >= 2:
        compare_arms(sweep, tracker, best, sweep_run_id, folder)
    artifacts.log_dict(outcome, "sweep/outcome.json", sweep_run_id)
    (folder / "outcome.json").write_text(json.dumps(outcome, indent=2, default=str))
    console.print(f"outcome written to {folder} and to MLflow run {sweep_run_id}")
    tracker.end_detached_run(sweep_run_id, "FINISHED")
    return outcome


Best = tuple[optuna.trial.FrozenTrial, RunResult]
WEIGHTS_FROM_RUN_TAG = "weights_from_run"  # on a best run that tested its trial's own weights


def retrain_best(sweep: Sweep, arm: str, tracker: Tracker) -> Best | None:
    """The arm's study recorded on its run, and its best trial's config trained again and
    tested on the test split; None when no trial completed."""
    d = sweep.definition
    study = sweep.open_study(arm)
    parent = study.user_attrs[PARENT_RUN_ATTR]
    log_study(study, parent)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        console.print(f"[red]{arm}: no completed trial, nothing to retrain[/red]")
        tracker.end_detached_run(parent, "FAILED")
        return None
    trial = study.best_trial
    console.print(f"{arm}: best trial {trial.number}, {d.objective.metric} = {trial.value:.4f}")
    overrides = trial.user_attrs["overrides"]
    cfg = compose_config(sweep.config_dir, [*overrides, "eval_split=test"])
    tags = {"arm": arm, "sweep": d.name, "kind": "best", "optuna_trial": str(trial.number)}
    with tempfile.TemporaryDirectory(prefix="fersweep-best-") as folder:
        checkpoint = kept_checkpoint(sweep, trial, Path(folder))
        trained_in = trial.user_attrs["mlflow_run_id"] if checkpoint else None
        if trained_in:
            tags[WEIGHTS_FROM_RUN_TAG] = trained_in
        placement = RunPlacement(parent_run_id=parent, name=f"{arm}-best", tags=tags)
        result = train(cfg, overrides, placement=placement, checkpoint=checkpoint)
    if trained_in:  # the curves of the training that made these weights, beside their test
        artifacts.copy_metric_history(trained_in, result.run_id)
    tracker.end_detached_run(parent, "FINISHED")
    return trial, result


def kept_checkpoint(sweep: Sweep, trial: optuna.trial.FrozenTrial, folder: Path) -> Path | None:
    """The best trial's own best epoch, fetched from its run (`sweep.best_weights: trial`), or
    None where its config is to be trained again (`retrain`, or a trial that kept none: one
    run before checkpoints were kept)."""
    if sweep.definition.best_weights is not BestWeights.trial:
        return None
    run_id = trial.user_attrs.get("mlflow_run_id")
    found = run_id and artifacts.downloaded(run_id, KeepBestCheckpoint.ARTIFACT, folder)
    if found:
        console.print(f"trial {trial.number}: its own weights tested (run {run_id})")
        return found
    console.print(f"[yellow]trial {trial.number} kept no checkpoint: trained again[/yellow]")
    return None


def _best_entry(trial: optuna.trial.FrozenTrial, result: RunResult) -> dict[str, Any]:
    return {
        "trial": trial.number,
        "value": trial.value,
        "params": trial.params,
        "test_macro_f1": result.metrics["test/macro_f1"],
        "run_id": result.run_id,
    }


def compare_arms(
    sweep: Sweep, tracker: Tracker, best: dict[str, Best], sweep_run_id: str, folder: Path
) -> None:
    """The arms' best runs compared on the test split, recorded on the sweep's run."""
    with tracker.resumed(sweep_run_id):
        comparison = summarise(
            {arm: ArmRuns(arm, [[result]]) for arm, (_, result) in best.items()},
            {},
            sweep.definition.bootstrap,
            sweep.definition.seed,
        )
        comparison.record()
    show_markdown(comparison.report)
    (folder / "report.md").write_text(comparison.report)


def register_models(sweep: Sweep, tracker: Tracker, best, sweep_run_id: str) -> dict[str, Any]:
    """Register each arm's best model; the best by the sweep's objective (validation, never by
    test score) is the candidate. The alias `champion` moves to it only if it passes the gate
    (sweep.gate: cross-validated against the current champion and the references); otherwise
    it stays, and the outcome says why."""
    d = sweep.definition
    tracker.connect()
    versions = {
        arm: registry.register(
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
            tracker,
        )
        champion.record(judged, d.registered_model, version, best[arm][1].run_id)
        outcome.update(moved=judged.passed, gate=judged.reasons)
    if outcome["moved"]:
        registry.set_alias(d.registered_model, champion.CHAMPION, version)
        console.print(f"champion: {d.registered_model} version {version} ({arm})")
    else:
        console.print(
            f"[yellow]champion unchanged: {d.registered_model} version {version} ({arm}) did not "
            f"pass the gate: {'; '.join(outcome['gate'])}[/yellow]"
        )
    return outcome
