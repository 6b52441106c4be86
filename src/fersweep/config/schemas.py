"""What a sweep or comparison definition may say: dataclass schemas for the files in `sweeps/`
and `comparisons/` (`bench/`'s are in bench_schemas), which Hydra composes and checks (a wrong
key or type fails with Hydra's own message naming it). `__post_init__` adds the checks a schema
cannot express."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import optuna
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from fersweep.config.bench_schemas import BenchDefinition
from fersweep.config.sweep_options import Launcher, StopWhenStalled, WarmStart
from fersweep.errors import ConfigError


class ParamType(Enum):
    int = "int"
    float = "float"
    categorical = "categorical"


class Direction(Enum):
    maximize = "maximize"
    minimize = "minimize"


@dataclass
class SearchParam:
    """One searched setting: its key (in the search space's mapping) is a Hydra override
    target, a config key (`model.net.filters`) or a config group (`optimizer`). `when` makes it
    conditional: searched only in trials whose sampled values of those (categorical) keys are
    among the listed ones, e.g. `loss.tau` when `loss` is `logit_adjusted`."""

    type: ParamType = MISSING
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list[Any] | None = None
    when: dict[str, list[Any]] = field(default_factory=dict)

    def check(self, key: str) -> None:
        where = f"search_space.{key}"
        if self.type is ParamType.categorical:
            if not self.choices:
                raise ConfigError(f"{where}.choices is empty: list at least one value")
            return
        if self.low is None or self.high is None or self.low > self.high:
            raise ConfigError(f"{where}: needs low <= high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log scale needs low > 0, got low={self.low}")

    def suggest(self, trial: optuna.Trial, key: str) -> Any:
        if self.type is ParamType.categorical:
            return trial.suggest_categorical(key, list(self.choices))
        if self.type is ParamType.int:
            step = int(self.step or 1)
            return trial.suggest_int(key, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(key, self.low, self.high, step=self.step, log=self.log)

    def example(self) -> Any:
        """A value from the range, used to check the key composes before any training."""
        if self.type is ParamType.categorical:
            return self.choices[0]
        return int(self.low) if self.type is ParamType.int else self.low

    def active(self, sampled: Mapping[str, Any]) -> bool:
        """Whether its conditions hold for the values sampled so far."""
        return all(sampled.get(key) in values for key, values in self.when.items())


def sample_space(
    space: Mapping[str, SearchParam],
    pick: Callable[[str, SearchParam], Any],
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A value per active setting of the space: `pick(key, param)` (or `fixed[key]`), each
    conditional setting after the keys its `when` names, and left out where they do not match."""
    sampled: dict[str, Any] = {}
    pending = list(space)
    while pending:
        ready = [key for key in pending if not set(space[key].when) & set(pending)]
        if not ready:
            raise ConfigError(f"search_space: the `when` conditions of {pending} form a cycle")
        for key in ready:
            if space[key].active(sampled):
                sampled[key] = fixed[key] if fixed and key in fixed else pick(key, space[key])
            pending.remove(key)
    return sampled


def example_samples(space: Mapping[str, SearchParam]) -> list[dict[str, Any]]:
    """Samples that between them hold every setting at least once (each conditional one with
    its conditions met), so every key can be composed before any training."""
    samples = [sample_space(space, lambda _, param: param.example())]
    for key in space:
        if key not in samples[0]:
            samples.append(sample_space(space, lambda _, p: p.example(), _conditions(space, key)))
    return samples


def _conditions(space: Mapping[str, SearchParam], key: str) -> dict[str, Any]:
    """Values that make `key` active, its conditions' own conditions included."""
    forced: dict[str, Any] = {}
    for name, values in space[key].when.items():
        forced |= _conditions(space, name)
        forced[name] = values[0]
    return forced


def check_space(space: Mapping[str, SearchParam]) -> None:
    """Every setting's range, and every condition naming a categorical key of the same space
    with values among its choices."""
    for key, param in space.items():
        param.check(key)
        for name, values in param.when.items():
            condition = space.get(name)
            if condition is None or condition.type is not ParamType.categorical:
                raise ConfigError(
                    f"search_space.{key}.when: {name!r} must be a categorical key of the same "
                    "search space"
                )
            unknown = [v for v in values if v not in condition.choices]
            if unknown:
                raise ConfigError(
                    f"search_space.{key}.when.{name}: {unknown} not among {name}'s choices "
                    f"{list(condition.choices)}"
                )
    sample_space(space, lambda _, param: param.example())  # raises on a cycle


@dataclass
class Arm:
    overrides: list[str] = field(default_factory=list)
    search_space: dict[str, SearchParam] = field(default_factory=dict)


@dataclass
class Objective:
    metric: str = "val/macro_f1_best"  # what train() returns and Optuna optimises
    monitor: str = "val/macro_f1"  # reported every epoch, for pruning
    direction: Direction = Direction.maximize


@dataclass
class Bootstrap:
    resamples: int = 2000
    confidence: float = 0.95


# What a user would pick instead of a sweep: HOG + a linear SVM, and a linear read-out of the
# frozen FER2013 network (at 64x64, the size it was trained at), the score to beat (0.407 pooled).
GATE_REFERENCES = {
    "hog_svm": ["model=hog_svm"],
    "fer_probe": ["model=fer_probe", "data.preprocess.size=64"],
}


@dataclass
class ChampionGate:
    """What the best trial must show before the alias `champion` moves to it: re-trained on
    `folds` identity-disjoint folds beside the current champion's config and each reference
    (overrides on top of the sweep's base), it must beat every one on pooled macro F1 with a
    bootstrap interval (over people) above zero. `folds: null` turns the gate off: the alias
    then goes to the best trial by validation, as before. `reframe`: the candidate's folds
    also scored on reframed pictures, for the report."""

    folds: int | None = 5
    # null: GATE_REFERENCES. (A default dict would be merged with a definition's, which could
    # then add references but never leave one out.)
    references: dict[str, list[str]] | None = None
    # The candidate's test folds also scored reframed (a conf/reframe option; null: not), shown
    # beside its score as they are: scoring only, nothing more is trained, nothing is judged.
    reframe: str | None = "both"
    # Processes the fold runs share this machine's cores between (each run is independent).
    workers: int = 1
    # Finished runs of earlier gates that stand in for a run (the same settings, data and, by
    # default, commit): the references and the current champion are not trained again in every
    # sweep. `data.reframe` only adds scoring, so a candidate's fold stands in for the champion's.
    reuse: Reuse = field(
        default_factory=lambda: Reuse(ReuseMatch.commit, [*RUN_SETTINGS_IGNORED, "data.reframe"])
    )

    def __post_init__(self) -> None:
        if self.folds is not None and self.folds < 2:
            raise ConfigError(f"sweep.gate.folds={self.folds}: use 2 or more, or null for no gate")
        if self.workers < 1:
            raise ConfigError(f"sweep.gate.workers={self.workers}: use 1 or more")

    def opponents(self) -> dict[str, list[str]]:
        """The references to beat: the definition's, or GATE_REFERENCES when it names none."""
        chosen = GATE_REFERENCES if self.references is None else self.references
        return {name: list(overrides) for name, overrides in chosen.items()}


class BestWeights(Enum):
    trial = "trial"  # the best trial's own best epoch, kept by every completed trial
    retrain = "retrain"  # the best trial's config trained again


@dataclass
class SweepDefinition:
    """A `sweeps/*.yaml` sweep: sweeps/default.yaml explains every key."""

    name: str = MISSING
    description: str = ""
    base: list[str] = field(default_factory=list)
    arms: dict[str, Arm] = MISSING
    search_space: dict[str, SearchParam] = field(default_factory=dict)
    objective: Objective = field(default_factory=Objective)
    trials: int | None = None
    timeout_minutes: float | None = None
    trial_timeout_minutes: float | None = None
    sampler: dict[str, Any] = MISSING
    pruner: dict[str, Any] = MISSING
    storage: str | None = None
    heartbeat_seconds: int = 30
    max_retry: int = 2
    tracking_outage_minutes: float = 30.0
    workers: int = 1
    seed: int = 42
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    registered_model: str = "fersweep-emotion"
    best_weights: BestWeights = BestWeights.trial
    gate: ChampionGate = field(default_factory=ChampionGate)
    warm_start: WarmStart = field(default_factory=WarmStart)
    stop_when_stalled: StopWhenStalled = field(default_factory=StopWhenStalled)
    launcher: Launcher = field(default_factory=Launcher)

    def __post_init__(self) -> None:
        if self.trials is None and self.timeout_minutes is None:
            raise ConfigError("sweep: set trials, timeout_minutes or both, or it never ends")
        if self.trials is not None and self.trials <= 0:
            raise ConfigError(f"sweep.trials={self.trials}: must be positive")
        if self.trial_timeout_minutes is not None and self.trial_timeout_minutes <= 0:
            raise ConfigError(
                f"sweep.trial_timeout_minutes={self.trial_timeout_minutes}: "
                "must be positive (or null for none)"
            )
        if self.workers <= 0:
            raise ConfigError(f"sweep.workers={self.workers}: must be positive")
        if self.tracking_outage_minutes < 0:
            raise ConfigError(
                f"sweep.tracking_outage_minutes={self.tracking_outage_minutes}: must be >= 0"
            )
        if not self.arms:
            raise ConfigError("sweep.arms: name at least one arm")
        for arm in self.arms:
            check_space(self.arm_space(arm))
        self._check_enqueued()
        if (problem := self.launcher.shares_machines(self.storage)) is not None:
            raise ConfigError(problem)
        if self.storage and "://" not in self.storage:
            raise ConfigError(
                f"sweep.storage={self.storage!r}: expected a SQLAlchemy URL such as "
                "sqlite:///mlruns/optuna.db or postgresql://user@host:5432/db"
            )

    def _check_enqueued(self) -> None:
        known = {key for arm in self.arms for key in self.arm_space(arm)}
        for number, settings in enumerate(self.warm_start.enqueue):
            unknown = sorted(set(settings) - known)
            if unknown:
                raise ConfigError(
                    f"sweep.warm_start.enqueue[{number}]: {unknown} are not search-space keys "
                    f"of any arm ({sorted(known)})"
                )

    def arm_space(self, arm: str) -> dict[str, SearchParam]:
        """The shared search space and the arm's own."""
        return {**self.search_space, **self.arms[arm].search_space}

    def study_name(self, arm: str) -> str:
        return f"{self.name}-{arm}"


@dataclass
class Framing:
    """The framing check in a comparison: every arm's runs also scored on reframed test images
    (`reframe`, an option of conf/reframe, `both` for both ways; null for no check), and further
    `arms` (e.g. with the face step) trained over the same seeds, in the framing table only."""

    reframe: str | None = "default"
    arms: dict[str, list[str]] = field(default_factory=dict)
    # The goal it is read against: a face-step arm's reframed macro F1 within this of its own.
    tolerance: float = 0.03


class ReuseMatch(Enum):
    commit = "commit"  # the same settings, run by the same commit
    any_commit = (
        "any_commit"  # the same settings, whatever code ran them (runs.json names each run)
    )
    none = "none"  # train every run afresh


# Keys that say where and how verbosely a run goes, not what it learns (conf/compare.yaml's too).
RUN_SETTINGS_IGNORED = (
    "paths tracking logger run_name data.root data.local_copies data.download data.cache_dir "
    "data.decode_workers data.num_workers trainer.enable_progress_bar trainer.enable_model_summary"
).split()


@dataclass
class Reuse:
    """Which finished runs of earlier comparisons stand in for a run about to be trained: the
    same resolved settings (but for the keys under `ignore`, which say where and how verbosely a
    run goes, not what it learns) and, by default, the same commit. A comparison that stopped
    half-way resumes; an arm added to the definition trains alone."""

    match: ReuseMatch = ReuseMatch.commit
    ignore: list[str] = field(default_factory=list)


@dataclass
class ComparisonDefinition:
    """`comparisons/compare.yaml`: shared overrides, the arms (the first is the baseline), the folds,
    the seeds, the references, the framing check."""

    name: str = MISSING
    base: list[str] = field(default_factory=list)
    arms: dict[str, list[str]] = MISSING  # two or more: the baseline first
    folds: int | None = None  # identity_kfold over this many folds; null: base's one split
    seeds: list[int] = MISSING
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    references: dict[str, list[str]] = field(default_factory=dict)
    framing: Framing = field(default_factory=Framing)
    reuse: Reuse = field(default_factory=Reuse)
    workers: int = 1  # processes the runs share this machine's cores between

    def __post_init__(self) -> None:
        if self.framing.arms and self.framing.reframe is None:
            raise ConfigError(
                "compare.framing.arms needs compare.framing.reframe (a conf/reframe option)"
            )
        clash = set(self.framing.arms) & set(self.arms)
        if clash:
            raise ConfigError(f"compare.framing.arms reuses the arm name(s) {sorted(clash)}")
        if len(self.arms) < 2:
            raise ConfigError(
                f"compare.arms must name at least two arms (the baseline first), got {list(self.arms)}"
            )
        if self.folds is not None and self.folds < 2:
            raise ConfigError(f"compare.folds={self.folds}: use 2 or more, or null for one split")
        if not self.seeds:
            raise ConfigError("compare.seeds must list at least one seed")


def register_schemas() -> None:
    """The schemas, as Hydra's config group `schema`, for conf/sweep.yaml, compare.yaml, bench.yaml."""
    store = ConfigStore.instance()
    store.store(group="schema", name="sweep", node=SweepDefinition)
    store.store(group="schema", name="compare", node=ComparisonDefinition)
    store.store(group="schema", name="bench", node=BenchDefinition)
