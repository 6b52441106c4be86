"""The one door to MLflow: every MLflow call fersweep makes is in this package.

- `runs`: a run's life (opened, nested, ended with the status it earned), runs shared by several
  processes (a sweep's parents), the model registry, and loading registered models.
- `artifacts`: what a run records (config, data report, evaluation, models, comparisons,
  study tables and plots, benchmarks).
- `callbacks`: the Lightning callbacks that record a training run through `artifacts`, and
  `RunLogger`, Lightning's MLflow logger bound to the run `runs.Tracker` opened.

The one exception is `fersweep.serving.pyfunc`, the pyfunc class MLflow itself loads to serve a model.

`Tracker` and `RunLogger` are imported on first use: `server` (the tracking server, the storage
proxy's helpers) needs neither, and `RunLogger` would load Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"RunLogger": "callbacks", "Tracker": "runs"}


def __getattr__(name: str) -> Any:
    """`from fersweep.tracking import Tracker` imports `runs` only then (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = ["RunLogger", "Tracker"]
