"""A comparison's report: each arm against the baseline with a paired bootstrap over people, per
emotion, precision at the natural prevalence, the seed protocol's references, the framing check;
as Markdown, as numbers (`ComparisonSummary`) and as figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fersweep import EMOTIONS
from fersweep.config.schemas import Bootstrap
from fersweep.errors import ConfigError
from fersweep.evaluation.figures import confusion_figure, confusion_pair_figure
from fersweep.evaluation.metrics import SplitPredictions
from fersweep.evaluation.statistics import (
    Difference,
    paired_bootstrap_difference,
    precision_at_prevalence,
)
from fersweep.tasks.compare.arms import ArmRuns, OutOfFold
from fersweep.tracking import artifacts

FEW_IMAGES = 10  # a class F1 on fewer test images than this is marked as such


@dataclass(kw_only=True)
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

    def metrics(self) -> dict[str, float]:
        """What the comparison's run records as metrics: each arm's pooled macro F1 and its
        difference from the baseline with the interval's ends."""
        metrics = {f"comparison/{arm}/macro_f1": value for arm, value in self.arm_means.items()}
        for arm, difference in self.differences.items():
            metrics[f"comparison/{arm}/macro_f1_difference"] = difference.difference
            metrics[f"comparison/{arm}/macro_f1_difference_low"] = difference.low
            metrics[f"comparison/{arm}/macro_f1_difference_high"] = difference.high
        return metrics


class Comparison(NamedTuple):
    """A comparison's Markdown report, its numbers, and its figures by name."""

    report: str
    summary: ComparisonSummary
    figures: dict[str, plt.Figure]

    def record(self) -> None:
        """The report, summary, metrics and figures, in the active MLflow run."""
        summary = self.summary
        artifacts.log_comparison(self.report, summary.as_dict(), summary.metrics(), self.figures)


def summarise(
    arms: Mapping[str, ArmRuns],
    references: Mapping[str, ArmRuns],
    bootstrap: Bootstrap,
    seed: int,
) -> Comparison:
    """The Markdown report, its numbers, and its figures by name (the baseline beside the best
    arm, and each arm's pooled confusion matrix). The first arm is the baseline."""
    baseline, *others = arms.values()
    reference = shared_test_images(arms)
    differences = {
        arm.name: people_bootstrap(baseline.out_of_fold, arm.out_of_fold, bootstrap, seed)
        for arm in others
    }
    folds = len(baseline.by_seed[0])
    summary = ComparisonSummary(
        baseline=baseline.name,
        differences=differences,
        arms=_headline_table(arms, differences).to_dict(orient="records"),
        per_class=_per_class_table(arms, reference.truth).reset_index().to_dict(orient="records"),
        precision_at_prevalence=_bayes_table(arms, references, baseline.runs[0].prevalence)
        .reset_index()
        .to_dict(orient="records"),
        references=_reference_table(references).to_dict(orient="records"),
        folds=folds if folds > 1 else None,
    )
    report = markdown_report(summary, reference, len(baseline.by_seed), bootstrap)
    return Comparison(report, summary, _figures(arms))


def shared_test_images(arms: Mapping[str, ArmRuns]) -> OutOfFold:
    """The baseline's first pooled predictions, once every arm and seed is shown to have been
    tested on the same images with the same truth (else the comparison is not paired)."""
    reference = next(iter(arms.values())).out_of_fold[0]
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
    return reference


def people_bootstrap(
    baseline: Sequence[OutOfFold],
    candidate: Sequence[SplitPredictions],
    bootstrap: Bootstrap,
    seed: int,
) -> Difference:
    """Candidate minus baseline macro F1 over seeds, the interval resampling people."""
    return paired_bootstrap_difference(
        baseline[0].truth,
        [o.predicted for o in baseline],
        [o.predicted for o in candidate],
        resamples=bootstrap.resamples,
        confidence=bootstrap.confidence,
        seed=seed,
        groups=baseline[0].people,
    )


def _figures(arms: Mapping[str, ArmRuns]) -> dict[str, plt.Figure]:
    baseline, *others = arms.values()
    best = max(others, key=lambda arm: arm.pooled_metric("macro_f1"))
    return {
        "confusion_side_by_side": confusion_pair_figure(
            baseline.pooled, best.pooled, (f"{baseline.name} (pooled)", f"{best.name} (pooled)")
        ),
        **{
            f"confusion_{arm.name}": confusion_figure(arm.pooled, True, f"{arm.name}: pooled")
            for arm in arms.values()
        },
    }


def markdown_report(
    summary: ComparisonSummary, reference: OutOfFold, seeds: int, bootstrap: Bootstrap
) -> str:
    """The report a person reads, from the summary's tables."""
    lines = [
        *_headline_section(summary, reference, seeds, bootstrap),
        *_per_class_section(summary),
        *_prevalence_section(summary),
        *(_references_section(summary) if summary.references else []),
    ]
    return "\n".join(lines) + "\n"


def _headline_section(
    summary: ComparisonSummary, reference: OutOfFold, seeds: int, bootstrap: Bootstrap
) -> list[str]:
    baseline, images = summary.baseline, len(reference.truth)
    tested = (
        f"{summary.folds}-fold identity-disjoint cross-validation: every one of the {images} "
        "images is tested once, by the fold that did not train on it, and the out-of-fold "
        "predictions are pooled"
        if summary.folds
        else f"one identity-disjoint test split of {images} original images"
    )
    return [
        f"# Imbalance methods against {baseline}: macro F1",
        "",
        f"{tested}; {seeds} seed(s) per arm, {len(np.unique(reference.people))} people.",
        "",
        pd.DataFrame(summary.arms).to_markdown(index=False, floatfmt=".4f"),
        "",
        f"*macro F1*, *balanced accuracy*, *accuracy*: of the pooled predictions (mean over seeds); "
        f"*per run*: mean and sd of each run on its own test part; *network alone*: before the "
        f"post-hoc steps (flip, offsets); *Δ*: macro F1 minus {baseline}'s, with a "
        f"{bootstrap.confidence:.0%} paired bootstrap interval that resamples people "
        f"({bootstrap.resamples} draws; one person's images are not independent).",
    ]


def _per_class_section(summary: ComparisonSummary) -> list[str]:
    per_class = pd.DataFrame(summary.per_class).set_index("emotion")
    return [
        "",
        "## Per emotion: F1 of the pooled predictions",
        "",
        per_class.to_markdown(floatfmt=["", ".0f", *[".3f"] * (len(per_class.columns) - 1)]),
        "",
        f"\\* fewer than {FEW_IMAGES} test images: one image more or less right moves this F1 "
        "by a tenth or more; read it as an anecdote, not a measurement.",
    ]


def _prevalence_section(summary: ComparisonSummary) -> list[str]:
    return [
        "",
        "## Is a predicted emotion right? Precision at the natural prevalence",
        "",
        "P(true emotion | predicted emotion) by Bayes' rule, with each emotion at its frequency "
        "in the original data set (empty where the model never predicts it). The seed report's "
        "appendix computed this the wrong way round; its plain precision, measured on a test set "
        "the augmentation made balanced, is shown *as measured*.",
        "",
        pd.DataFrame(summary.precision_at_prevalence)
        .set_index("emotion")
        .to_markdown(floatfmt=".3f"),
    ]


def _references_section(summary: ComparisonSummary) -> list[str]:
    return [
        "",
        "## The seed report's protocol (leaky), for reference",
        "",
        "Random split (a person may be in training and test), a new one for each seed; "
        "`seed_balanced` augments before splitting, so augmented copies of training images "
        "sit in its test set, and the less a copy differs from its original the higher "
        "that score (`seed_balanced_copies`: exact duplicates, the leak's upper bound).",
        "",
        pd.DataFrame(summary.references).to_markdown(index=False, floatfmt=".4f"),
    ]


def _headline_table(
    arms: Mapping[str, ArmRuns], differences: Mapping[str, Difference]
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
                "network alone": arm.pooled_metric("macro_f1", of="plain"),
                "Δ": difference.difference if difference else np.nan,
                "Δ low": difference.low if difference else np.nan,
                "Δ high": difference.high if difference else np.nan,
                "runs": len(arm.runs),
            }
        )
    return pd.DataFrame(rows)


def _spread(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _per_class_table(arms: Mapping[str, ArmRuns], truth: np.ndarray) -> pd.DataFrame:
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


def _reference_table(references: Mapping[str, ArmRuns]) -> pd.DataFrame:
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


def json_default(value: Any) -> Any:
    """numpy scalars as Python numbers, for json."""
    return value.item() if hasattr(value, "item") else str(value)


COMMON = tuple(EMOTIONS.index(e) for e in ("happiness", "neutral"))


def common_called_rare(predictions: SplitPredictions) -> float:
    """The share of the two common emotions' images (happiness, neutral) answered as one of the
    six rare ones: where a model trained toward the rare classes errs on unfamiliar faces."""
    common = np.isin(predictions.truth, COMMON)
    if not common.any():
        return float("nan")
    return float(np.mean(~np.isin(predictions.predicted[common], COMMON)))


def framing_table(arms: Mapping[str, ArmRuns], bootstrap: Bootstrap, seed: int) -> pd.DataFrame:
    """Per arm and framing direction, macro F1 of the pooled predictions on the test images as
    they are and framed that way (mean over seeds), their difference with a paired bootstrap
    interval over people, the spread of that difference over the runs, and how often common
    emotions are called rare."""
    return pd.DataFrame(
        [_framing_row(arm, name, bootstrap, seed) for arm in arms.values() for name in arm.framings]
    )


def _framing_row(arm: ArmRuns, framing: str, bootstrap: Bootstrap, seed: int) -> dict:
    pooled = arm.out_of_fold
    as_they_are = arm.pooled_metric("macro_f1")
    reframed = arm.pooled_metric("macro_f1", framing=framing)
    difference = people_bootstrap(pooled, [o.reframed[framing] for o in pooled], bootstrap, seed)
    per_run = arm.metric("macro_f1", framing=framing) - arm.metric("macro_f1")
    return {
        "arm": arm.name,
        "framing": framing,
        "face step": arm.runs[0].face_step,
        "macro F1 as they are": as_they_are,
        "macro F1 reframed": reframed,
        "reframed − as they are": reframed - as_they_are,
        "low": difference.low,
        "high": difference.high,
        "per run sd": _spread(per_run),
        "common called rare": float(np.mean([common_called_rare(o) for o in pooled])),
        "common called rare, reframed": float(
            np.mean([common_called_rare(o.reframed[framing]) for o in pooled])
        ),
        "runs": len(arm.runs),
    }


def framing_section(table: pd.DataFrame, tolerance: float, description: str = "") -> str:
    with_face = table[table["face step"]]
    verdicts = [
        f"- **{row['arm']}**, {row['framing']}: macro F1 {row['reframed − as they are']:+.4f} from the "
        f"images as they are ([{row['low']:+.4f}, {row['high']:+.4f}]), "
        f"{'within' if abs(row['reframed − as they are']) <= tolerance else 'outside'} "
        f"the goal of ±{tolerance:.2f}."
        for _, row in with_face.iterrows()
    ]
    lines = [
        "",
        "## Framing: the test images reframed",
        "",
        f"{description or 'Each test image reframed'} (fixed seed), saved as JPEG and scored "
        "through each run's own preprocessing; *framing*: the direction (`reframed` with one). "
        "Macro F1 of the pooled predictions (mean over "
        "seeds); *low*, *high*: the paired bootstrap interval of the difference, resampling "
        "people; *per run sd*: the difference's spread over the runs; *common called rare*: the "
        "share of happiness and neutral images answered as one of the six rare emotions.",
        "",
        table.to_markdown(index=False, floatfmt=".4f"),
        "",
        *verdicts,
    ]
    return "\n".join(lines) + "\n"
