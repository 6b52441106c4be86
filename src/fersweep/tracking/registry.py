"""The model registry: registering a run's classifier, aliases and version tags, the champion's
training overrides, and loading or serving a registered model."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow

from fersweep.errors import ConfigError, FersweepError
from fersweep.services.processes import REQUESTS_AT_ONCE, core_share, run_until_stopped
from fersweep.tracking.runs import CLASSIFIER_NAME, quiet_downloads

TRUSTED_SCHEMES = ("models:/", "runs:/")


def register(run_id: str, name: str, tags: Mapping[str, str]) -> str:
    """Register the classifier a run logged; returns the new version number."""
    version = mlflow.register_model(f"runs:/{run_id}/{CLASSIFIER_NAME}", name, tags=dict(tags))
    return str(version.version)


def set_alias(name: str, alias: str, version: str) -> None:
    mlflow.MlflowClient().set_registered_model_alias(name, alias, version)


def tag_version(name: str, version: str, tags: Mapping[str, str]) -> None:
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value[:5000])


def overrides_of_alias(name: str, alias: str) -> list[str] | None:
    """The overrides the model version under `alias` was trained with (its run's `overrides`
    tag), or None when no version has that alias."""
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None
    return client.get_run(version.run_id).data.tags.get("overrides", "").split()


def load_classifier(model_uri: str, tracking_uri: str) -> Any:
    """The raw-image pyfunc at `model_uri`: models:/name@alias, models:/name/version or
    runs:/<id>/classifier. Models come only from the configured tracking store, never from an
    arbitrary path or URL."""
    if not model_uri.startswith(TRUSTED_SCHEMES):
        raise FersweepError(
            f"model {model_uri!r}: use a models:/ or runs:/ URI of the tracking store "
            f"({tracking_uri}); other locations are not loaded"
        )
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with quiet_downloads():
            return mlflow.pyfunc.load_model(model_uri)
    except (mlflow.exceptions.MlflowException, OSError) as error:
        raise FersweepError(
            f"model {model_uri!r} cannot be loaded from {tracking_uri}: {str(error).splitlines()[0]}"
        ) from error


def serve_model(model_uri: str, tracking_uri: str, host: str, port: int, workers: int = 1) -> int:
    """`mlflow models serve` for a model of the tracking store, in this environment (no new
    virtual environment is built), with `workers` processes, each running as many requests at
    once as it has cores, one torch thread each; returns the server's exit status once it
    stops."""
    if workers < 1:
        raise ConfigError(f"workers={workers}: use 1 or more")
    bin_dir = Path(sys.executable).parent  # mlflow and the uvicorn it starts live here
    command = [
        str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        # One torch thread a request: one request at a time, a classifier answered 22-23 images/s
        # on two threads and 36-38 on one (MTCNN's many small operations); requests side by
        # side use the other cores (results/2026-12-07-serving-at-once).
        "OMP_NUM_THREADS": "1",
        REQUESTS_AT_ONCE: str(core_share(workers)),
    }
    print(" ".join(command))
    return run_until_stopped(command, env)
