"""The one door to MLflow: every MLflow call fersweep makes is in this package.

- `runs`: a run's life (opened, nested, ended with the status it earned), runs shared by several
  processes (a sweep's parents), the model registry, and loading registered models.
- `artifacts`: what a run records (config, data report, evaluation, models, comparisons,
  study tables and plots, benchmarks).
- `callbacks`: the Lightning callbacks that record a training run through `artifacts`, and
  `RunLogger`, Lightning's MLflow logger bound to the run `runs.Tracker` opened.

The one exception is `fersweep.serving.pyfunc`, the pyfunc class MLflow itself loads to serve a model.
"""

from fersweep.tracking.callbacks import RunLogger
from fersweep.tracking.runs import Tracker

__all__ = ["RunLogger", "Tracker"]
