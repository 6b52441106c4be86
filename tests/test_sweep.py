"""A tiny sweep on a tiny data set: trials counted exactly, pruning, failures, resume, MLflow
nesting, the champion, and two workers sharing one study on PostgreSQL."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import cv2
import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml
from optuna.trial import TrialState

from fersweep import EMOTIONS
from fersweep.config.compose import compose_config
from fersweep.config.schemas import ParamType, SearchParam, example_samples, sample_space
from fersweep.errors import ConfigError
from fersweep.evaluation.statistics import Difference
from fersweep.tasks.champion import own_model, verdict
from fersweep.tasks.compare.report import ComparisonSummary
from fersweep.tasks.sweep import PARENT_RUN_ATTR, SWEEP_RUN_ATTR, Sweep, run_sweep
from fersweep.tasks.sweep.study import ensure_parent_runs
from fersweep.tasks.sweep.warm import ENQUEUED_ATTR, warm_start
from tests.conftest import CONFIG_DIR, PROJECT_ROOT, WEIGHTS

TINY = PROJECT_ROOT / "sweeps" / "tiny.yaml"


def definition(tmp_path: Path, **changes) -> Path:
    """sweeps/tiny.yaml with some keys replaced, written to `<test folder>/definitions/sweeps/`."""
    spec = yaml.safe_load(TINY.read_text())
    spec.update(changes)
    path = tmp_path / "definitions" / "sweeps" / f"sweep_{uuid.uuid4().hex[:6]}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep_arguments(path: Path, overrides: list[str], **own) -> list[str]:
    """The command line of `python sweep.py` for the definition at `path`, with changes."""
    return [
        f"hydra.searchpath=[file://{path.parent.parent}]",
        f"sweeps@sweep={path.stem}",
        *(f"sweep.{key}={value}" for key, value in own.items()),
        *overrides,
    ]


def make_sweep(path: Path, overrides: list[str], **own) -> Sweep:
    return Sweep.compose(CONFIG_DIR, sweep_arguments(path, overrides, **own))


def client_for(sweep: Sweep) -> mlflow.MlflowClient:
    mlflow.set_tracking_uri(sweep.base_config().tracking.tracking_uri)
    return mlflow.MlflowClient()


def runs_by_kind(sweep: Sweep, kind: str):
    client = client_for(sweep)
    experiment = client.get_experiment_by_name(sweep.base_config().tracking.experiment)
    return client.search_runs([experiment.experiment_id], f"tags.kind = '{kind}'")


@pytest.fixture(scope="module")
def finished_sweep(module_workspace):
    _, overrides = module_workspace
    sweep = make_sweep(TINY, overrides, **{"gate.folds": 2})  # the champion gate on 2 folds
    outcome = run_sweep(sweep)
    return sweep, outcome


def test_each_arm_runs_exactly_the_requested_trials(finished_sweep):
    sweep, _ = finished_sweep
    for arm in ("original", "balanced"):
        study = sweep.open_study(arm)
        assert len(study.trials) == 3
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


def test_trials_are_nested_mlflow_runs_under_their_arm_under_the_sweep(finished_sweep):
    sweep, _ = finished_sweep
    (sweep_run,) = runs_by_kind(sweep, "sweep")
    arms = runs_by_kind(sweep, "sweep-arm")
    assert {r.data.tags["arm"] for r in arms} == {"original", "balanced"}
    trials = runs_by_kind(sweep, "trial")
    assert len(trials) == 6
    for arm_run in arms:
        assert arm_run.data.tags["mlflow.parentRunId"] == sweep_run.info.run_id
        study = sweep.open_study(arm_run.data.tags["arm"])
        assert study.user_attrs[PARENT_RUN_ATTR] == arm_run.info.run_id
        mine = [t for t in trials if t.data.tags["arm"] == arm_run.data.tags["arm"]]
        assert {t.data.tags["mlflow.parentRunId"] for t in mine} == {arm_run.info.run_id}
        states = {int(t.data.tags["optuna_trial"]): t.data.tags["state"] for t in mine}
        assert states == {t.number: t.state.name.lower() for t in study.trials}
        assert arm_run.data.metrics["trials/complete"] >= 1


def test_the_arm_run_holds_the_study_plots_table_and_best_params(finished_sweep):
    sweep, _ = finished_sweep
    arm_run = runs_by_kind(sweep, "sweep-arm")[0]
    client = client_for(sweep)
    files = {f.path for f in client.list_artifacts(arm_run.info.run_id, "study/plots")}
    for plot in ("optimization_history", "intermediate_values", "parallel_coordinate"):
        assert {f"study/plots/{plot}.html", f"study/plots/{plot}.png"} <= files
    assert "study/trials.csv" in {
        f.path for f in client.list_artifacts(arm_run.info.run_id, "study")
    }
    assert "best.model.net.filters" in arm_run.data.tags


def own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An MLflow store of the test's own (MLflow sets MLFLOW_TRACKING_URI too: undone after)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)


def test_a_resumed_sweep_whose_best_trial_changed_records_the_new_best(tmp_path, monkeypatch):
    """The arm run is the same run in every launch of a sweep; its best trial may change."""
    from fersweep.tasks.sweep.report import log_study

    own_store(tmp_path, monkeypatch)
    run_id = mlflow.MlflowClient().create_run("0").info.run_id
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"lr": 0.1})
    study.optimize(lambda t: t.suggest_float("lr", 0.0, 1.0), n_trials=1)
    log_study(study, run_id)
    study.enqueue_trial({"lr": 0.7})  # the next launch's trial is better
    study.optimize(lambda t: t.suggest_float("lr", 0.0, 1.0), n_trials=1)
    log_study(study, run_id)
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.data.tags["best.lr"] == "0.7"
    assert run.data.metrics["best/value"] == 0.7 and run.data.metrics["trials/complete"] == 2


def test_each_arms_best_run_tests_and_registers_its_best_trials_own_weights(
    finished_sweep, tmp_path
):
    sweep, _ = finished_sweep
    client = client_for(sweep)
    for best in runs_by_kind(sweep, "best"):
        study = sweep.open_study(best.data.tags["arm"])
        trial = study.trials[int(best.data.tags["optuna_trial"])]
        assert trial.number == study.best_trial.number
        trained_in = trial.user_attrs["mlflow_run_id"]
        assert best.data.tags["weights_from_run"] == trained_in
        kept = torch.load(
            client.download_artifacts(trained_in, "checkpoint/best.ckpt", str(tmp_path)),
            weights_only=False,
        )["state_dict"]
        registered = mlflow.pytorch.load_model(f"runs:/{best.info.run_id}/model")
        weights = registered.state_dict()
        assert weights and all(torch.equal(kept[f"net.{k}"], v) for k, v in weights.items())
        # The curves of the training that made them, beside their test.
        history = [m.value for m in client.get_metric_history(best.info.run_id, "val/macro_f1")]
        assert history == [m.value for m in client.get_metric_history(trained_in, "val/macro_f1")]
        assert "test/macro_f1" in best.data.metrics


def test_a_best_trial_is_trained_again_when_asked_or_when_it_kept_no_checkpoint(
    tmp_path, monkeypatch
):
    from types import SimpleNamespace

    from fersweep.config.schemas import BestWeights
    from fersweep.tasks.sweep.finish import kept_checkpoint

    own_store(tmp_path, monkeypatch)
    run_id = mlflow.MlflowClient().create_run("0").info.run_id  # a run with no checkpoint
    trial = optuna.trial.create_trial(value=0.5, user_attrs={"mlflow_run_id": run_id})
    older = optuna.trial.create_trial(value=0.5)  # from before trials named their runs
    for weights, kept in ((BestWeights.retrain, trial), (BestWeights.trial, trial),
                          (BestWeights.trial, older)):  # fmt: skip
        sweep = SimpleNamespace(definition=SimpleNamespace(best_weights=weights))
        assert kept_checkpoint(sweep, kept, tmp_path) is None


def test_the_best_trials_are_tested_registered_and_the_champion_must_pass_the_gate(finished_sweep):
    sweep, outcome = finished_sweep
    best_runs = runs_by_kind(sweep, "best")
    assert len(best_runs) == 2 and all("test/macro_f1" in r.data.metrics for r in best_runs)
    client = client_for(sweep)
    candidate = outcome["champion"]
    best_value = max(v["value"] for v in outcome["best"].values())
    assert outcome["best"][candidate["arm"]]["value"] == best_value  # by validation
    # The gate: the candidate and the HOG reference re-trained on 2 folds each.
    gate_runs = runs_by_kind(sweep, "gate")
    assert sorted(r.info.run_name for r in gate_runs) == [
        "candidate-fold0-seed42", "candidate-fold1-seed42",
        "hog_svm-fold0-seed42", "hog_svm-fold1-seed42",
    ]  # fmt: skip
    version = client.get_model_version(candidate["model"], candidate["version"])
    assert version.tags["gate_passed"] == str(candidate["moved"]).lower()
    assert "hog_svm" in version.tags["gate_reasons"] and "gate_vs_hog_svm" in version.tags
    assert "champion_gate/report.md" in {
        f.path for f in client.list_artifacts(version.run_id, "champion_gate")
    }
    # Beside its score, the candidate's test folds scored reframed (nothing more trained).
    gate_report = Path(client.download_artifacts(version.run_id, "champion_gate/report.md"))
    framing = gate_report.read_text().split("## Framing")[1]
    assert "| candidate " in framing and "larger canvas" in framing
    reframed = {
        r.info.run_name.split("-")[0]
        for r in gate_runs
        if "test_reframed/macro_f1" in r.data.metrics
    }
    assert reframed == {"candidate"}
    if candidate["moved"]:
        champion = client.get_model_version_by_alias("fersweep-emotion", "champion")
        assert champion.version == candidate["version"]
        classifier = mlflow.pyfunc.load_model("models:/fersweep-emotion@champion")
        image = cv2.imencode(".png", np.zeros((40, 40), np.uint8))[1].tobytes()
        (row,) = classifier.predict(pd.DataFrame({"image": [image]})).to_dict(orient="records")
        assert row["emotion"] in EMOTIONS and row["error"] == ""
    else:  # the alias did not move, and the outcome says why
        with pytest.raises(mlflow.exceptions.MlflowException):
            client.get_model_version_by_alias("fersweep-emotion", "champion")
        assert any("does not beat hog_svm" in reason for reason in candidate["gate"])
    (sweep_run,) = runs_by_kind(sweep, "sweep")
    assert any(key.endswith("/macro_f1_difference") for key in sweep_run.data.metrics)
    assert sweep_run.info.status == "FINISHED"
    folder = Path(sweep.base_config().paths.output_dir) / "sweep" / sweep_run.info.run_id
    assert json.loads((folder / "outcome.json").read_text())["champion"] == outcome["champion"]
    assert "paired bootstrap" in (folder / "report.md").read_text()


def test_the_gate_judges_the_candidate_against_every_opponent_by_the_interval():
    def summary(**differences):
        diffs = {
            name: Difference(d, lo, hi, 0.95, 100) for name, (d, lo, hi) in differences.items()
        }
        arms = [{"arm": "candidate", "macro F1": 0.4}]
        return ComparisonSummary(
            baseline="candidate",
            differences=diffs,
            arms=arms,
            per_class=[],
            precision_at_prevalence=[],
            references=[],
            folds=5,
        )

    # The summary holds opponent − candidate: the candidate wins where that lies below zero.
    won = verdict(summary(champion=(-0.05, -0.08, -0.01), hog_svm=(-0.10, -0.14, -0.06)))
    assert won.passed and won.tags()["gate_vs_champion"] == "+0.0500 [+0.0100, +0.0800]"
    lost = verdict(summary(champion=(-0.02, -0.05, 0.01), hog_svm=(-0.10, -0.14, -0.06)))
    assert not lost.passed and lost.reasons[0].startswith("does not beat champion")
    assert own_model(["model.net.filters=8", "seed=1"], ["model=hog_svm"]) == ["seed=1"]


def test_running_the_sweep_again_resumes_the_same_study(tmp_path, sweep_overrides):
    path = definition(tmp_path, arms={"original": {"overrides": ["balancing=none"]}})
    run_sweep(make_sweep(path, sweep_overrides, trials=2))
    first_parent = make_sweep(path, sweep_overrides).open_study("original").user_attrs
    sweep = make_sweep(path, sweep_overrides, trials=3)
    run_sweep(sweep)
    study = sweep.open_study("original")
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert study.user_attrs[PARENT_RUN_ATTR] == first_parent[PARENT_RUN_ATTR]
    assert study.user_attrs[SWEEP_RUN_ATTR] == first_parent[SWEEP_RUN_ATTR]
    assert len(runs_by_kind(sweep, "sweep-arm")) == 1


def test_pruned_trials_are_recorded_as_pruned_in_optuna_and_mlflow(tmp_path, sweep_overrides):
    path = definition(
        tmp_path,
        arms={"original": {"overrides": ["balancing=none"]}},
        pruner={"_target_": "optuna.pruners.ThresholdPruner", "lower": 1.1},  # prunes all
    )
    sweep = make_sweep(path, sweep_overrides, trials=2)
    run_sweep(sweep)
    assert [t.state for t in sweep.open_study("original").trials] == [TrialState.PRUNED] * 2
    trials = runs_by_kind(sweep, "trial")
    assert {(r.info.status, r.data.tags["state"]) for r in trials} == {("KILLED", "pruned")}


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, sweep_overrides):
    # SGD accepts a NaN learning rate, so the loss turns NaN mid-training: a runtime fault.
    path = definition(
        tmp_path,
        arms={
            "broken": {"overrides": ["balancing=none", "optimizer=sgd", "optimizer.lr=nan"]},
            "original": {"overrides": ["balancing=none"]},
        },
        search_space={"model.net.filters": {"type": "int", "low": 4, "high": 8, "step": 4}},
    )
    sweep = make_sweep(path, sweep_overrides, trials=2)
    outcome = run_sweep(sweep)
    broken = sweep.open_study("broken").trials
    assert [t.state for t in broken] == [TrialState.FAIL] * 2
    assert "loss became nan" in broken[0].user_attrs["error"]
    assert all(t.state == TrialState.COMPLETE for t in sweep.open_study("original").trials)
    failed = [r for r in runs_by_kind(sweep, "trial") if r.data.tags["arm"] == "broken"]
    assert {r.info.status for r in failed} == {"FAILED"}
    assert "loss became nan" in failed[0].data.tags["error"]
    assert outcome["champion"]["arm"] == "original"


def test_a_bad_search_space_fails_before_any_training(tmp_path, sweep_overrides):
    path = definition(
        tmp_path, search_space={"model.net.filters": {"type": "categorical", "choices": []}}
    )
    with pytest.raises(ConfigError, match="search_space.model.net.filters.choices is empty"):
        make_sweep(path, sweep_overrides)
    path = definition(
        tmp_path, search_space={"model.net.no_such_key": {"type": "int", "low": 1, "high": 2}}
    )
    with pytest.raises(ConfigError, match="no_such_key"):
        run_sweep(make_sweep(path, sweep_overrides))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.postgres
def test_two_workers_share_one_postgresql_study_with_exact_trial_count(
    tmp_path, sweep_overrides, postgres_database
):
    path = definition(tmp_path, arms={"original": {"overrides": ["balancing=none"]}})
    sweep = make_sweep(path, sweep_overrides, trials=5, workers=2, storage=postgres_database)
    run_sweep(sweep)
    study = optuna.load_study(study_name="tiny-original", storage=postgres_database)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3, 4]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert workers == {0, 1}
    assert len(runs_by_kind(sweep, "trial")) == 5


def test_a_misspelt_definition_key_fails_with_hydras_message_naming_it(tmp_path, sweep_overrides):
    with pytest.raises(ConfigError, match="Key 'trialz' not in 'SweepDefinition'"):
        make_sweep(TINY, sweep_overrides, trialz=3)  # on the command line
    path = definition(tmp_path, trialz=3)
    with pytest.raises(ConfigError, match="Key 'trialz' not in 'SweepDefinition'"):
        make_sweep(path, sweep_overrides)  # in the file
    with pytest.raises(ConfigError, match="expected one of \\[maximize, minimize\\]"):
        make_sweep(TINY, sweep_overrides, **{"objective.direction": "up"})


def test_overrides_outside_the_definition_change_every_trial_and_not_the_definition(
    sweep_overrides,
):
    sweep = make_sweep(TINY, [*sweep_overrides, "trainer.max_epochs=1"], trials=4)
    assert sweep.definition.trials == 4
    assert "trainer.max_epochs=1" in sweep.overrides
    assert not any(o.startswith(("sweep", "hydra")) for o in sweep.overrides)
    for arm in sweep.definition.arms:
        sampled = {k: p.example() for k, p in sweep.definition.arm_space(arm).items()}
        overrides = sweep.trial_overrides(arm, sampled)
        cfg = compose_config(CONFIG_DIR, overrides)
        assert cfg.trainer.max_epochs == 1 and cfg.model.net.filters == 4


def test_a_conditional_setting_is_searched_only_in_trials_whose_condition_holds():
    space = {
        "loss": SearchParam(ParamType.categorical, choices=["cross_entropy", "logit_adjusted"]),
        "loss.tau": SearchParam(ParamType.float, 0.5, 2.0, when={"loss": ["logit_adjusted"]}),
        "model.net.filters": SearchParam(ParamType.int, 8, 16, step=8),
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask()
        sampled = sample_space(space, lambda key, param, trial=trial: param.suggest(trial, key))
        study.tell(trial, 0.0)
        assert ("loss.tau" in sampled) == (sampled["loss"] == "logit_adjusted")
        assert set(trial.params) == set(sampled)  # Optuna knows only what was searched
    assert {t.params["loss"] for t in study.trials} == {"cross_entropy", "logit_adjusted"}
    # Before training, every key is composed once with its conditions met.
    assert [s.get("loss.tau") for s in example_samples(space)] == [None, 0.5]


def test_the_default_sweep_searches_each_losss_own_parameter_beside_the_loss(
    sweep_overrides, monkeypatch
):
    monkeypatch.setenv("FERSWEEP_WEIGHTS", str(WEIGHTS))
    # the backbone is searched: no override of one backbone's keys, nor of the input size
    overrides = [o for o in sweep_overrides if not o.startswith(("model.", "data.preprocess."))]
    sweep = make_sweep(PROJECT_ROOT / "sweeps" / "default.yaml", overrides)
    assert sweep.definition.search_space["model"].choices == ["cnn", "mini_xception"]
    space = sweep.definition.arm_space("original")
    assert space["loss.tau"].when == {"loss": ["logit_adjusted"]}
    assert space["loss.beta"].when == {"loss.weighting": ["effective_number"]}
    # smoothing goes with every loss (the prior-adjusted ones smooth toward their prior)
    assert not space["loss.label_smoothing"].when
    sweep.check()  # every loss and its parameter compose and build


def test_an_override_of_one_backbones_key_reaches_only_the_trials_of_that_backbone(
    sweep_overrides, monkeypatch
):
    monkeypatch.setenv("FERSWEEP_WEIGHTS", str(WEIGHTS))
    overrides = [o for o in sweep_overrides if not o.startswith(("model.", "data.preprocess."))]
    default = PROJECT_ROOT / "sweeps" / "default.yaml"
    # the sweep's own config has today's CNN, which has no frozen stages to keep
    sweep = make_sweep(default, [*overrides, "model.net.frozen_memo_mb=0", "trainer.max_epochs=1"])
    assert sweep.where_present == ["model.net.frozen_memo_mb=0"]
    assert "trainer.max_epochs=1" in sweep.overrides
    sweep.check()
    for model, memo in (("cnn", None), ("mini_xception", 0)):
        cfg = compose_config(CONFIG_DIR, sweep.trial_overrides("balanced", {"model": model}))
        assert cfg.model.net.get("frozen_memo_mb") == memo and cfg.trainer.max_epochs == 1
    assert sweep.base_config().model.net.get("frozen_memo_mb") is None
    # a key no trial has is a mistake, named before any training
    with pytest.raises(ConfigError, match="model.net.frozen_memo=0: no trial's config has"):
        make_sweep(default, [*overrides, "model.net.frozen_memo=0"]).check()


def test_a_new_sweep_starts_from_the_current_champions_settings(finished_sweep, tmp_path):
    sweep, outcome = finished_sweep
    spec = yaml.safe_load(TINY.read_text())
    path = tmp_path / "definitions" / "sweeps" / "next_tiny.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({**spec, "name": "next-tiny"}))  # new studies, same store
    following = make_sweep(path, sweep.overrides)
    ensure_parent_runs(following)
    warm_start(following)
    queued = {
        arm: following.open_study(arm).get_trials(states=(TrialState.WAITING,))
        for arm in following.definition.arms
    }
    if outcome["champion"]["moved"]:
        champion_run = client_for(sweep).get_run(
            client_for(sweep).get_model_version_by_alias("fersweep-emotion", "champion").run_id
        )
        filters = re.search(r"model.net.filters=(\d+)", champion_run.data.tags["overrides"])
        for trials in queued.values():
            (first,) = trials
            assert first.user_attrs[ENQUEUED_ATTR] == "champion of fersweep-emotion"
            fixed = first.system_attrs["fixed_params"]  # Optuna's, until a worker asks for it
            assert fixed["model.net.filters"] == int(filters.group(1))
    else:
        assert not any(queued.values())  # no champion, nothing to start from


def test_a_worker_whose_arm_is_full_moves_on_at_once_and_waits_only_at_the_end(
    tmp_path, sweep_overrides
):
    from fersweep.config.compose import build
    from fersweep.tasks.sweep.trials import _next_trial

    sweep = make_sweep(TINY, sweep_overrides, trials=1, heartbeat_seconds=30)
    study = sweep.open_study("original")
    study.ask()  # the arm's one trial, running on another worker
    tracker = build(sweep.base_config().tracking)
    started = time.monotonic()
    assert _next_trial(sweep, study, None, tracker, until_settled=False) is None
    assert time.monotonic() - started < 10  # not a heartbeat interval of idling


def test_a_later_sweeps_gate_takes_every_fold_run_it_would_repeat_from_the_last(finished_sweep):
    sweep, _ = finished_sweep
    before = {r.info.run_id for r in runs_by_kind(sweep, "gate")}
    # The same trials sampled again under a new name: the same candidate, the same reference,
    # on the same data and folds; any_commit as this checkout's tree may hold uncommitted work.
    again = make_sweep(
        TINY,
        sweep.overrides,
        name="tiny_again",
        **{"gate.folds": 2, "gate.reuse.match": "any_commit"},
    )
    outcome = run_sweep(again)
    assert {r.info.run_id for r in runs_by_kind(again, "gate")} == before  # nothing trained
    assert outcome["champion"]["gate"]  # and still judged
