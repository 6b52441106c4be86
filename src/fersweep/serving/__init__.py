"""Serving a trained model: the pyfunc MLflow loads (`pyfunc`), predicting and evaluating with it
(`predict`), the terminal view of its answers, and the callback that logs it after training."""

from fersweep.serving.pyfunc import ClassifierPyfunc

# The name under which classifiers logged by fersweep 0.3 import the pyfunc class (their
# model-code file says `from fersweep.serving import EmotionClassifierModel`).
EmotionClassifierModel = ClassifierPyfunc

__all__ = ["ClassifierPyfunc", "EmotionClassifierModel"]
