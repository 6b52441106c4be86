"""The sweep task: Optuna sweeps over the Hydra config, one study per arm, Lightning trials,
MLflow runs. Each trial's config is composed by Hydra from the sweep's overrides plus the sampled
values, so any trial can be re-run as `python train.py <its overrides>` (kept in the trial's
`overrides` attribute and its MLflow run's `overrides` tag).

`study`: the definition bound to the configs; `trials`: the workers; `finish`: retraining, the
registry and the gate; `storage`: where studies live and how workers take turns; `report`: a
study's tables and plots in MLflow; `warm`: the first trials enqueued, and stopping a stalled
arm; `launch`: the workers and the finish as scheduler jobs (submitit: local or Slurm)."""

from __future__ import annotations

from typing import Any

from fersweep.tasks.sweep.finish import finish_once
from fersweep.tasks.sweep.launch import launch
from fersweep.tasks.sweep.study import PARENT_RUN_ATTR, SWEEP_RUN_ATTR, Sweep, ensure_parent_runs
from fersweep.tasks.sweep.trials import run_worker_processes, work
from fersweep.tasks.sweep.warm import warm_start


def run_sweep(sweep: Sweep) -> dict[str, Any]:
    """Run (or resume) every arm with `workers` processes, then finish: best trials retrained
    on the test split, the champion registered, and the arms compared."""
    sweep.check()
    sweep_run_id = ensure_parent_runs(sweep)
    warm_start(sweep)
    if sweep.definition.launcher.placed:  # jobs through a scheduler (submitit)
        return launch(sweep, sweep_run_id)
    if sweep.definition.workers == 1:
        work(sweep, worker=0)
    else:
        run_worker_processes(sweep)
    return finish_once(sweep, sweep_run_id)


__all__ = ["PARENT_RUN_ATTR", "SWEEP_RUN_ATTR", "Sweep", "run_sweep"]
