"""A comparison's arms: what each trains (`PlannedArm`), the runs that stand in from earlier
comparisons (`EarlierRuns`, by `run_key`), and each arm's out-of-fold predictions pooled over its
folds (`ArmRuns`, `OutOfFold`)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fersweep.config.compose import build, check_builds, compose_config
from fersweep.config.schemas import Reuse, ReuseMatch
from fersweep.config.values import flatten, own_values
from fersweep.errors import ConfigError, FersweepError
from fersweep.evaluation.metrics import Evaluation, SplitPredictions, evaluate
from fersweep.tasks.train import RunPlacement, RunResult, train
from fersweep.tracking import Tracker
from fersweep.tracking.runs import git_commit, working_tree_clean

log = logging.getLogger(__name__)


@dataclass
class OutOfFold(SplitPredictions):
    """One seed's predictions for every evaluated image, each from the run that did not train
    on it (with one split: that split's), sorted by file so arms line up image by image;
    `plain`: the same before the post-hoc steps; `reframed`: the same images framed each way
    of the framing check, by direction, where every run has them."""

    files: np.ndarray
    people: np.ndarray
    plain: SplitPredictions
    reframed: dict[str, SplitPredictions] = field(default_factory=dict)

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
        shared = set.intersection(*(set(r.reframed) for r in runs))
        framed = {  # kept in the first run's order of directions
            name: np.concatenate([r.reframed[name].probabilities for r in runs])[order]
            for name in runs[0].reframed
            if name in shared
        }
        reframed = {name: SplitPredictions(truth, scores) for name, scores in framed.items()}
        return cls(
            truth=truth,
            probabilities=joined(lambda r: r.outputs.probabilities)[order],
            files=files[order],
            people=joined(lambda r: r.people.astype(str))[order],
            plain=SplitPredictions(truth, plain),
            reframed=reframed,
        )


@dataclass
class ArmRuns:
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

    def pooled_metric(self, name: str, of: str | None = None, framing: str | None = None) -> float:
        """A metric of the out-of-fold predictions, averaged over seeds; `of`: of their `plain`
        counterparts (before the post-hoc steps) instead; `framing`: of the images framed as
        that direction of the framing check instead."""
        pooled = [
            o.reframed[framing] if framing else getattr(o, of) if of else o
            for o in self.out_of_fold
        ]
        return float(np.mean([p.evaluation.metrics[name] for p in pooled]))

    def metric(self, name: str, framing: str | None = None) -> np.ndarray:
        """A metric of every run (fold and seed) on its own test part; `framing`: on that part
        framed as this direction of the framing check instead."""
        scored = [r.reframed[framing] if framing else r.outputs for r in self.runs]
        return np.array([s.evaluation.metrics[name] for s in scored])

    @property
    def framings(self) -> list[str]:
        """The framing check's directions every seed's pooled predictions have."""
        return [
            name
            for name in self.out_of_fold[0].reframed
            if all(name in o.reframed for o in self.out_of_fold)
        ]


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
    same settings (`run_key`), the same data (its fingerprint, wherever it lies) and, with
    `reuse.match=commit`, the same commit of a clean tree."""

    tracker: Tracker | None
    reuse: Reuse
    fingerprints: dict[str, str] = field(default_factory=dict, init=False)

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
        tags = {RUN_KEY_TAG: key, "data_fingerprint": self.data_fingerprint(cfg), **self.source}
        face_step = cfg.data.preprocess.get("face") is not None
        framings = list(build(cfg.data.reframe).named()) if cfg.data.get("reframe") else []
        for run in self.tracker.finished_runs(tags):
            metrics, split = run.data.metrics, cfg.eval_split
            found = RunResult.recorded(run.info.run_id, metrics, split, face_step, framings)
            if found is not None:
                return found
        return None

    def data_fingerprint(self, cfg: DictConfig) -> str:
        """The fingerprint of the data `cfg` reads, once per data set."""
        where = f"{cfg.data.layout}:{cfg.data.root}:{list(cfg.data.get('local_copies', []))}"
        if where not in self.fingerprints:
            self.fingerprints[where] = build(cfg.data).content_fingerprint()
        return self.fingerprints[where]


RUN_KEY_TAG = "run_key"


def run_key(cfg: DictConfig, ignore: Sequence[str]) -> str:
    """A fingerprint of what a run learns from: its resolved settings, but for the keys (and
    the keys under the prefixes) in `ignore`."""
    settings = flatten(own_values(cfg))
    kept = {
        key: value
        for key, value in settings.items()
        if not any(key == i or key.startswith(f"{i}.") for i in ignore)
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class PlannedArm:
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

    def jobs(self, configs: Mapping, parent: str, earlier: EarlierRuns) -> list[Job]:
        """One nested MLflow run per seed and part, each with the earlier run that stands in
        for it where there is one."""
        jobs = []
        for (seed, number), (overrides, cfg) in configs.items():
            key = run_key(cfg, earlier.reuse.ignore)
            fold = f"-fold{number}" if self.parts[number] else ""
            tags = {**self.tags, "arm": self.name, "seed": str(seed), RUN_KEY_TAG: key}
            if self.parts[number]:
                tags["fold"] = str(number)
            name = f"{self.name}{fold}-seed{seed}"
            placement = RunPlacement(parent_run_id=parent, name=name, tags=tags)
            jobs.append(Job(seed, name, overrides, cfg, placement, earlier.result(key, cfg)))
        return jobs

    def run(self, configs: Mapping, parent: str, earlier: EarlierRuns) -> ArmRuns:
        """Every job in turn; a run that fails is recorded as failed and ends the arm, not the
        comparison."""
        jobs = self.jobs(configs, parent, earlier)
        done: list[RunResult] = []
        for job in jobs:
            try:
                done.append(job.run())
            except Exception as error:  # recorded FAILED in MLflow by the tracker already
                return self.summary(jobs[: len(done)], done, job.failure(error))
        return self.summary(jobs, done)

    def summary(
        self, jobs: Sequence[Job], results: Sequence[RunResult], failure: str | None = None
    ) -> ArmRuns:
        """The arm's finished runs by seed, in the order of its jobs."""
        by_seed: dict[int, list[RunResult]] = {}
        for job, result in zip(jobs, results):
            by_seed.setdefault(job.seed, []).append(result)
        return ArmRuns(self.name, list(by_seed.values()), failure)


@dataclass
class Job:
    """One run of an arm: what it trains and where it is recorded, or the earlier run that
    stands in for it (`found`)."""

    seed: int
    name: str
    overrides: list[str]
    cfg: DictConfig
    placement: RunPlacement
    found: RunResult | None = None

    def run(self) -> RunResult:
        return self.found or train(self.cfg, self.overrides, placement=self.placement)

    def failure(self, error: BaseException) -> str:
        log.error("comparison run %s failed: %s", self.name, error)
        return f"{self.name}: {error}"


def usable(arms: Mapping[str, ArmRuns], baseline: bool = False) -> dict[str, ArmRuns]:
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


def run_index(done: Mapping[str, ArmRuns]) -> dict[str, Any]:
    """Which MLflow run answered for each arm, seed and fold (reused ones included)."""
    return {
        name: {"runs": [run.run_id for run in arm.runs], "failure": arm.failure}
        for name, arm in done.items()
    }


def runs_section(done: Mapping[str, ArmRuns]) -> str:
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
