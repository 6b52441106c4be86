"""What a person sees in the terminal: the data report and the evaluation, as rich tables."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from fersweep import EMOTIONS
from fersweep.data.legend import DataReport
from fersweep.metrics import Evaluation

if TYPE_CHECKING:
    from fersweep.predict import Predictions

console = Console()


def show_data_report(report: DataReport, counts: Mapping[str, Mapping[str, int]]) -> None:
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


def show_predictions(predictions: Predictions) -> None:
    """One line per face: file, face number and box, the emotion and the runner-up with their
    probabilities (all eight go to --output); then a line per note, and one per file or face
    that was not classified, saying why."""
    classified = predictions.classified
    view = Table(title=f"{len(classified)} face(s) classified")
    view.add_column("file", overflow="fold", min_width=12)
    view.add_column("face", justify="right")
    view.add_column("box x,y w×h")
    view.add_column("emotion")
    view.add_column("p", justify="right")
    view.add_column("runner-up")
    for _, row in classified.iterrows():
        first, second = row[[f"p_{e}" for e in EMOTIONS]].astype(float).nlargest(2).items()
        view.add_row(
            Path(row["file"]).name,
            str(row["face"]),
            f"{row['x']},{row['y']} {row['width']}×{row['height']}",
            row["emotion"],
            f"{first[1]:.2f}",
            f"{second[0].removeprefix('p_')} {second[1]:.2f}",
        )
    console.print(view)
    show_notes(predictions)


def show_notes(predictions: Predictions, skip: Collection[str] = ()) -> None:
    """A line per picture that was converted (16-bit, CMYK, ...) and per picture or face that
    was not classified, naming the file; notes listed in `skip` are left out."""
    classified = predictions.classified
    for file, note in zip(classified["file"], classified["note"]):
        shown = [part for part in note.split("; ") if part and part not in skip]
        if shown:
            console.print(f"[cyan]{file}: {'; '.join(shown)}[/cyan]", soft_wrap=True)
    for _, why in predictions.problems:  # soft wrap: a path stays whole, to copy and paste
        console.print(f"[yellow]not classified: {why}[/yellow]", soft_wrap=True)


def show_framing(original: Evaluation, reframed: Evaluation) -> None:
    table = Table(title="framing check: the same images, as taken and reframed")
    table.add_column("metric")
    for column in ("original", "reframed", "difference"):
        table.add_column(column, justify="right")
    for name, value in original.metrics.items():
        other = reframed.metrics[name]
        table.add_row(name, f"{value:.4f}", f"{other:.4f}", f"{other - value:+.4f}")
    console.print(table)
