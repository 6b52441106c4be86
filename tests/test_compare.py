"""The comparison: Bayes' rule at the natural prevalence, the paired bootstrap over people,
out-of-fold pooling, the report and its MLflow runs."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from fersweep import EMOTIONS
from fersweep.config.compose import compose_definition
from fersweep.config.schemas import Bootstrap
from fersweep.errors import ConfigError
from fersweep.evaluation.metrics import SplitPredictions, evaluate, macro_f1
from fersweep.evaluation.statistics import (
    paired_bootstrap_difference,
    precision_at_prevalence,
    weighted_macro_f1,
)
from fersweep.services.processes import core_share
from fersweep.tasks.compare import run_comparison
from fersweep.tasks.compare.arms import ArmRuns, fold_overrides
from fersweep.tasks.compare.report import common_called_rare, summarise
from fersweep.tasks.train import RunResult
from tests.conftest import CONFIG_DIR, write_legend_dataset

BOOTSTRAP = Bootstrap(resamples=50, confidence=0.9)


def test_precision_at_prevalence_reweights_a_balanced_test_set_to_the_real_world():
    # Balanced test set: 100 of each; the classifier finds 90% of class 1, and calls 10% of
    # class 0 "1". Plain precision is 0.9; with class 1 at 1% prevalence it is far lower.
    confusion = np.array([[90, 10], [10, 90]])
    plain = evaluate(
        np.repeat([0, 0, 1, 1], [90, 10, 10, 90]), np.repeat([0, 1, 0, 1], [90, 10, 10, 90])
    ).per_class
    adjusted = precision_at_prevalence(confusion, np.array([0.99, 0.01]))
    assert adjusted[1] == pytest.approx(0.9 * 0.01 / (0.9 * 0.01 + 0.1 * 0.99))
    assert adjusted[1] < 0.1 < plain["precision"].iloc[1]
    assert precision_at_prevalence(confusion, np.array([0.5, 0.5]))[1] == pytest.approx(0.9)


def test_a_never_predicted_class_has_no_precision():
    adjusted = precision_at_prevalence(np.array([[5, 0], [3, 0]]), np.array([0.5, 0.5]))
    assert np.isnan(adjusted[1])


def test_the_paired_bootstrap_interval_holds_a_real_difference_and_excludes_zero():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 400)
    good = np.where(rng.random(400) < 0.8, truth, rng.integers(0, 4, 400))
    poor = np.where(rng.random(400) < 0.4, truth, rng.integers(0, 4, 400))
    result = paired_bootstrap_difference(truth, [poor], [good], 300, 0.95, seed=1)
    assert result.low < result.difference < result.high
    assert result.low > 0
    same = paired_bootstrap_difference(truth, [good], [good], 300, 0.95, seed=1)
    assert same.low == same.high == 0


def test_the_bootstrap_over_people_is_wider_than_over_images_when_a_person_decides_it():
    # 40 people with 10 images each; the candidate is right on every image of half the people
    # and wrong on all of the others' images: its gain hinges on which people are drawn.
    rng = np.random.default_rng(3)
    people = np.repeat(np.arange(40), 10)
    truth = rng.integers(0, 4, 400)
    baseline = np.where(rng.random(400) < 0.5, truth, (truth + 1) % 4)
    lucky = np.isin(people, rng.choice(40, 20, replace=False))
    candidate = np.where(lucky, truth, (truth + 1) % 4)
    by_image = paired_bootstrap_difference(truth, [baseline], [candidate], 400, 0.95, seed=1)
    by_person = paired_bootstrap_difference(
        truth, [baseline], [candidate], 400, 0.95, seed=1, groups=people
    )
    assert by_person.difference == by_image.difference
    assert by_person.high - by_person.low > 2 * (by_image.high - by_image.low)


def test_a_weighted_macro_f1_counts_an_image_as_often_as_its_weight():
    rng = np.random.default_rng(4)
    truth, predicted = rng.integers(0, 8, 200), rng.integers(0, 8, 200)
    weights = rng.integers(0, 3, 200)
    repeated = np.repeat(np.arange(200), weights)
    assert weighted_macro_f1(truth, predicted, weights, 8) == pytest.approx(
        macro_f1(truth[repeated], predicted[repeated])
    )


def run(truth, predicted, files=None, people=None) -> RunResult:
    outputs = SplitPredictions(truth, np.eye(8)[predicted])
    files = np.array([f"{i:04d}.jpg" for i in range(len(truth))]) if files is None else files
    people = np.arange(len(truth)) // 2 if people is None else people
    return RunResult(
        run_id="id",
        metrics={},
        outputs=outputs,
        prevalence=np.full(8, 1 / 8),
        files=files,
        people=people,
    )


def arm(name, *runs_by_seed) -> ArmRuns:
    return ArmRuns(name, [list(runs) for runs in runs_by_seed])


def test_the_report_compares_arms_on_the_same_split_and_refuses_different_splits():
    truth = np.arange(80) % 8
    arms = {
        "original": arm("original", [run(truth, np.zeros(80, int))]),
        "balanced": arm("balanced", [run(truth, truth)]),
    }
    report, summary, _ = summarise(arms, {}, BOOTSTRAP, seed=0)
    assert "against original" in report and summary.differences["balanced"].difference > 0.9
    other = {
        "original": arms["original"],
        "balanced": arm("balanced", [run(truth[::-1], truth)]),
    }
    with pytest.raises(ConfigError, match="data.split.seed"):
        summarise(other, {}, BOOTSTRAP, seed=0)


def test_folds_pool_into_one_prediction_per_image_and_every_arm_is_set_against_the_first():
    truth = np.arange(120) % 8
    files = np.array([f"{i:03d}.jpg" for i in range(120)])
    parts = [np.arange(120)[i::3] for i in range(3)]  # three folds, each a third of the images

    def folds(predicted):
        return [run(truth[p], predicted[p], files[p], p // 4) for p in parts]

    wrong = (truth + 1) % 8
    half = np.where(np.arange(120) < 60, truth, wrong)
    arms = {
        "original": arm("original", folds(wrong)),
        "balanced": arm("balanced", folds(truth)),
        "sampler": arm("sampler", folds(half)),
    }
    report, summary, figures = summarise(arms, {}, BOOTSTRAP, seed=0)
    assert [row["arm"] for row in summary.arms] == ["original", "balanced", "sampler"]
    assert summary.arm_means == pytest.approx(
        {"original": 0.0, "balanced": 1.0, "sampler": 0.5}, abs=0.02
    )
    assert set(summary.differences) == {"balanced", "sampler"} and summary.folds == 3
    assert all(row["runs"] == 3 for row in summary.arms)
    assert "3-fold identity-disjoint cross-validation" in report and "120 images" in report
    assert {"confusion_side_by_side", "confusion_balanced"} <= set(figures)


def test_a_class_with_fewer_than_ten_test_images_is_marked_in_the_per_class_table():
    truth = np.array([0] * 30 + [1] * 4 + [2] * 12)
    arms = {
        "original": arm("original", [run(truth, np.zeros(46, int))]),
        "balanced": arm("balanced", [run(truth, truth)]),
    }
    report, summary, _ = summarise(arms, {}, BOOTSTRAP, seed=0)
    rows = {row["emotion"]: row for row in summary.per_class}
    assert rows["contempt *"]["test images"] == 4 and rows["anger"]["test images"] == 30
    assert "disgust *" not in rows and rows["disgust"]["balanced"] == 1.0
    assert "fewer than 10 test images" in report
    contempt = next(line for line in report.splitlines() if line.startswith("| contempt *"))
    assert contempt.split("|")[2].strip() == "4"  # a count, not 4.000


def test_a_comparison_over_folds_trains_each_fold_of_an_identity_disjoint_cross_validation():
    assert fold_overrides(None) == [[]]
    parts = fold_overrides(3)
    assert len(parts) == 3 and parts[2][-1] == "data.split.fold=2"
    assert "data.split.method=identity_kfold" in parts[0] and "data.split.folds=3" in parts[0]


def test_the_default_comparison_definition_is_composed_by_hydra_and_takes_overrides():
    cfg, run_overrides = compose_definition(
        CONFIG_DIR, "compare", ["compare.seeds=[7]", "trainer.max_epochs=2"]
    )
    arms = list(cfg.compare.arms)
    assert arms[:2] == ["original", "balanced"] and cfg.compare.seeds == [7]
    assert {"logit_adjusted", "ldam_drw", "mixup_cutmix", "resnet", "hog_svm"} <= set(arms)
    assert cfg.compare.folds == 5 and "data.split.seed=42" in cfg.compare.base
    assert run_overrides == ["trainer.max_epochs=2"]  # for every run, not the definition


def test_a_misspelt_comparison_key_fails_with_hydras_message_naming_it():
    with pytest.raises(ConfigError, match="Key 'seedz' not in 'ComparisonDefinition'"):
        compose_definition(CONFIG_DIR, "compare", ["compare.seedz=[7]"])


def test_the_benchmark_can_measure_the_tracking_server_alone_and_refuses_unknown_sections():
    cfg, _ = compose_definition(CONFIG_DIR, "bench", ["bench.sections=[tracking]"])
    bench = OmegaConf.to_object(cfg.bench)
    assert bench.sections == ["tracking"]
    assert bench.tracking.definition == "tiny" and bench.tracking.workers == [1, 2]
    cfg, _ = compose_definition(CONFIG_DIR, "bench", ["bench.sections=[tracking,gpu]"])
    with pytest.raises(ConfigError, match=r"bench\.sections: unknown \['gpu'\]"):
        OmegaConf.to_object(cfg.bench)


def test_the_seed_protocol_references_are_reported_as_mean_and_spread_over_their_seeds():
    truth = np.arange(80) % 8
    arms = {
        "original": arm("original", [run(truth, np.zeros(80, int))]),
        "balanced": arm("balanced", [run(truth, truth)]),
    }
    half_right = np.where(truth < 4, truth, 0)
    references = {
        "seed_original": arm("seed_original", [run(truth, truth)], [run(truth, half_right)])
    }
    report, summary, _ = summarise(arms, references, BOOTSTRAP, seed=0)
    # The leaky protocol's test set holds copies of one original (the same file) beside it.
    copies = np.array([f"img{i % 40}.jpg" for i in range(80)])
    leaky = {"seed_balanced": arm("seed_balanced", [run(truth, truth, copies)])}
    assert summarise(arms, leaky, BOOTSTRAP, seed=0)[1].references[0]["test images"] == 80
    (row,) = summary.references
    assert row["runs"] == 2 and row["accuracy mean"] == pytest.approx(0.75)
    assert row["accuracy sd"] == pytest.approx(np.std([1.0, 0.5], ddof=1))
    assert "seed_original" in report and "seed_original as measured" in report


def write_definition(folder: Path, name: str, spec: dict) -> list[str]:
    """A comparison definition in a folder of one's own; the arguments that select it."""
    (folder / "comparisons").mkdir(parents=True, exist_ok=True)
    # sort_keys=False: the first arm is the baseline
    (folder / "comparisons" / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return [f"hydra.searchpath=[file://{folder}]", f"comparisons@compare={name}"]


def children_of(client: mlflow.MlflowClient, parent_id: str) -> dict[str, str]:
    """The nested runs of a comparison: name -> status."""
    parent = client.get_run(parent_id)
    runs = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return {run.info.run_name: run.info.status for run in runs}


@pytest.fixture
def one_split_comparison(tmp_path, tiny_run_overrides, monkeypatch):
    """The command line of a tiny one-split, one-seed comparison of the given arms."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def argv(name: str, arms: dict[str, list[str]], *extra: str) -> list[str]:
        spec = {
            "name": name,
            "base": ["data.split.seed=42"],
            "arms": arms,
            "seeds": [1],
            "bootstrap": {"resamples": 50, "confidence": 0.9},
            "framing": {"reframe": None},
        }
        definition = write_definition(tmp_path / "definitions", name, spec)
        return [*definition, f"paths.root_dir={tmp_path}", *extra, *tiny_run_overrides]

    return argv


def test_a_failed_arm_is_left_out_and_a_rerun_reuses_every_finished_run(
    tmp_path, one_split_comparison, tiny_dataset
):
    arms = {
        "original": ["balancing=none"],
        "smoothed": ["loss.label_smoothing=0.1"],
        # SGD takes a NaN learning rate; the loss turns NaN mid-training
        "broken": ["optimizer=sgd", "optimizer.lr=nan"],
    }
    # any_commit: this checkout's tree may hold uncommitted work
    argv = one_split_comparison("resumable", arms, "compare.reuse.match=any_commit")
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")

    first, first_id = run_comparison(CONFIG_DIR, argv)
    assert children_of(client, first_id) == {
        "original-seed1": "FINISHED",
        "smoothed-seed1": "FINISHED",
        "broken-seed1": "FAILED",
    }
    assert "Left out, a run failed: broken-seed1" in first and "| broken" not in first

    second, second_id = run_comparison(CONFIG_DIR, argv)
    assert children_of(client, second_id) == {"broken-seed1": "FAILED"}  # only it ran again
    assert "2 of 2 runs were reused" in second
    headline = first.split("## Per emotion")[0]
    assert second.split("## Per emotion")[0] == headline  # read back, the same numbers
    index = json.loads(
        Path(client.download_artifacts(second_id, "comparison/runs.json")).read_text()
    )
    assert index["broken"]["failure"].startswith("broken-seed1") and index["original"]["runs"]

    # Settings that change what a run learns are a new run, not a reused one.
    third, third_id = run_comparison(CONFIG_DIR, [*argv, "trainer.max_epochs=1"])
    assert set(children_of(client, third_id)) == set(children_of(client, first_id))
    # So is other data under the same settings (the images changed in place).
    write_legend_dataset(tiny_dataset, seed=1)
    fourth, fourth_id = run_comparison(CONFIG_DIR, argv)
    assert set(children_of(client, fourth_id)) == set(children_of(client, first_id))


def test_runs_shared_between_two_processes_give_what_they_give_in_turn(
    tmp_path, one_split_comparison
):
    arms = {
        "original": ["balancing=none"],
        "smoothed": ["loss.label_smoothing=0.1"],
        "broken": ["optimizer=sgd", "optimizer.lr=nan"],
    }
    argv = one_split_comparison("shared", arms, "compare.reuse.match=none")
    threads = torch.get_num_threads()
    torch.set_num_threads(core_share(2))  # each process's share, in turn too
    try:
        in_turn, _ = run_comparison(CONFIG_DIR, argv)
    finally:
        torch.set_num_threads(threads)
    shared, shared_id = run_comparison(CONFIG_DIR, [*argv, "compare.workers=2"])
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    assert children_of(client, shared_id) == {
        "original-seed1": "FINISHED",
        "smoothed-seed1": "FINISHED",
        "broken-seed1": "FAILED",  # a failure in a worker process is the arm's, as in turn
    }
    assert shared.split("## Per emotion")[0] == in_turn.split("## Per emotion")[0]
    assert "Left out, a run failed: broken-seed1" in shared


def test_an_arm_that_does_not_compose_stops_the_comparison_before_any_run(
    tmp_path, one_split_comparison
):
    argv = one_split_comparison("misspelt", {"original": [], "wide": ["model.net.filterz=64"]})
    with pytest.raises(ConfigError, match="compare arm 'wide'.*filterz"):
        run_comparison(CONFIG_DIR, argv)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_comparison_is_one_parent_run_with_a_nested_run_per_arm_fold_reference_and_seed(
    tmp_path, tiny_run_overrides, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FERSWEEP_DATA", raising=False)
    definitions = tmp_path / "definitions"
    (definitions / "comparisons").mkdir(parents=True)
    (definitions / "comparisons" / "tiny_compare.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "base": ["data.split.seed=42", "trainer.max_epochs=1", "posthoc=offsets"],
                "arms": {
                    "original": ["balancing=none"],
                    "balanced": ["balancing=balanced"],
                    "hog": ["model=hog_svm"],
                },
                "folds": 2,
                "seeds": [1, 2],
                "bootstrap": {"resamples": 50, "confidence": 0.9},
                "references": {
                    "seed_original": ["experiment=seed_original", "trainer.max_epochs=1"]
                },
                "framing": {
                    "reframe": "both",
                    "arms": {"balanced+face": ["balancing=balanced", "face=haar"]},
                },
            },
            sort_keys=False,  # the first arm is the baseline
        )
    )
    argv = [
        f"hydra.searchpath=[file://{definitions}]",  # a folder of one's own definitions
        "comparisons@compare=tiny_compare",
        f"paths.root_dir={tmp_path}",
        *(o for o in tiny_run_overrides if not o.startswith("model.")),  # the HOG arm has no net
    ]
    report, parent_id = run_comparison(CONFIG_DIR, argv)

    assert (tmp_path / "outputs/compare" / parent_id / "report.md").read_text() == report
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    names = sorted(run.info.run_name for run in children)
    arms = ("balanced+face", "balanced", "hog", "original")
    assert names == sorted(
        [f"{arm}-fold{fold}-seed{seed}" for arm in arms for fold in (0, 1) for seed in (1, 2)]
        + ["seed_original-seed1", "seed_original-seed2"]
    )
    assert all(run.info.status == "FINISHED" for run in children)
    fold_tags = {run.data.tags.get("fold") for run in children}
    assert fold_tags == {"0", "1", None}  # None: the references, one split per seed
    assert {a.path for a in client.list_artifacts(parent_id, "comparison")} >= {
        "comparison/report.md",
        "comparison/confusion_side_by_side.png",
    }
    assert "| seed_original |" in report and "resamples people" in report
    assert "2-fold identity-disjoint cross-validation" in report
    metrics = parent.data.metrics
    assert {"comparison/balanced/macro_f1_difference", "comparison/hog/macro_f1"} <= set(metrics)
    # The framing check, both ways: every honest arm scored on its test images placed into
    # larger pictures and cut tighter, the face arm too.
    framing = report.split("## Framing")[1]
    for arm in ("original", "balanced", "balanced+face"):
        assert f"| {arm} " in framing
    for direction in ("reframed", "tightened"):
        assert f"- **balanced+face**, {direction}: macro F1" in framing
    summary = client.download_artifacts(parent_id, "comparison/summary.json")
    rows = {(r["arm"], r["framing"]): r for r in json.loads(Path(summary).read_text())["framing"]}
    assert len(rows) == 4 * 2  # original, balanced, hog and the face arm, each both ways
    assert rows["balanced+face", "tightened"]["face step"]
    assert not rows["balanced", "tightened"]["face step"]
    assert "larger canvas (face 30%–100%" in framing and "a square 70%–90%" in framing
    assert all(0 <= row["common called rare, reframed"] <= 1 for row in rows.values())

    # Run again, it trains nothing: every run (references, HOG, framing) is read back the same.
    again, again_id = run_comparison(CONFIG_DIR, [*argv, "compare.reuse.match=any_commit"])
    assert children_of(client, again_id) == {}
    assert "18 of 18 runs were reused" in again
    assert again.split("\n## Runs")[0] == report


def test_common_called_rare_is_the_share_of_happy_and_neutral_faces_answered_as_a_rare_one():
    happiness, neutral, anger = (EMOTIONS.index(e) for e in ("happiness", "neutral", "anger"))
    truth = np.array([happiness, happiness, neutral, neutral, anger])
    answers = np.array([happiness, anger, happiness, EMOTIONS.index("fear"), happiness])
    predictions = SplitPredictions(truth, np.eye(len(EMOTIONS))[answers])
    # happy as neutral is not rare; the anger image's answer does not count
    assert common_called_rare(predictions) == pytest.approx(2 / 4)
