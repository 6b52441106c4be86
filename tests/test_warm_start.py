"""Where a sweep starts and when an arm stops: known-good settings and the current champion's
run first in a new study, and an arm whose recent trials bring nothing better starts no more,
saying why on its MLflow run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from optuna.trial import TrialState, create_trial

from fersweep.config.schemas import Direction, ParamType, SearchParam
from fersweep.errors import ConfigError
from fersweep.tasks.sweep import run_sweep, trials
from fersweep.tasks.sweep.warm import ENQUEUED_ATTR, STOPPED_ATTR, from_overrides, stalled
from tests.test_sweep import client_for, definition, make_sweep

METRIC = "val/macro_f1_best"  # sweeps/tiny.yaml's objective

SPACE = {
    "loss": SearchParam(type=ParamType.categorical, choices=["cross_entropy", "logit_adjusted"]),
    "model.net.dense_units": SearchParam(type=ParamType.categorical, choices=["[128,32]", "[64]"]),
    "model.net.unfreeze_at_epoch": SearchParam(type=ParamType.categorical, choices=[2, None]),
    "model.net.filters": SearchParam(type=ParamType.int, low=16, high=48, step=16),
    "optimizer.lr": SearchParam(type=ParamType.float, low=3e-4, high=3e-3, log=True),
}


def test_a_champions_overrides_become_the_values_of_the_arms_own_search_space():
    overrides = [
        "data.split.seed=42",  # not searched: left out
        "loss=logit_adjusted",
        "model.net.dense_units=[64]",
        "model.net.unfreeze_at_epoch=null",
        "model.net.filters=32",
        "optimizer.lr=0.001",
    ]
    assert from_overrides(overrides, SPACE) == {
        "loss": "logit_adjusted",
        "model.net.dense_units": "[64]",
        "model.net.unfreeze_at_epoch": None,
        "model.net.filters": 32,
        "optimizer.lr": 0.001,
    }
    # a value the space no longer offers is left for the sampler
    assert from_overrides(["loss=focal", "optimizer.lr=0.1"], SPACE) == {}


def finished(*values, pruned=()):
    made = []
    for number, value in enumerate(values):
        state = TrialState.PRUNED if number in pruned else TrialState.COMPLETE
        trial = create_trial(value=None if number in pruned else value, state=state, params={})
        trial.number = number
        made.append(trial)
    return made


def test_an_arm_has_stalled_when_its_last_k_finished_trials_beat_nothing_before_them():
    assert stalled(finished(0.5, 0.6, 0.55, 0.58), 2, Direction.maximize).startswith(
        "no better value than 0.6000 in the last 2 finished trials"
    )
    assert stalled(finished(0.5, 0.55, 0.6), 2, Direction.maximize) is None  # still improving
    assert stalled(finished(0.5, 0.6), 2, Direction.maximize) is None  # nothing before them
    assert stalled(finished(0.5, 0.6, 0.0, 0.0, pruned=(2, 3)), 2, Direction.maximize)
    assert stalled(finished(0.5, 0.4, 0.45), 1, Direction.minimize)
    assert stalled(finished(0.5, 0.4, 0.3), 1, Direction.minimize) is None


def test_enqueued_settings_name_search_space_keys_or_are_refused(tmp_path, sweep_overrides):
    path = definition(tmp_path, warm_start={"enqueue": [{"optimizer.learning_rate": 0.01}]})
    with pytest.raises(ConfigError, match=r"warm_start.enqueue\[0\].*optimizer.learning_rate"):
        make_sweep(path, sweep_overrides)
    with pytest.raises(ConfigError, match="stop_when_stalled.trials=0"):
        make_sweep(path, sweep_overrides, **{"stop_when_stalled.trials": 0, "warm_start": "{}"})


def test_known_settings_run_first_and_an_arm_that_stopped_improving_stops(
    tmp_path, sweep_overrides, monkeypatch
):
    """Every trial scores the same (a stand-in objective), so after the enqueued first trial
    none is better: with stop_when_stalled.trials=1 the arm stops after its second trial of 4."""
    monkeypatch.setattr(trials, "objective", lambda *a: SimpleNamespace(metrics={METRIC: 0.5}))
    enqueued = {"optimizer.lr": 0.002, "model.net.filters": 8}
    path = definition(
        tmp_path,
        arms={"original": {"overrides": ["balancing=none"]}},
        warm_start={"enqueue": [enqueued], "champion": True},  # no champion yet: nothing more
        stop_when_stalled={"trials": 1},
        trials=4,
    )
    sweep = make_sweep(path, sweep_overrides)
    run_sweep(sweep)
    study = sweep.open_study("original")
    first, *rest = study.get_trials()
    assert first.params == enqueued and first.user_attrs[ENQUEUED_ATTR] == (
        "sweep.warm_start.enqueue[0]"
    )
    assert len(rest) == 1 and ENQUEUED_ATTR not in rest[0].user_attrs
    reason = study.user_attrs[STOPPED_ATTR]
    assert reason.startswith("no better value than 0.5000 in the last 1 finished trials")
    arm_run = client_for(sweep).get_run(study.user_attrs["mlflow_parent_run_id"])
    assert arm_run.data.tags["stopped_early"] == reason
