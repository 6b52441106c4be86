"""The file MLflow executes to build the logged classifier ("models from code"), so loading a
fersweep model never unpickles code."""

import mlflow

from fersweep.serving.pyfunc import ClassifierPyfunc

mlflow.models.set_model(ClassifierPyfunc())
