"""A model's answers as the terminal shows them: one line per face, then notes and problems."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from rich.table import Table

from fersweep import EMOTIONS
from fersweep.evaluation.console import console
from fersweep.serving.predict import Predictions


def show_predictions(predictions: Predictions) -> None:
    """One line per face: file, face number and box, the emotion and the runner-up with their
    probabilities (all eight go to `output=`); then a line per note, and one per file or face
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
