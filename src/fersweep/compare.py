"""Imbalance methods compared honestly: every arm on the same identity-disjoint split or on every
fold of a cross-validation (out-of-fold predictions pooled, so every image is tested once), over
seeds, each arm against the first (the baseline) with a paired bootstrap that resamples people,
and the seed report's leaky protocol alongside for reference."""

from __future__ import annotations

import hashlib
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
from fersweep.config import build, check_builds, compose_config, compose_definition
from fersweep.console import console
from fersweep.definitions import Bootstrap, ComparisonDefinition, Reuse, ReuseMatch
from fersweep.errors import ConfigError, FersweepError
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
from fersweep.tracking.runs import git_commit, working_tree_clean
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
    `plain`: the same before the post-hoc steps; `reframed`: the same images reframed (the
    framing check), where every run has them."""

    files: np.ndarray
    people: np.ndarray
    plain: SplitPredictions
    reframed: SplitPredictions | None = None

    @classmethod
    def pool(cls, runs: Sequence[RunResult]) -> OutOfFold:
        def joined(get) -> np.ndarray:
            return np.concatenate([get(r) for r in runs])

        files = joined(lambda r: r.files.astype(str))  # read back from MLflow or not
        order = np.argsort(files, kind="stable")
        # Several parts must not share an image; one run may (the seed protocol's copies made
        # before its split share their original's file).
        if len(runs) > 1 and len(np.unique(files)) != len(files):
            raise ConfigError(
                "an image was tested by two runs of one seed: the folds overlap (fix "
                "data.split.seed in the base overrides, one seed for every fold)"
            )
        truth = joined(lambda r: r.truth)[order]
        plain = joined(lambda r: (r.plain or r.outputs).probabilities)[order]
        reframed = None
        if all(r.reframed is not None for r in runs):
            reframed = SplitPredictions(truth, joined(lambda r: r.reframed.probabilities)[order])
        return cls(
            truth,
            joined(lambda r: r.outputs.probabilities)[order],
            files[order],
            joined(lambda r: r.people.astype(str))[order],
            SplitPredictions(truth, plain),
            reframed,
        )


@dataclass
class ArmSummary:
    """An arm's runs, per seed: one per fold (a single run with one split)."""

    name: str
    by_seed: list[list[RunResult]]
    failure: str | None = None  # the run that failed, and why; the arm is then left out

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

    def pooled_metric(self, name: str, of: str | None = None) -> float:
        """A metric of the out-of-fold predictions, averaged over seeds; `of`: of their `plain`
        (before the post-hoc steps) or `reframed` counterparts instead."""
        pooled = [getattr(o, of) if of else o for o in self.out_of_fold]
        return float(np.mean([p.evaluation.metrics[name] for p in pooled]))

    def metric(self, name: str, of: str | None = None) -> np.ndarray:
        """A metric of every run (fold and seed) on its own test part; `of`: on its `reframed`
        test part instead."""
        scored = [getattr(r, of) if of else r.outputs for r in self.runs]
        return np.array([s.evaluation.metrics[name] for s in scored])


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
    # Every run's config, composed and built before anything trains: a bad arm fails now.
    plan = [
        *(Planned(name, [*base, *o], parts) for name, o in definition.arms.items()),
        *(Planned(name, [*base, *o], parts) for name, o in framing.arms.items()),
        # The references keep their own protocol (not `base`, one random split per seed) but run
        # over the same seeds: one seed's score swings by several points.
        *(
            Planned(name, [*o, *overrides], [[]], {"protocol": "seed (leaky)"})
            for name, o in definition.references.items()
        ),
    ]
    configs = {}
    for arm in plan:
        try:
            configs[id(arm)] = arm.configs(config_dir, definition.seeds)
        except ConfigError as error:
            raise ConfigError(f"compare arm {arm.name!r}: {error}") from error
    tracker: Tracker = build(cfg.tracking)
    earlier = EarlierRuns(tracker, definition.reuse)
    with tracker.run(f"compare-{definition.name}", tags={"kind": "comparison"}) as parent:
        artifacts.log_dict(asdict(definition), "comparison/definition.json")
        parent_id = parent.info.run_id
        done = {arm.name: arm.run(configs[id(arm)], parent_id, earlier) for arm in plan}
        artifacts.log_dict(_run_index(done), "comparison/runs.json")
        arms = _usable({name: done[name] for name in definition.arms}, baseline=True)
        framing_arms = _usable({name: done[name] for name in framing.arms})
        references = _usable({name: done[name] for name in definition.references})
        report, summary, figures = summarise(arms, references, definition.bootstrap, cfg.seed)
        if framing.reframe:
            table = framing_table({**arms, **framing_arms}, definition.bootstrap, cfg.seed)
            report += framing_section(table, framing.tolerance)
            summary.framing = table.to_dict(orient="records")
        report += _runs_section(done)
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


@dataclass
class EarlierRuns:
    """Finished runs of earlier comparisons that stand in for runs about to be trained: the
    same settings (`run_key`) and, with `reuse.match=commit`, the same commit of a clean tree."""

    tracker: Tracker | None
    reuse: Reuse

    @cached_property
    def source(self) -> dict[str, str] | None:
        """The tags that say which code an earlier run must come from (none for any_commit),
        or None when nothing earlier may be reused."""
        if self.reuse.match is ReuseMatch.none:
            return None
        if self.reuse.match is ReuseMatch.any_commit:
            return {}
        if not working_tree_clean():  # uncommitted code: nothing earlier is known to match
            return None
        return {"git_commit": git_commit()}

    def result(self, key: str, cfg: DictConfig) -> RunResult | None:
        if self.tracker is None or self.source is None:
            return None
        tags = {RUN_KEY_TAG: key, **self.source}
        face_step = cfg.data.preprocess.get("face") is not None
        for run in self.tracker.finished_runs(tags):
            found = RunResult.recorded(run.info.run_id, run.data.metrics, cfg.eval_split, face_step)
            if found is not None:
                return found
        return None


RUN_KEY_TAG = "run_key"


def run_key(cfg: DictConfig, ignore: Sequence[str]) -> str:
    """A fingerprint of what a run learns from: its resolved settings, but for the keys (and
    the keys under the prefixes) in `ignore`."""
    settings = artifacts.flatten(artifacts.own_values(cfg))
    kept = {
        key: value
        for key, value in settings.items()
        if not any(key == i or key.startswith(f"{i}.") for i in ignore)
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class Planned:
    """An arm about to run: its overrides, the parts (folds) each seed trains on, and tags."""

    name: str
    overrides: list[str]
    parts: list[list[str]]
    tags: dict[str, str] = field(default_factory=dict)

    def configs(self, config_dir: Path, seeds: Sequence[int]) -> dict[tuple[int, int], Any]:
        """Each (seed, part)'s overrides and config, composed and built once to fail early."""
        configs = {}
        for seed in seeds:
            for number, part in enumerate(self.parts):
                overrides = [*self.overrides, *part, f"seed={seed}"]
                cfg = compose_config(config_dir, overrides)
                check_builds(cfg, ("data", "model", "loss"))
                configs[seed, number] = (overrides, cfg)
        return configs

    def run(self, configs: Mapping, parent: str, earlier: EarlierRuns) -> ArmSummary:
        """One nested MLflow run per seed and part, or an earlier run with the same settings;
        a run that fails is recorded as failed and ends the arm, not the comparison."""
        by_seed: dict[int, list[RunResult]] = {}
        for (seed, number), (overrides, cfg) in configs.items():
            key = run_key(cfg, earlier.reuse.ignore)
            found = earlier.result(key, cfg)
            if found is not None:
                by_seed.setdefault(seed, []).append(found)
                continue
            fold = f"-fold{number}" if self.parts[number] else ""
            tags = {**self.tags, "arm": self.name, "seed": str(seed), RUN_KEY_TAG: key}
            if self.parts[number]:
                tags["fold"] = str(number)
            name = f"{self.name}{fold}-seed{seed}"
            placement = RunPlacement(parent_run_id=parent, name=name, tags=tags)
            try:
                by_seed.setdefault(seed, []).append(train(cfg, overrides, placement=placement))
            except Exception as error:  # recorded FAILED in MLflow by the tracker already
                log.error("comparison run %s failed: %s", name, error)
                return ArmSummary(self.name, list(by_seed.values()), f"{name}: {error}")
        return ArmSummary(self.name, list(by_seed.values()))


def _usable(arms: Mapping[str, ArmSummary], baseline: bool = False) -> dict[str, ArmSummary]:
    """The arms whose every run finished; a failed baseline stops the comparison."""
    first = next(iter(arms.values()), None)
    if baseline and first is not None and first.failure:
        raise FersweepError(
            f"the baseline arm {first.name!r} failed ({first.failure}); nothing to compare "
            "with. Its finished runs are kept: run again to resume"
        )
    usable = {name: arm for name, arm in arms.items() if not arm.failure}
    if baseline and len(usable) < 2:
        failures = "; ".join(arm.failure for arm in arms.values() if arm.failure)
        raise FersweepError(f"no arm is left to compare with the baseline: {failures}")
    return usable


def _run_index(done: Mapping[str, ArmSummary]) -> dict[str, Any]:
    """Which MLflow run answered for each arm, seed and fold (reused ones included)."""
    return {
        name: {"runs": [run.run_id for run in arm.runs], "failure": arm.failure}
        for name, arm in done.items()
    }


def _runs_section(done: Mapping[str, ArmSummary]) -> str:
    """The report's account of reused and failed runs (empty when every run trained here)."""
    reused = sum(run.reused for arm in done.values() for run in arm.runs)
    failed = [arm.failure for arm in done.values() if arm.failure]
    lines = []
    if reused:
        total = sum(len(arm.runs) for arm in done.values())
        lines.append(
            f"- {reused} of {total} runs were reused from earlier comparisons with the same "
            "settings (comparison/runs.json names each run)."
        )
    lines += [f"- Left out, a run failed: {failure}" for failure in failed]
    return "\n## Runs\n\n" + "\n".join(lines) + "\n" if lines else ""


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
        per_class.to_markdown(floatfmt=["", ".0f", *[".3f"] * len(arms)]),
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


def framing_table(arms: Mapping[str, ArmSummary], bootstrap: Bootstrap, seed: int) -> pd.DataFrame:
    """Per arm, macro F1 of the pooled predictions on the test images as they are and reframed
    (mean over seeds), their difference with a paired bootstrap interval over people, and the
    spread of that difference over the runs."""
    rows = []
    for arm in arms.values():
        pooled = arm.out_of_fold
        as_they_are = arm.pooled_metric("macro_f1")
        reframed = arm.pooled_metric("macro_f1", of="reframed")
        difference = paired_bootstrap_difference(
            pooled[0].truth,
            [o.predicted for o in pooled],
            [o.reframed.predicted for o in pooled],
            resamples=bootstrap.resamples,
            confidence=bootstrap.confidence,
            seed=seed,
            groups=pooled[0].people,
        )
        per_run = arm.metric("macro_f1", of="reframed") - arm.metric("macro_f1")
        rows.append(
            {
                "arm": arm.name,
                "face step": arm.runs[0].face_step,
                "macro F1 as they are": as_they_are,
                "macro F1 reframed": reframed,
                "reframed − as they are": reframed - as_they_are,
                "low": difference.low,
                "high": difference.high,
                "per run sd": _spread(per_run),
                "runs": len(arm.runs),
            }
        )
    return pd.DataFrame(rows)


def framing_section(table: pd.DataFrame, tolerance: float) -> str:
    with_face = table[table["face step"]]
    verdicts = [
        f"- **{row['arm']}**: reframed macro F1 {row['reframed − as they are']:+.4f} from the "
        f"images as they are ([{row['low']:+.4f}, {row['high']:+.4f}]), "
        f"{'within' if abs(row['reframed − as they are']) <= tolerance else 'outside'} "
        f"the goal of ±{tolerance:.2f}."
        for _, row in with_face.iterrows()
    ]
    lines = [
        "",
        "## Framing: the test images placed into larger pictures",
        "",
        "Each test image put on a larger canvas (face 30–100% of its height, anywhere in it, on "
        "a textured background, half of them in colour; conf/reframe/default.yaml, fixed seed), "
        "saved as JPEG and scored through each run's own preprocessing. Macro F1 of the pooled "
        "predictions (mean over seeds); *low*, *high*: the paired bootstrap interval of the "
        "difference, resampling people; *per run sd*: the difference's spread over the runs.",
        "",
        table.to_markdown(index=False, floatfmt=".4f"),
        "",
        *verdicts,
    ]
    return "\n".join(lines) + "\n"
