"""The comparison: Bayes' rule at the natural prevalence, the paired bootstrap, the report and
its MLflow runs."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from fersweep.compare import ArmSummary, run_comparison, summarise
from fersweep.config import compose_definition
from fersweep.definitions import Bootstrap
from fersweep.errors import ConfigError
from fersweep.metrics import (
    SplitPredictions,
    evaluate,
    paired_bootstrap_difference,
    precision_at_prevalence,
)
from fersweep.train import RunResult
from tests.conftest import CONFIG_DIR

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


def run(truth, predicted) -> RunResult:
    outputs = SplitPredictions(truth, np.eye(8)[predicted])
    return RunResult("id", {}, outputs, np.full(8, 1 / 8))


def test_the_report_compares_arms_on_the_same_split_and_refuses_different_splits():
    truth = np.arange(80) % 8
    arms = {
        "original": ArmSummary("original", [run(truth, np.zeros(80, int))]),
        "balanced": ArmSummary("balanced", [run(truth, truth)]),
    }
    report, summary, _ = summarise(arms, {}, BOOTSTRAP, seed=0)
    assert "balanced vs original" in report and summary.difference.difference > 0.9
    other = {
        "original": arms["original"],
        "balanced": ArmSummary("balanced", [run(truth[::-1], truth)]),
    }
    with pytest.raises(ConfigError, match="data.split.seed"):
        summarise(other, {}, BOOTSTRAP, seed=0)


def test_the_default_comparison_definition_is_composed_by_hydra_and_takes_overrides():
    cfg, run_overrides = compose_definition(
        CONFIG_DIR, "compare", ["compare.seeds=[7]", "trainer.max_epochs=2"]
    )
    assert list(cfg.compare.arms) == ["original", "balanced"] and cfg.compare.seeds == [7]
    assert "data.split.seed=42" in cfg.compare.base
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
        "original": ArmSummary("original", [run(truth, np.zeros(80, int))]),
        "balanced": ArmSummary("balanced", [run(truth, truth)]),
    }
    half_right = np.where(truth < 4, truth, 0)
    references = {
        "seed_original": ArmSummary("seed_original", [run(truth, truth), run(truth, half_right)])
    }
    report, summary, _ = summarise(arms, references, BOOTSTRAP, seed=0)
    (row,) = summary.references
    assert row["runs"] == 2 and row["accuracy mean"] == pytest.approx(0.75)
    assert row["accuracy sd"] == pytest.approx(np.std([1.0, 0.5], ddof=1))
    assert "seed_original" in report and "seed_original as measured" in report


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_comparison_is_one_parent_run_with_a_nested_run_per_arm_reference_and_seed(
    tmp_path, tiny_run_overrides, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FERSWEEP_DATA", raising=False)
    definitions = tmp_path / "definitions"
    (definitions / "sweeps").mkdir(parents=True)
    (definitions / "sweeps" / "tiny_compare.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "base": ["data.split.seed=42", "trainer.max_epochs=1"],
                "arms": {"original": ["balancing=none"], "balanced": ["balancing=balanced"]},
                "seeds": [1, 2],
                "bootstrap": {"resamples": 50, "confidence": 0.9},
                "references": {
                    "seed_original": ["experiment=seed_original", "trainer.max_epochs=1"]
                },
                "framing": {"arms": {"balanced+face": ["balancing=balanced", "face=haar"]}},
            }
        )
    )
    argv = [
        f"hydra.searchpath=[file://{definitions}]",  # a folder of one's own definitions
        "sweeps@compare=tiny_compare",
        f"paths.root_dir={tmp_path}",
        *tiny_run_overrides,
    ]
    report, parent_id = run_comparison(CONFIG_DIR, argv)

    assert (tmp_path / "outputs/compare" / parent_id / "report.md").read_text() == report
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert sorted(run.info.run_name for run in children) == [
        "balanced+face-seed1", "balanced+face-seed2", "balanced-seed1", "balanced-seed2",
        "original-seed1", "original-seed2", "seed_original-seed1", "seed_original-seed2",
    ]  # fmt: skip
    assert all(run.info.status == "FINISHED" for run in children)
    assert {a.path for a in client.list_artifacts(parent_id, "comparison")} >= {
        "comparison/report.md",
        "comparison/confusion_side_by_side.png",
    }
    assert "| seed_original |" in report and "paired bootstrap" in report
    # The framing check: every honest arm scored on reframed test images, the face arm too.
    framing = report.split("## Framing")[1]
    for arm in ("original", "balanced", "balanced+face"):
        assert f"| {arm} " in framing
    assert "- **balanced+face**: reframed macro F1" in framing
    summary = client.download_artifacts(parent_id, "comparison/summary.json")
    rows = {row["arm"]: row for row in json.loads(Path(summary).read_text())["framing"]}
    assert rows["balanced+face"]["face step"] and not rows["balanced"]["face step"]
