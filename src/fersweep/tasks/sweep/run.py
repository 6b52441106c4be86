"""`run_sweep`: every arm's workers, here or through a scheduler, then the finish."""

from __future__ import annotations

from typing import Any

from fersweep.tasks.sweep.finish import finish_once
from fersweep.tasks.sweep.launch import check_launch, launch
from fersweep.tasks.sweep.study import Sweep, ensure_parent_runs
from fersweep.tasks.sweep.trials import run_worker_processes, work
from fersweep.tasks.sweep.warm import warm_start


def run_sweep(sweep: Sweep) -> dict[str, Any]:
    """Run (or resume) every arm with `workers` processes, then finish: best trials retrained
    on the test split, the champion registered, and the arms compared."""
    sweep.check()
    if sweep.definition.launcher.placed:  # what the scheduler cannot give, before any record
        check_launch(sweep)
    sweep_run_id = ensure_parent_runs(sweep)
    warm_start(sweep)
    if sweep.definition.launcher.placed:  # jobs through a scheduler (submitit)
        return launch(sweep, sweep_run_id)
    if sweep.definition.workers == 1:
        work(sweep, worker=0)
    else:
        run_worker_processes(sweep)
    return finish_once(sweep, sweep_run_id)
