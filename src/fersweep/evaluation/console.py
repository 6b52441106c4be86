"""What a person sees in the terminal: the shared console, an evaluation and the framing check as
rich tables, and Markdown reports."""

from __future__ import annotations

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from fersweep.evaluation.metrics import Evaluation

console = Console()


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


def show_framing(original: Evaluation, reframed: Evaluation, direction: str = "reframed") -> None:
    table = Table(title=f"framing check: the same images, as taken and {direction}")
    table.add_column("metric")
    for column in ("original", direction, "difference"):
        table.add_column(column, justify="right")
    for name, value in original.metrics.items():
        other = reframed.metrics[name]
        table.add_row(name, f"{value:.4f}", f"{other:.4f}", f"{other - value:+.4f}")
    console.print(table)


def show_markdown(report: str) -> None:
    """A Markdown report: rendered on a terminal; printed as the plain Markdown it is elsewhere
    (a log file, CI, nohup), where rich would cut its tables, numbers included, to 80 columns."""
    if console.is_terminal:
        console.print(Markdown(report))
    else:
        print(report, flush=True)
