"""A sweep definition bound to the project's configs (`Sweep`): each arm's Optuna study, its
storage, its trials' overrides, and the MLflow runs that parent them."""

from __future__ import annotations

import os
import socket
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf

from fersweep.config.compose import (
    as_overrides,
    build,
    check_builds,
    compose_config,
    compose_definition,
    has_key,
    set_apart_absent_keys,
)
from fersweep.config.schemas import SweepDefinition, example_samples
from fersweep.errors import ConfigError
from fersweep.evaluation.console import console
from fersweep.studies import experimental_features
from fersweep.studies.storage import StudyStorage, open_storage, storage_lock
from fersweep.tracking import Tracker, artifacts

PARENT_RUN_ATTR = "mlflow_parent_run_id"
SWEEP_RUN_ATTR = "mlflow_sweep_run_id"
FINISHED_ATTR = "finished_with_trials"
OUTCOME_ATTR = "outcome"


@dataclass
class Sweep:
    """A sweep definition bound to the project's configs and the user's extra overrides: those
    every trial gets, and `where_present`, those of keys only some trials' configs have (one
    backbone's `model.net.frozen_memo_mb`), each given to the trials whose config has its key."""

    definition: SweepDefinition
    config_dir: Path
    overrides: list[str]
    where_present: list[str] = field(default_factory=list)

    @classmethod
    def compose(cls, config_dir: Path, argv: Sequence[str] = ()) -> Sweep:
        """The sweep `python sweep.py <argv>` runs: `sweeps@sweep=<name>` picks the definition,
        `sweep.<key>=<value>` changes it, any other override changes the trials' configs."""
        # Keys only some trials have are looked for only when the whole line does not compose:
        # finding them is one more composition (about 0.5 s), at every sweep's start otherwise.
        where_present: list[str] = []
        try:
            cfg, overrides = compose_definition(config_dir, "sweep", argv)
        except ConfigError:
            argv, where_present = set_apart_absent_keys(config_dir, "sweep", argv)
            cfg, overrides = compose_definition(config_dir, "sweep", argv)
        return cls(OmegaConf.to_object(cfg.sweep), config_dir, overrides, where_present)

    def trial_overrides(self, arm: str, sampled: dict[str, Any]) -> list[str]:
        d = self.definition
        chosen = [*d.base, *d.arms[arm].overrides, *as_overrides(sampled), *self.overrides]
        return [*chosen, *self._present(chosen), f"seed={d.seed}"]

    def _present(self, chosen: list[str]) -> list[str]:
        """The overrides of `where_present` whose key the config `chosen` composes has."""
        if not self.where_present:
            return []
        cfg = compose_config(self.config_dir, chosen)
        return [o for o in self.where_present if has_key(cfg, o)]

    def base_config(self):
        return compose_config(self.config_dir, [*self.definition.base, *self.overrides])

    @cached_property
    def storage_url(self) -> str:
        return (
            self.definition.storage or f"sqlite:///{self.base_config().paths.mlruns_dir}/optuna.db"
        )

    def storage(self) -> StudyStorage:
        d = self.definition
        return open_storage(self.storage_url, d.heartbeat_seconds, d.max_retry)

    def open_study(self, arm: str, worker: int = 0) -> optuna.Study:
        d = self.definition
        storage = self.storage()
        sampler = build(OmegaConf.create(d.sampler), seed=self.sampler_seed(worker))
        study = optuna.create_study(
            study_name=d.study_name(arm),
            storage=storage,
            sampler=sampler,
            pruner=build(OmegaConf.create(d.pruner)),
            direction=d.objective.direction.value,
            load_if_exists=True,
        )
        if study.metric_names is None:  # what optuna-dashboard and the plots call the objective
            with experimental_features():
                study.set_metric_names([d.objective.metric])
        return study

    def sampler_seed(self, worker: int) -> int:
        """Each worker its own seed, or parallel workers would propose the same values. Workers
        of this machine's study are told apart by their index (the seeds repeat run to run); a
        shared study (sweep.storage) may have workers 0 on several machines, so its seeds also
        depend on the machine and the process."""
        seed = self.definition.seed + worker
        if self.definition.storage is not None:
            seed = (seed + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode())) % 2**32
        return seed

    def check(self) -> None:
        """Compose and build trial configs that between them hold every setting of each arm
        before any training: bad keys fail here, and so does an override that no trial's config
        has the key of."""
        unused = set(self.where_present)
        for arm in self.definition.arms:
            for sampled in example_samples(self.definition.arm_space(arm)):
                try:
                    overrides = self.trial_overrides(arm, sampled)
                    cfg = compose_config(self.config_dir, overrides)
                except ConfigError as error:  # Hydra's composition errors name the bad override
                    raise ConfigError(f"sweep arm {arm!r}: {error}") from error
                check_builds(cfg, ("data", "model", "optimizer", "loss"))
                unused -= set(overrides)
        if unused:
            raise ConfigError(
                f"{', '.join(sorted(unused))}: no trial's config has this key (checked with the "
                "sweep's base, each arm's overrides and samples holding every setting of its "
                "search space); a misspelt key?"
            )
        for override in self.where_present:
            console.print(f"{override}: only in the trials whose config has this key")


def ensure_parent_runs(sweep: Sweep) -> str:
    """The sweep's MLflow run and one nested run per arm, created once and found again on resume
    (their ids live in the studies' user attributes)."""
    d = sweep.definition
    tracker: Tracker = build(sweep.base_config().tracking)
    tracker.connect()
    studies = {arm: sweep.open_study(arm) for arm in d.arms}
    first = next(iter(studies.values()))
    with storage_lock(sweep.storage(), f"{d.name}-parents"):
        sweep_run_id = first.user_attrs.get(SWEEP_RUN_ATTR)
        if sweep_run_id is None:
            sweep_run_id = tracker.start_detached_run(
                f"sweep-{d.name}", tags={"kind": "sweep", "sweep": d.name}
            )
            definition = OmegaConf.to_container(OmegaConf.structured(d), enum_to_str=True)
            artifacts.log_dict(definition, "sweep/definition.json", sweep_run_id)
            artifacts.log_params({"sweep": definition}, sweep_run_id)
        else:  # resumed: its runs are RUNNING again until this launch ends them
            tracker.reopen_detached_run(sweep_run_id)
        for arm, study in studies.items():
            study.set_user_attr(SWEEP_RUN_ATTR, sweep_run_id)
            if PARENT_RUN_ATTR in study.user_attrs:
                tracker.reopen_detached_run(study.user_attrs[PARENT_RUN_ATTR])
            else:
                run_id = tracker.start_detached_run(
                    f"{d.name}/{arm}",
                    parent_run_id=sweep_run_id,
                    tags={
                        "kind": "sweep-arm",
                        "sweep": d.name,
                        "arm": arm,
                        "study": d.study_name(arm),
                    },
                )
                study.set_user_attr(PARENT_RUN_ATTR, run_id)
    return sweep_run_id


def end_parent_runs(
    sweep: Sweep, sweep_run_id: str, status: str, tags: dict[str, str] | None = None
) -> None:
    """The arms' runs and the sweep's run ended with `status` (and tagged), so a sweep that
    stops for any reason leaves no run RUNNING."""
    tracker: Tracker = build(sweep.base_config().tracking)
    tracker.connect()
    runs = [sweep.open_study(arm).user_attrs.get(PARENT_RUN_ATTR) for arm in sweep.definition.arms]
    for run_id in [*filter(None, runs), sweep_run_id]:
        if tags:
            tracker.set_tags(run_id, tags)
        tracker.end_detached_run(run_id, status)
