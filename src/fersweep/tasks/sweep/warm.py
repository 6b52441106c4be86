"""Where an arm's search starts and when it stops: known-good settings and the current
champion's enqueued as a new study's first trials (warm start), and an arm that has stopped
improving told to start no more (stop when stalled)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from fersweep.config.compose import as_overrides, build
from fersweep.config.schemas import Direction, ParamType, SearchParam
from fersweep.evaluation.console import console
from fersweep.studies import experimental_features
from fersweep.studies.storage import storage_lock
from fersweep.tasks import champion
from fersweep.tasks.sweep.study import PARENT_RUN_ATTR, Sweep
from fersweep.tracking import Tracker

ENQUEUED_ATTR = "enqueued_from"
STOPPED_ATTR = "stopped_when_stalled"


def warm_start(sweep: Sweep) -> None:
    """Each new study's first trials: `sweep.warm_start.enqueue`, then the current champion's
    settings (where they are keys of the arm's space). A study that has trials is left alone,
    so a resumed sweep enqueues nothing twice."""
    d = sweep.definition
    current = None
    if d.warm_start.champion:
        tracker: Tracker = build(sweep.base_config().tracking)
        tracker.connect()
        current = champion.current_champion_overrides(d.registered_model)
    for arm in d.arms:
        study = sweep.open_study(arm)
        space = d.arm_space(arm)
        with storage_lock(sweep.storage(), f"{study.study_name}-warm-start"):
            if study.get_trials(deepcopy=False):
                continue
            planned = [
                (f"sweep.warm_start.enqueue[{number}]", within(settings, space))
                for number, settings in enumerate(d.warm_start.enqueue)
            ]
            if current:
                planned.append(
                    (f"champion of {d.registered_model}", from_overrides(current, space))
                )
            for origin, params in planned:
                if params:
                    _enqueue(study, params, origin)


def _enqueue(study: optuna.Study, params: dict[str, Any], origin: str) -> None:
    with experimental_features():
        study.enqueue_trial(params, user_attrs={ENQUEUED_ATTR: origin}, skip_if_exists=True)
    console.print(f"{study.study_name}: enqueued {origin}: {params}")


def within(settings: Mapping[str, Any], space: Mapping[str, SearchParam]) -> dict[str, Any]:
    return {key: value for key, value in settings.items() if key in space}


def from_overrides(overrides: Sequence[str], space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """The search-space values a run's overrides (`key=value`) set: a categorical key's choice
    whose override reads the same, a number parsed; keys outside the space are left out."""
    found = {}
    for override in overrides:
        key, _, text = override.partition("=")
        param = space.get(key)
        if param is None:
            continue
        found.update(_value(key, param, text))
    return found


def _value(key: str, param: SearchParam, text: str) -> dict[str, Any]:
    """{key: value} for the value `text` names, or {} where the space has no such value."""
    if param.type is ParamType.categorical:
        matching = [c for c in param.choices if as_overrides({key: c})[0] == f"{key}={text}"]
        return {key: matching[0]} if matching else {}
    try:
        value = int(text) if param.type is ParamType.int else float(text)
    except ValueError:
        return {}
    return {key: value} if param.low <= value <= param.high else {}


def stalled(
    trials: Sequence[optuna.trial.FrozenTrial], patience: int, direction: Direction
) -> str | None:
    """Why the arm should start no more trials: its last `patience` finished (complete or
    pruned) trials brought no better value than the best before them; None while it still
    improves, or before there is anything to compare."""
    finished = sorted(
        (t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)),
        key=lambda t: t.number,
    )
    before = [t.value for t in finished[:-patience] if t.state == TrialState.COMPLETE]
    recent = [t.value for t in finished[-patience:] if t.state == TrialState.COMPLETE]
    if len(finished) <= patience or not before:
        return None
    sign = 1 if direction is Direction.maximize else -1
    best = max(sign * v for v in before)
    if recent and max(sign * v for v in recent) > best:
        return None
    return (
        f"no better value than {sign * best:.4f} in the last {patience} finished trials "
        "(sweep.stop_when_stalled.trials)"
    )


def stop_if_stalled(
    sweep: Sweep,
    study: optuna.Study,
    trials: Sequence[optuna.trial.FrozenTrial],
    tracker: Tracker,
) -> bool:
    """Whether the arm has stalled, judged on `trials` (the study's, as read under its lock);
    the first worker to see it tags the arm's MLflow run."""
    patience = sweep.definition.stop_when_stalled.trials
    if patience is None:
        return False
    reason = stalled(trials, patience, sweep.definition.objective.direction)
    if reason is None:
        return False
    if STOPPED_ATTR not in study.user_attrs:
        study.set_user_attr(STOPPED_ATTR, reason)
        tracker.set_tags(study.user_attrs[PARENT_RUN_ATTR], {"stopped_early": reason})
        console.print(f"[yellow]{study.study_name}: stopped, {reason}[/yellow]")
    return True
