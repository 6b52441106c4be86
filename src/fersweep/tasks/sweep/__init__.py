"""The sweep task: Optuna sweeps over the Hydra config, one study per arm, Lightning trials,
MLflow runs. Each trial's config is composed by Hydra from the sweep's overrides plus the sampled
values, so any trial can be re-run as `python train.py <its overrides>` (kept in the trial's
`overrides` attribute and its MLflow run's `overrides` tag).

`run`: the task itself; `study`: the definition bound to the configs; `trials`: the workers; `finish`: retraining, the
registry and the gate; `storage`: where studies live and how workers take turns; `report`: a
study's tables and plots in MLflow; `warm`: the first trials enqueued, and stopping a stalled
arm; `launch`: the workers and the finish as scheduler jobs (submitit: local or Slurm); `cluster`:
what a Slurm cluster can give, asked before anything is submitted.

The package's names are imported on first use, so `fersweep grpc-proxy` (`proxy_server`, which
needs only Optuna and the storage) starts without loading Lightning and the trainer."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "PARENT_RUN_ATTR": "study",
    "SWEEP_RUN_ATTR": "study",
    "Sweep": "study",
    "run_sweep": "run",
}


def __getattr__(name: str) -> Any:
    """`from fersweep.tasks.sweep import Sweep` imports `study` only then (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = ["PARENT_RUN_ATTR", "SWEEP_RUN_ATTR", "Sweep", "run_sweep"]
