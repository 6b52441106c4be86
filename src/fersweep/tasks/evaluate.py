"""The evaluate task: a registered model scored on a labelled folder (DIR/<emotion>/*.jpg), as
taken and optionally reframed; the report and confusion matrix written, optionally an MLflow run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import DictConfig

from fersweep.config.compose import build, compose_config
from fersweep.data.folder import read_folder
from fersweep.data.preprocess import FACE_STEPS
from fersweep.data.reframe import Framing, Framings
from fersweep.data.report import show_data_report
from fersweep.evaluation.console import show_evaluation, show_framing
from fersweep.evaluation.figures import confusion_figure, save_figure
from fersweep.serving.display import show_notes
from fersweep.serving.predict import FolderEvaluation, evaluate_folder
from fersweep.tracking import artifacts
from fersweep.tracking.registry import load_classifier

EXPERIMENT = "fersweep-evaluations"


def evaluate(cfg: DictConfig, config_dir: str) -> int:
    """`fersweep evaluate` (its settings: fersweep.config.commands.EvaluateCommand; the
    project's conf/ at `config_dir` gives the framing check and the tracking of `log=true`)."""
    folder = Path(cfg.folder)
    records, report = read_folder(folder)  # a bad folder fails before the model loads
    reframing: Framing | Framings | None = (
        build(cfg.data.reframe) if cfg.data.get("reframe") else None
    )
    model = load_classifier(cfg.model_uri, cfg.tracking.tracking_uri)
    result = evaluate_folder(model, folder, records, report, reframing)
    show(result, str(folder))
    write(result, Path(cfg.output_dir or f"outputs/evaluate/{time.strftime('%Y-%m-%d_%H-%M-%S')}"))
    if cfg.log:
        log_evaluation_run(result, folder, cfg.model_uri, cfg.tracking.tracking_uri, config_dir)
    return 0


def show(result: FolderEvaluation, folder: str) -> None:
    show_notes(result.predictions, skip=FACE_STEPS)  # the face step's outcomes are counted
    show_data_report(result.report, {})
    title = f"{folder} ({', '.join(result.emotions_present)})"
    show_evaluation(result.evaluation, title)
    for direction, framed in result.reframed.items():
        show_evaluation(framed, f"{title}, {direction}")
        show_framing(result.evaluation, framed, direction)


def write(result: FolderEvaluation, output: Path) -> None:
    """report.csv, report.txt, metrics.json and confusion.png (and the reframed report)."""
    output.mkdir(parents=True, exist_ok=True)
    result.evaluation.per_class.to_csv(output / "report.csv")
    (output / "report.txt").write_text(result.evaluation.text)
    metrics = {"original": result.evaluation.metrics}
    for direction, framed in result.reframed.items():
        metrics[direction] = framed.metrics
        (output / f"report_{direction}.txt").write_text(framed.text)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    save_figure(confusion_figure(result.evaluation, normalised=True), output / "confusion.png")
    print(f"report and confusion matrix written to {output}")


def log_evaluation_run(
    result: FolderEvaluation, folder: Path, model_uri: str, tracking_uri: str, config_dir: str
) -> None:
    cfg = compose_config(
        config_dir, [f"tracking.tracking_uri='{tracking_uri}'", f"tracking.experiment={EXPERIMENT}"]
    )
    tracker = build(cfg.tracking)
    tags = {"kind": "evaluation", "model_uri": model_uri, "folder": str(folder.resolve())}
    with tracker.run(f"evaluate {folder.name}", tags=tags) as run:
        artifacts.log_evaluation(result.evaluation, "eval")
        for direction, framed in result.reframed.items():
            artifacts.log_evaluation(framed, f"eval_{direction}")
        artifacts.log_dict(result.report.as_dict(), "data/data_report.json")
    print(f"logged as MLflow run {run.info.run_id} in experiment {EXPERIMENT}")
