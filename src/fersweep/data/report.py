"""The data report as the terminal shows it: problems found in the legend, what preprocessing did,
and the images per emotion and split."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table

from fersweep.data.legend import DataReport
from fersweep.evaluation.console import console

_shown: list[dict] = []  # the last report printed in full, so a run of folds shows it once


def show_data_report(report: DataReport, counts: Mapping[str, Mapping[str, int]]) -> None:
    """The problems and preprocessing tables (once, while the report stays the same: every fold
    of a comparison reads the same legend), then the images per emotion and split."""
    if _shown == [report.as_dict()]:
        console.print(f"data report as above: {report.rows_read} rows read")
    else:
        _shown[:] = [report.as_dict()]
        _show_problems(report)
    if counts:
        _show_splits(counts)


def _show_problems(report: DataReport) -> None:
    problems = Table(title=f"data report: {report.rows_read} rows read")
    problems.add_column("problem")
    problems.add_column("count", justify="right")
    problems.add_column("examples")
    for problem, count in sorted(report.counts.items()):
        problems.add_row(problem, str(count), "; ".join(report.examples[problem][:2]))
    console.print(problems)
    if report.steps:
        steps = Table(title="what preprocessing did to the images kept")
        steps.add_column("step")
        steps.add_column("images", justify="right")
        for step, count in sorted(report.steps.items()):
            steps.add_row(step, str(count))
        console.print(steps)


def _show_splits(counts: Mapping[str, Mapping[str, int]]) -> None:
    splits = Table(title="images per emotion and split")
    splits.add_column("emotion")
    for split in counts:
        splits.add_column(split, justify="right")
    for emotion in next(iter(counts.values())):
        splits.add_row(emotion, *(str(c[emotion]) for c in counts.values()))
    console.print(splits)
