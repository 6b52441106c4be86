"""Imbalance methods compared honestly: every arm on the same identity-disjoint split or on every
fold of a cross-validation (out-of-fold predictions pooled, so every image is tested once), over
seeds, each arm against the first (the baseline) with a paired bootstrap that resamples people,
and the seed report's leaky protocol alongside for reference."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
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
from fersweep.figures import confusion_figure, confusion_pair_figure
from fersweep.metrics import (
    Difference,
    Evaluation,
    SplitPredictions,
    evaluate,
    paired_bootstrap_difference,
    precision_at_prevalence,
)
from fersweep.tracking import Tracker, artifacts
from fersweep.train import RunPlacement, RunResult, train

log = logging.getLogger(__name__)
FEW_IMAGES = 10  # a class F1 on fewer test images than this is marked as such


@dataclass
class ComparisonSummary:
    """The comparison's numbers: each arm's difference from the baseline with its interval,
    and the report's tables as records (rows of dicts, as they go to `comparison/summary.json`)."""

    baseline: str
    differences: dict[str, Difference]
    arms: list[dict[str, Any]]
    per_class: list[dict[str, Any]]
    precision_at_prevalence: list[dict[str, Any]]
    references: list[dict[str, Any]]
    folds: int | None = None
    framing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def arm_means(self) -> dict[str, float]:
        """Pooled macro F1 per arm, as the headline table has it."""
        return {row["arm"]: float(row["macro F1"]) for row in self.arms}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OutOfFold(SplitPredictions):
    """One seed's predictions for every evaluated image, each from the run that did not train
    on it (with one split: that split's), sorted by file so arms line up image by image;
    `plain`: the same before the post-hoc steps."""

    files: np.ndarray
    people: np.ndarray
    plain: SplitPredictions

    @classmethod
    def pool(cls, runs: Sequence[RunResult]) -> OutOfFold:
        def joined(get) -> np.ndarray:
            return np.concatenate([get(r) for r in runs])

        files = joined(lambda r: r.files)
        order = np.argsort(files, kind="stable")
        if len(np.unique(files)) != len(files):
            raise ConfigError(
                "an image was tested by two runs of one seed: the folds overlap (fix "
                "data.split.seed in the base overrides, one seed for every fold)"
            )
        truth = joined(lambda r: r.truth)[order]
        plain = joined(lambda r: (r.plain or r.outputs).probabilities)[order]
        return cls(
            truth,
            joined(lambda r: r.outputs.probabilities)[order],
            files[order],
            joined(lambda r: r.people)[order],
            SplitPredictions(truth, plain),
        )


@dataclass
class ArmSummary:
    """An arm's runs, per seed: one per fold (a single run with one split)."""

    name: str
    by_seed: list[list[RunResult]]

    @property
    def runs(self) -> list[RunResult]:
        return [run for runs in self.by_seed for run in runs]

    @cached_property
    def out_of_fold(self) -> list[OutOfFold]:
        return [OutOfFold.pool(runs) for runs in self.by_seed]

    @property
    def pooled(self) -> Evaluation:
        """Every seed's out-of-fold predictions together (for tables and confusion matrices)."""
        return evaluate(
            np.concatenate([o.truth for o in self.out_of_fold]),
            np.concatenate([o.predicted for o in self.out_of_fold]),
        )

    def pooled_metric(self, name: str, plain: bool = False) -> float:
        """A metric of the out-of-fold predictions, averaged over seeds."""
        return float(
            np.mean([(o.plain if plain else o).evaluation.metrics[name] for o in self.out_of_fold])
        )

    def metric(self, name: str) -> np.ndarray:
        """A metric of every run (fold and seed) on its own test part."""
        return np.array([r.evaluation.metrics[name] for r in self.runs])


def run_comparison(config_dir: Path, argv: Sequence[str] = ()) -> tuple[str, str]:
    """`python compare.py <argv>`: `compare.<key>=<value>` changes the definition
    (sweeps/compare.yaml), any other override changes every run. Trains every arm on every fold
    and seed (and each reference over the seeds) as nested MLflow runs; returns the Markdown
    report and the parent run's id."""
    composed, overrides = compose_definition(config_dir, "compare", argv)
    definition: ComparisonDefinition = OmegaConf.to_object(composed.compare)
    framing = definition.framing
    reframe = [f"reframe={framing.reframe}"] if framing.reframe else []
    base = [*definition.base, *reframe, *overrides]
    cfg = compose_config(config_dir, base)
    parts = fold_overrides(definition.folds)
    tracker: Tracker = build(cfg.tracking)
    with tracker.run(f"compare-{definition.name}", tags={"kind": "comparison"}) as parent:
        artifacts.log_dict(asdict(definition), "comparison/definition.json")
        parent_id = parent.info.run_id

        def arm(name: str, arm_overrides: list[str]) -> ArmSummary:
            return _train_arm(
                config_dir, name, [*base, *arm_overrides], definition.seeds, parts, parent_id
            )

        arms = {name: arm(name, arm_overrides) for name, arm_overrides in definition.arms.items()}
        framing_arms = {name: arm(name, o) for name, o in framing.arms.items()}
        # The references keep their own protocol (not `base`, one random split per seed) but run
        # over the same seeds: one seed's score swings by several points.
        references = {
            name: _train_arm(
                config_dir,
                name,
                [*ref, *overrides],
                definition.seeds,
                [[]],
                parent_id,
                {"protocol": "seed (leaky)"},
            )
            for name, ref in definition.references.items()
        }
        report, summary, figures = summarise(arms, references, definition.bootstrap, cfg.seed)
        if framing.reframe:
            table = framing_table({**arms, **framing_arms})
            report += framing_section(table, framing.tolerance)
            summary.framing = table.to_dict(orient="records")
        artifacts.log_comparison(report, summary, figures)
        path = Path(cfg.paths.output_dir) / "compare" / parent_id / "report.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report)
        (path.parent / "summary.json").write_text(
            json.dumps(summary.as_dict(), indent=2, default=_plain)
        )
    console.print(Markdown(report))
    console.print(f"report written to {path} and to MLflow run {parent_id}")
    return report, parent_id


def fold_overrides(folds: int | None) -> list[list[str]]:
    """The overrides of each part a seed is trained on: every fold of an identity-disjoint
    cross-validation, or (folds=None) the one split the base overrides describe."""
    if folds is None:
        return [[]]
    method = ["data.split.method=identity_kfold", f"data.split.folds={folds}"]
    return [[*method, f"data.split.fold={fold}"] for fold in range(folds)]


def _train_arm(
    config_dir: Path,
    name: str,
    overrides: list[str],
    seeds: Sequence[int],
    parts: list[list[str]],
    parent: str,
    tags: Mapping[str, str] | None = None,
) -> ArmSummary:
    """One nested MLflow run per seed and part (fold), all with the same overrides."""
    by_seed = []
    for seed in seeds:
        runs = []
        for number, part in enumerate(parts):
            run_overrides = [*overrides, *part, f"seed={seed}"]
            cfg: DictConfig = compose_config(config_dir, run_overrides)
            fold = f"-fold{number}" if part else ""
            run_tags = {**(tags or {}), "arm": name, "seed": str(seed)}
            if part:
                run_tags["fold"] = str(number)
            placement = RunPlacement(
                parent_run_id=parent, name=f"{name}{fold}-seed{seed}", tags=run_tags
            )
            runs.append(train(cfg, run_overrides, placement=placement))
        by_seed.append(runs)
    return ArmSummary(name, by_seed)


def summarise(
    arms: Mapping[str, ArmSummary],
    references: Mapping[str, ArmSummary],
    bootstrap: Bootstrap,
    seed: int,
) -> tuple[str, ComparisonSummary, dict[str, plt.Figure]]:
    """The Markdown report, its numbers as a dict, and its figures by name (the baseline beside
    the best arm, and each arm's pooled confusion matrix)."""
    baseline, *others = arms.values()
    reference = baseline.out_of_fold[0]
    for arm in arms.values():
        for pooled in arm.out_of_fold:
            if not (
                np.array_equal(pooled.files, reference.files)
                and np.array_equal(pooled.truth, reference.truth)
            ):
                raise ConfigError(
                    "the arms were tested on different images; fix data.split.seed in the base "
                    "overrides so every arm and seed shares one split (or one set of folds)"
                )
    differences = {
        arm.name: paired_bootstrap_difference(
            reference.truth,
            [o.predicted for o in baseline.out_of_fold],
            [o.predicted for o in arm.out_of_fold],
            resamples=bootstrap.resamples,
            confidence=bootstrap.confidence,
            seed=seed,
            groups=reference.people,
        )
        for arm in others
    }
    folds = len(baseline.by_seed[0])
    headline = _headline_table(arms, differences)
    per_class = _per_class_table(arms, reference.truth)
    bayes = _bayes_table(arms, references, baseline.runs[0].prevalence)
    reference_table = _reference_table(references)
    best = max(others, key=lambda arm: arm.pooled_metric("macro_f1"))
    figures = {
        "confusion_side_by_side": confusion_pair_figure(
            baseline.pooled, best.pooled, (f"{baseline.name} (pooled)", f"{best.name} (pooled)")
        ),
        **{
            f"confusion_{arm.name}": confusion_figure(arm.pooled, True, f"{arm.name}: pooled")
            for arm in arms.values()
        },
    }
    tested = (
        f"{folds}-fold identity-disjoint cross-validation: every one of the {len(reference.truth)} "
        "images is tested once, by the fold that did not train on it, and the out-of-fold "
        "predictions are pooled"
        if folds > 1
        else f"one identity-disjoint test split of {len(reference.truth)} original images"
    )
    lines = [
        f"# Imbalance methods against {baseline.name}: macro F1",
        "",
        f"{tested}; {len(baseline.by_seed)} seed(s) per arm, {len(np.unique(reference.people))} "
        "people.",
        "",
        headline.to_markdown(index=False, floatfmt=".4f"),
        "",
        f"*macro F1*, *balanced accuracy*, *accuracy*: of the pooled predictions (mean over seeds); "
        f"*per run*: mean and sd of each run on its own test part; *network alone*: before the "
        f"post-hoc steps (flip, offsets); *Δ*: macro F1 minus {baseline.name}'s, with a "
        f"{bootstrap.confidence:.0%} paired bootstrap interval that resamples people "
        f"({bootstrap.resamples} draws; one person's images are not independent).",
        "",
        "## Per emotion: F1 of the pooled predictions",
        "",
        per_class.to_markdown(floatfmt=".3f"),
        "",
        f"\\* fewer than {FEW_IMAGES} test images: one image more or less right moves this F1 "
        "by a tenth or more; read it as an anecdote, not a measurement.",
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
        differences,
        headline.to_dict(orient="records"),
        per_class.reset_index().to_dict(orient="records"),
        bayes.reset_index().to_dict(orient="records"),
        reference_table.to_dict(orient="records"),
        folds if folds > 1 else None,
    )
    return "\n".join(lines) + "\n", summary, figures


def _headline_table(
    arms: Mapping[str, ArmSummary], differences: Mapping[str, Difference]
) -> pd.DataFrame:
    rows = []
    for arm in arms.values():
        difference = differences.get(arm.name)
        per_run = arm.metric("macro_f1")
        rows.append(
            {
                "arm": arm.name,
                "macro F1": arm.pooled_metric("macro_f1"),
                "balanced accuracy": arm.pooled_metric("balanced_accuracy"),
                "accuracy": arm.pooled_metric("accuracy"),
                "per run mean": per_run.mean(),
                "per run sd": _spread(per_run),
                "network alone": arm.pooled_metric("macro_f1", plain=True),
                "Δ": difference.difference if difference else np.nan,
                "Δ low": difference.low if difference else np.nan,
                "Δ high": difference.high if difference else np.nan,
                "runs": len(arm.runs),
            }
        )
    return pd.DataFrame(rows)


def _spread(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _per_class_table(arms: Mapping[str, ArmSummary], truth: np.ndarray) -> pd.DataFrame:
    """Per emotion: its test images and each arm's F1 (pooled, mean over seeds); an emotion
    with fewer than FEW_IMAGES test images is marked with an asterisk."""
    support = np.bincount(truth, minlength=len(EMOTIONS))
    names = [f"{e} *" if n < FEW_IMAGES else e for e, n in zip(EMOTIONS, support)]
    table = pd.DataFrame({"test images": support}, index=pd.Index(names, name="emotion"))
    for arm in arms.values():
        f1 = np.mean(
            [o.evaluation.per_class["f1-score"].to_numpy() for o in arm.out_of_fold], axis=0
        )
        table[arm.name] = f1
    return table


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


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, for json."""
    return value.item() if hasattr(value, "item") else str(value)


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
