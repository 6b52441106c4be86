"""What a person sees in the terminal: the data report and the evaluation, as rich tables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from fersweep import EMOTIONS
from fersweep.data.legend import DataReport
from fersweep.metrics import Evaluation

console = Console()


def show_data_report(report: DataReport, counts: Mapping[str, Mapping[str, int]]) -> None:
    problems = Table(title=f"data report: {report.rows_read} rows read")
    problems.add_column("problem")
    problems.add_column("count", justify="right")
    problems.add_column("examples")
    for problem, count in sorted(report.counts.items()):
        problems.add_row(problem, str(count), "; ".join(report.examples[problem][:2]))
    console.print(problems)
    if not counts:
        return
    splits = Table(title="images per emotion and split")
    splits.add_column("emotion")
    for split in counts:
        splits.add_column(split, justify="right")
    for emotion in next(iter(counts.values())):
        splits.add_row(emotion, *(str(c[emotion]) for c in counts.values()))
    console.print(splits)


def show_evaluation(evaluation: Evaluation, title: str) -> None:
    table = Table(title=title)
    table.add_column("emotion")
    for column in ("precision", "recall", "f1-score", "support"):
        table.add_column(column, justify="right")
    for emotion, row in evaluation.per_class.iterrows():
        table.add_row(
            str(emotion),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1-score']:.3f}",
            str(int(row["support"])),
        )
    console.print(table)
    console.print(
        "  ".join(f"[bold]{name}[/bold] {value:.4f}" for name, value in evaluation.metrics.items())
    )


def show_predictions(table: pd.DataFrame, skipped: Mapping[str, str]) -> None:
    view = Table(title=f"{len(table)} image(s)")
    view.add_column("file", overflow="fold", min_width=12)
    view.add_column("emotion")
    view.add_column("probability", justify="right")
    for emotion in EMOTIONS:
        view.add_column(emotion[:4], justify="right")
    for _, row in table.iterrows():
        view.add_row(
            Path(row["file"]).name,
            row["emotion"],
            f"{row['probability']:.3f}",
            *(f"{row[f'p_{emotion}']:.2f}" for emotion in EMOTIONS),
        )
    console.print(view)
    for file, why in skipped.items():
        console.print(f"[yellow]skipped {file}: {why}[/yellow]")
