"""The comparison task: every arm (and reference) on every fold and seed as nested MLflow runs,
then one report."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fersweep.config.compose import build, compose_config, compose_definition
from fersweep.config.schemas import ComparisonDefinition
from fersweep.errors import ConfigError
from fersweep.evaluation.console import console, show_markdown
from fersweep.tasks.compare.arms import (
    ArmRuns,
    EarlierRuns,
    PlannedArm,
    fold_overrides,
    run_index,
    runs_section,
    usable,
)
from fersweep.tasks.compare.report import (
    Comparison,
    ComparisonSummary,
    framing_section,
    framing_table,
    json_default,
    summarise,
)
from fersweep.tasks.compare.workers import run_arms
from fersweep.tracking import Tracker, artifacts


def run_comparison(config_dir: Path, argv: Sequence[str] = ()) -> tuple[str, str]:
    """`python compare.py <argv>`: `compare.<key>=<value>` changes the definition
    (comparisons/compare.yaml), any other override changes every run. Trains every arm on every fold
    and seed (and each reference over the seeds) as nested MLflow runs; returns the Markdown
    report and the parent run's id."""
    composed, overrides = compose_definition(config_dir, "compare", argv)
    definition: ComparisonDefinition = OmegaConf.to_object(composed.compare)
    base = [*definition.base, *_reframe(definition), *overrides]
    cfg = compose_config(config_dir, base)
    plan = plan_arms(definition, base, overrides)
    configs = compose_plan(plan, config_dir, definition.seeds)  # a bad arm fails before training
    tracker: Tracker = build(cfg.tracking)
    earlier = EarlierRuns(tracker, definition.reuse)
    with tracker.run(f"compare-{definition.name}", tags={"kind": "comparison"}) as parent:
        artifacts.log_dict(asdict(definition), "comparison/definition.json")
        parent_id = parent.info.run_id
        done = run_arms(plan, configs, parent_id, earlier, definition.workers)
        artifacts.log_dict(run_index(done), "comparison/runs.json")
        framing = build(cfg.data.reframe).describe() if cfg.data.get("reframe") else ""
        comparison = comparison_report(definition, done, cfg.seed, framing)
        comparison.record()
        report = comparison.report
        path = write_report(
            report, comparison.summary, Path(cfg.paths.output_dir) / "compare" / parent_id
        )
    show_markdown(report)
    console.print(f"report written to {path} and to MLflow run {parent_id}")
    return report, parent_id


def _reframe(definition: ComparisonDefinition) -> list[str]:
    reframe = definition.framing.reframe
    return [f"reframe={reframe}"] if reframe else []


def plan_arms(
    definition: ComparisonDefinition, base: list[str], overrides: list[str]
) -> list[PlannedArm]:
    """The arms and the framing check's arms on every fold; the references keep their own
    protocol (not `base`: one random split per seed) but run over the same seeds, as one seed's
    score swings by several points."""
    parts = fold_overrides(definition.folds)
    return [
        *(PlannedArm(name, [*base, *o], parts) for name, o in definition.arms.items()),
        *(PlannedArm(name, [*base, *o], parts) for name, o in definition.framing.arms.items()),
        *(
            PlannedArm(name, [*o, *overrides], [[]], {"protocol": "seed (leaky)"})
            for name, o in definition.references.items()
        ),
    ]


def compose_plan(
    plan: Sequence[PlannedArm], config_dir: Path, seeds: Sequence[int]
) -> dict[str, dict[tuple[int, int], tuple[list[str], DictConfig]]]:
    """Every run's overrides and config by arm, composed and built once."""
    configs = {}
    for arm in plan:
        try:
            configs[arm.name] = arm.configs(config_dir, seeds)
        except ConfigError as error:
            raise ConfigError(f"compare arm {arm.name!r}: {error}") from error
    return configs


def comparison_report(
    definition: ComparisonDefinition,
    done: Mapping[str, ArmRuns],
    seed: int,
    framing_description: str = "",
) -> Comparison:
    """The report, its summary and figures from the arms that finished; the framing check's
    section says what was done to the test images (`framing_description`)."""
    arms = usable({name: done[name] for name in definition.arms}, baseline=True)
    references = usable({name: done[name] for name in definition.references})
    report, summary, figures = summarise(arms, references, definition.bootstrap, seed)
    framing = definition.framing
    if framing.reframe:
        framing_arms = usable({name: done[name] for name in framing.arms})
        table = framing_table({**arms, **framing_arms}, definition.bootstrap, seed)
        report += framing_section(table, framing.tolerance, framing_description)
        summary.framing = table.to_dict(orient="records")
    return Comparison(report + runs_section(done), summary, figures)


def write_report(report: str, summary: ComparisonSummary, folder: Path) -> Path:
    """report.md and summary.json in `folder`; returns the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(report)
    summary_text = json.dumps(summary.as_dict(), indent=2, default=json_default)
    (folder / "summary.json").write_text(summary_text)
    return folder / "report.md"
