"""The gate before the alias `champion` moves: the sweep's best trial, re-trained on
identity-disjoint folds beside the current champion and the references, must beat each on
pooled macro F1 with a bootstrap interval over people above zero. The evidence (report,
summary, per-class table) goes to the candidate's run and its model version's tags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt

from fersweep.config.compose import build
from fersweep.config.schemas import Bootstrap, ChampionGate
from fersweep.config.schemas import Framing as FramingCheck
from fersweep.errors import ConfigError
from fersweep.evaluation.console import show_markdown
from fersweep.tasks.compare.arms import EarlierRuns, PlannedArm, fold_overrides
from fersweep.tasks.compare.report import (
    ComparisonSummary,
    framing_section,
    framing_table,
    summarise,
)
from fersweep.tasks.compare.workers import run_arms
from fersweep.tracking import Tracker, artifacts, registry

CANDIDATE = "candidate"
CHAMPION = "champion"


@dataclass
class Verdict:
    """Whether the candidate passed, and why (one line per opponent)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    report: str = ""
    summary: ComparisonSummary | None = None

    def tags(self) -> dict[str, str]:
        tags = {"gate_passed": str(self.passed).lower(), "gate_reasons": " | ".join(self.reasons)}
        if self.summary is not None:
            tags["gate_folds"] = str(self.summary.folds)
            tags["gate_macro_f1"] = f"{self.summary.arm_means[CANDIDATE]:.4f}"
            for name, d in self.summary.differences.items():
                tags[f"gate_vs_{name}"] = f"{-d.difference:+.4f} [{-d.high:+.4f}, {-d.low:+.4f}]"
        return tags


def verdict(summary: ComparisonSummary, report: str = "") -> Verdict:
    """The candidate (the summary's baseline) against every other arm: the summary holds
    other − candidate, so the candidate beats an arm when that interval lies below zero."""
    reasons, passed = [], True
    for name, d in summary.differences.items():
        gain, low, high = -d.difference, -d.high, -d.low
        beats = low > 0
        passed &= beats
        reasons.append(
            f"{'beats' if beats else 'does not beat'} {name}: macro F1 {gain:+.4f}, "
            f"{d.confidence:.0%} interval [{low:+.4f}, {high:+.4f}]"
        )
    return Verdict(passed, reasons, report, summary)


def run_gate(
    config_dir: Path,
    gate: ChampionGate,
    bootstrap: Bootstrap,
    seed: int,
    base: list[str],
    candidate: list[str],
    current: list[str] | None,
    parent_run_id: str,
    tracker: Tracker,
) -> Verdict:
    """Train the candidate, the current champion (its overrides, if there is one) and each
    reference on every fold, nested under `parent_run_id` (or take an earlier gate's run with
    the same settings, as `gate.reuse` allows), and judge."""
    opponents = {CHAMPION: current} if current is not None else {}
    opponents.update({name: [*own_model(base, o), *o] for name, o in gate.opponents().items()})
    if not opponents:
        return Verdict(True, ["no current champion and no reference to beat"])
    parts = fold_overrides(gate.folds)
    framed = [*candidate, f"reframe={gate.reframe}"] if gate.reframe else candidate
    planned = [
        PlannedArm(name, overrides, parts, {"kind": "gate"})
        for name, overrides in {CANDIDATE: framed, **opponents}.items()
    ]
    configs = {}
    for arm in planned:
        try:
            configs[arm.name] = arm.configs(config_dir, [seed])
        except ConfigError as error:
            raise ConfigError(f"sweep.gate: the {arm.name} arm does not compose: {error}") from None
    earlier = EarlierRuns(tracker, gate.reuse)
    arms = run_arms(planned, configs, parent_run_id, earlier, gate.workers)
    failed = [arm.failure for arm in arms.values() if arm.failure]
    if failed:  # an opponent that could not be trained cannot be shown beaten
        return Verdict(False, [f"a gate run failed: {failure}" for failure in failed])
    report, summary, figures = summarise(arms, {}, bootstrap, seed)
    for figure in figures.values():  # the report and summary are the evidence kept
        plt.close(figure)
    if gate.reframe:
        table = framing_table({CANDIDATE: arms[CANDIDATE]}, bootstrap, seed)
        (_, candidate_cfg), *_ = configs[CANDIDATE].values()
        report += framing_section(table, FramingCheck().tolerance, describe(candidate_cfg))
        summary.framing = table.to_dict(orient="records")
    return verdict(summary, report)


def describe(cfg) -> str:
    """What the framing check did to the test images, in a sentence."""
    return build(cfg.data.reframe).describe()


def own_model(base: list[str], overrides: list[str]) -> list[str]:
    """`base` for an arm that picks its own model (`model=hog_svm`): without the base's settings
    of another model (`model.net.filters=...`), which the arm's model does not have."""
    if any(o.startswith("model=") for o in overrides):
        return [b for b in base if not b.startswith("model.")]
    return base


def current_champion_overrides(model: str) -> list[str] | None:
    """The overrides the current champion was trained with, or None when there is none yet."""
    return registry.overrides_of_alias(model, CHAMPION)


def record(verdict: Verdict, model: str, version: str, run_id: str) -> None:
    """The evidence on the candidate's model version (tags) and run (artifacts)."""
    registry.tag_version(model, version, verdict.tags())
    if verdict.summary is not None:
        artifacts.log_text(verdict.report, "champion_gate/report.md", run_id)
        artifacts.log_dict(verdict.summary.as_dict(), "champion_gate/summary.json", run_id)
        show_markdown(verdict.report)
