"""Original against balanced data, measured honestly: same test split, several seeds, paired
bootstrap on the difference, and the seed report's leaky protocol alongside for reference."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.markdown import Markdown

from fersweep import EMOTIONS
from fersweep.config import build, compose_config, compose_definition
from fersweep.console import console
from fersweep.definitions import Bootstrap, ComparisonDefinition
from fersweep.errors import ConfigError
from fersweep.figures import confusion_pair_figure
from fersweep.metrics import (
    Difference,
    Evaluation,
    evaluate,
    paired_bootstrap_difference,
    precision_at_prevalence,
)
from fersweep.tracking import Tracker, artifacts
from fersweep.train import RunPlacement, RunResult, train

log = logging.getLogger(__name__)


@dataclass
class ComparisonSummary:
    """The comparison's numbers: the difference with its interval, and the report's tables
    as records (rows of dicts, as they go to `comparison/summary.json`)."""

    baseline: str
    candidate: str
    difference: Difference
    arms: list[dict[str, Any]]
    per_class: list[dict[str, Any]]
    precision_at_prevalence: list[dict[str, Any]]
    references: list[dict[str, Any]]
    framing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def arm_means(self) -> dict[str, float]:
        """Macro F1 mean per arm, as the headline table has it."""
        return {row["arm"]: float(row["macro F1 mean"]) for row in self.arms}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ArmSummary:
    name: str
    runs: list[RunResult]

    @property
    def pooled(self) -> Evaluation:
        """All seeds' predictions on the test split, pooled (for tables and confusion matrices)."""
        return evaluate(
            np.concatenate([r.truth for r in self.runs]),
            np.concatenate([r.predicted for r in self.runs]),
        )

    def metric(self, name: str) -> np.ndarray:
        return np.array([r.evaluation.metrics[name] for r in self.runs])


def run_comparison(config_dir: Path, argv: Sequence[str] = ()) -> tuple[str, str]:
    """`python compare.py <argv>`: `compare.<key>=<value>` changes the definition
    (sweeps/compare.yaml), any other override changes every run. Trains every arm and seed (and
    each reference) as nested MLflow runs; returns the Markdown report and the parent run's id."""
    composed, overrides = compose_definition(config_dir, "compare", argv)
    definition: ComparisonDefinition = OmegaConf.to_object(composed.compare)
    framing = definition.framing
    reframe = [f"reframe={framing.reframe}"] if framing.reframe else []
    base = [*definition.base, *reframe, *overrides]
    cfg = compose_config(config_dir, base)
    tracker: Tracker = build(cfg.tracking)
    with tracker.run(f"compare-{definition.name}", tags={"kind": "comparison"}) as parent:
        artifacts.log_dict(asdict(definition), "comparison/definition.json")
        parent_id = parent.info.run_id
        arms = {
            arm: _train_arm(config_dir, arm, [*base, *arm_overrides], definition.seeds, parent_id)
            for arm, arm_overrides in definition.arms.items()
        }
        framing_arms = {
            arm: _train_arm(config_dir, arm, [*base, *arm_overrides], definition.seeds, parent_id)
            for arm, arm_overrides in framing.arms.items()
        }
        # The references keep their own protocol (not `base`) but run over the same seeds:
        # one seed's score swings by several points, too much to compare with the report.
        references = {
            name: _train_arm(
                config_dir,
                name,
                [*ref, *overrides],
                definition.seeds,
                parent_id,
                {"protocol": "seed (leaky)"},
            )
            for name, ref in definition.references.items()
        }
        report, summary, figure = summarise(arms, references, definition.bootstrap, cfg.seed)
        if framing.reframe:
            table = framing_table({**arms, **framing_arms})
            report += framing_section(table, framing.tolerance)
            summary.framing = table.to_dict(orient="records")
        artifacts.log_comparison(report, summary, figure)
        path = Path(cfg.paths.output_dir) / "compare" / parent_id / "report.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report)
    console.print(Markdown(report))
    console.print(f"report written to {path} and to MLflow run {parent_id}")
    return report, parent_id


def _train_arm(
    config_dir: Path,
    name: str,
    overrides: list[str],
    seeds: Sequence[int],
    parent: str,
    tags: Mapping[str, str] | None = None,
) -> ArmSummary:
    """One nested MLflow run per seed, all with the same overrides."""
    runs = []
    for seed in seeds:
        run_overrides = [*overrides, f"seed={seed}"]
        cfg: DictConfig = compose_config(config_dir, run_overrides)
        run_tags = {**(tags or {}), "arm": name, "seed": str(seed)}
        placement = RunPlacement(parent_run_id=parent, name=f"{name}-seed{seed}", tags=run_tags)
        runs.append(train(cfg, run_overrides, placement=placement))
    return ArmSummary(name, runs)


def summarise(
    arms: Mapping[str, ArmSummary],
    references: Mapping[str, ArmSummary],
    bootstrap: Bootstrap,
    seed: int,
) -> tuple[str, ComparisonSummary, plt.Figure]:
    """The Markdown report, its numbers as a dict, and the side-by-side confusion figure."""
    (baseline, candidate) = arms.values()
    truth = baseline.runs[0].truth
    for arm in arms.values():
        for run in arm.runs:
            if not np.array_equal(run.truth, truth):
                raise ConfigError(
                    "the arms were tested on different splits; fix data.split.seed in the base "
                    "overrides so every arm and seed shares one test split"
                )
    difference = paired_bootstrap_difference(
        truth,
        [r.predicted for r in baseline.runs],
        [r.predicted for r in candidate.runs],
        resamples=bootstrap.resamples,
        confidence=bootstrap.confidence,
        seed=seed,
    )
    prevalence = baseline.runs[0].prevalence
    headline = _headline_table(arms)
    per_class = _per_class_table(baseline, candidate)
    bayes = _bayes_table(arms, references, prevalence)
    reference_table = _reference_table(references)
    figure = confusion_pair_figure(
        baseline.pooled,
        candidate.pooled,
        (f"{baseline.name} (seeds pooled)", f"{candidate.name} (seeds pooled)"),
    )
    lines = [
        f"# {candidate.name} vs {baseline.name}: macro F1 on the test split",
        "",
        f"Test split: {len(truth)} original images, identity-disjoint from training; "
        f"{len(baseline.runs)} seed(s) per arm.",
        "",
        headline.to_markdown(index=False, floatfmt=".4f"),
        "",
        f"**Difference ({candidate.name} − {baseline.name}) in macro F1: "
        f"{difference.difference:+.4f}**, {difference.confidence:.0%} paired bootstrap "
        f"interval [{difference.low:+.4f}, {difference.high:+.4f}] "
        f"({difference.resamples} resamples of the test images).",
        "",
        "## Per emotion: recall and F1 (seeds pooled)",
        "",
        per_class.to_markdown(floatfmt=".3f"),
        "",
        "## Is a predicted emotion right? Precision at the natural prevalence",
        "",
        "P(true emotion | predicted emotion) by Bayes' rule, with each emotion at its frequency "
        "in the original data set (empty where the model never predicts it). The seed report's "
        "appendix computed this the wrong way round; its plain precision, measured on a test set "
        "the augmentation made balanced, is shown *as measured*.",
        "",
        bayes.to_markdown(floatfmt=".3f"),
    ]
    if len(reference_table):
        lines += [
            "",
            "## The seed report's protocol (leaky), for reference",
            "",
            "Random split (a person may be in training and test), a new one for each seed; "
            "`seed_balanced` augments before splitting, so augmented copies of training images "
            "sit in its test set, and the less a copy differs from its original the higher "
            "that score (`seed_balanced_copies`: exact duplicates, the leak's upper bound).",
            "",
            reference_table.to_markdown(index=False, floatfmt=".4f"),
        ]
    summary = ComparisonSummary(
        baseline.name,
        candidate.name,
        difference,
        headline.to_dict(orient="records"),
        per_class.reset_index().to_dict(orient="records"),
        bayes.reset_index().to_dict(orient="records"),
        reference_table.to_dict(orient="records"),
    )
    return "\n".join(lines) + "\n", summary, figure


def _headline_table(arms: Mapping[str, ArmSummary]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "arm": arm.name,
                "macro F1 mean": arm.metric("macro_f1").mean(),
                "macro F1 sd": _spread(arm.metric("macro_f1")),
                "accuracy": arm.metric("accuracy").mean(),
                "balanced accuracy": arm.metric("balanced_accuracy").mean(),
                "runs": len(arm.runs),
            }
            for arm in arms.values()
        ]
    )


def _spread(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _per_class_table(baseline: ArmSummary, candidate: ArmSummary) -> pd.DataFrame:
    left, right = baseline.pooled.per_class, candidate.pooled.per_class
    return pd.DataFrame(
        {
            "support": left["support"] // len(baseline.runs),
            f"recall {baseline.name}": left["recall"],
            f"recall {candidate.name}": right["recall"],
            f"F1 {baseline.name}": left["f1-score"],
            f"F1 {candidate.name}": right["f1-score"],
        }
    )


def _bayes_table(arms, references, prevalence: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame({"prevalence": prevalence}, index=pd.Index(EMOTIONS, name="emotion"))
    # The honest test split has the natural prevalence already, so only the references' plain
    # precision (measured on their own, possibly augmented, test sets) is shown beside.
    for arm in arms.values():
        table[arm.name] = precision_at_prevalence(arm.pooled.confusion, prevalence)
    for name, reference in references.items():
        pooled = reference.pooled
        table[name] = precision_at_prevalence(pooled.confusion, prevalence)
        table[f"{name} as measured"] = pooled.per_class["precision"].to_numpy()
    return table


def _reference_table(references: Mapping[str, ArmSummary]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "experiment": reference.name,
                "test images": len(reference.runs[0].truth),
                "accuracy mean": reference.metric("accuracy").mean(),
                "accuracy sd": _spread(reference.metric("accuracy")),
                "macro F1 mean": reference.metric("macro_f1").mean(),
                "macro F1 sd": _spread(reference.metric("macro_f1")),
                "runs": len(reference.runs),
            }
            for reference in references.values()
        ]
    )


def framing_table(arms: Mapping[str, ArmSummary]) -> pd.DataFrame:
    """Per arm, macro F1 on the test images as they are and reframed (mean over seeds)."""
    rows = []
    for arm in arms.values():
        original = arm.metric("macro_f1")
        reframed = np.array([r.reframed.evaluation.metrics["macro_f1"] for r in arm.runs])
        rows.append(
            {
                "arm": arm.name,
                "face step": arm.runs[0].face_step,
                "macro F1 original": original.mean(),
                "macro F1 reframed": reframed.mean(),
                "reframed − original": (reframed - original).mean(),
                "sd of the difference": _spread(reframed - original),
                "runs": len(arm.runs),
            }
        )
    return pd.DataFrame(rows)


def framing_section(table: pd.DataFrame, tolerance: float) -> str:
    with_face = table[table["face step"]]
    verdicts = [
        f"- **{row['arm']}**: reframed macro F1 {row['reframed − original']:+.4f} from the "
        f"original, {'within' if abs(row['reframed − original']) <= tolerance else 'outside'} "
        f"the goal of ±{tolerance:.2f}."
        for _, row in with_face.iterrows()
    ]
    lines = [
        "",
        "## Framing: the test images placed into larger pictures",
        "",
        "Each test image put on a larger canvas (face 30–100% of its height, anywhere in it, on "
        "a textured background, half of them in colour; conf/reframe/default.yaml, fixed seed), "
        "saved as JPEG and scored through each run's own preprocessing.",
        "",
        table.to_markdown(index=False, floatfmt=".4f"),
        "",
        *verdicts,
    ]
    return "\n".join(lines) + "\n"
