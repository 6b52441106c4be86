"""The demo task, `make demo`: the whole system in a few minutes on 1,200 real images
(conf/debug/demo.yaml): one tracked run, a two-trial sweep of both arms with its best models
registered, and a two-fold comparison; then where to look in the MLflow UI."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from fersweep.config.compose import compose_config
from fersweep.evaluation.console import console
from fersweep.tasks.compare import run_comparison
from fersweep.tasks.sweep import Sweep, run_sweep
from fersweep.tasks.train import train

DEMO = ["debug=demo", "optimizer=adam"]


def run_demo(config_dir: Path, argv: Sequence[str] = ()) -> dict[str, str]:
    """Each step with the user's extra overrides (e.g. `trainer=gpu`); returns what it made."""
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")  # a new study each time, not a resumed finished one
    cfg = compose_config(config_dir, [*DEMO, *argv])
    console.rule("1/3  one tracked training run")
    run = train(cfg, [*DEMO, *argv])
    console.rule("2/3  a sweep: two trials of each arm, each arm's best retrained and registered")
    sweep = Sweep.compose(config_dir, ["sweeps@sweep=demo", f"sweep.name=demo-{stamp}", *argv])
    outcome = run_sweep(sweep)
    console.rule("3/3  a comparison on two identity-disjoint folds")
    _, comparison = run_comparison(config_dir, ["comparisons@compare=demo", *argv])
    made = {
        "run": run.run_id,
        "sweep": outcome.get("champion", {}).get("version", "none"),
        "comparison": comparison,
    }
    where_to_look(
        cfg.tracking.tracking_uri, cfg.tracking.experiment, made, time.monotonic() - started
    )
    return made


def where_to_look(tracking_uri: str, experiment: str, made: dict[str, str], seconds: float) -> None:
    console.rule(f"demo done in {seconds / 60:.1f} min")
    console.print(
        f"MLflow store: {tracking_uri}\n"
        f"  make ui, then open http://127.0.0.1:5000 and the experiment [bold]{experiment}[/bold]:\n"
        f"  - the run {made['run']} (metrics per epoch, confusion matrices, the data report);\n"
        f"  - sweep-demo-*: the arms' trials nested under them, the study's plots under "
        "study/plots, the two best runs compared under comparison/;\n"
        f"  - compare-demo ({made['comparison']}): both arms on two folds, report.md;\n"
        f"  - Models: fersweep-demo version {made['sweep']} has the alias champion:\n"
        "    fersweep predict model_uri=models:/fersweep-demo@champion images=<image or folder>",
        soft_wrap=True,
    )
