"""The configs of the `fersweep` commands that use a tracked model: predict, evaluate, serve.

They take Hydra overrides like every other entry (`fersweep predict images=photo.jpg
whole_image=true`). Their configs live in Hydra's ConfigStore, typed, rather than in conf/,
because a tracked model needs nothing of the project's folder: `fersweep serve` runs anywhere
MLflow is reachable. Inside the project, conf/'s groups are theirs too (evaluate's `reframe`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore

DEFAULT_MODEL = "models:/fersweep-emotion@champion"


def _setting(default: Any, help: str) -> Any:  # noqa: A002 - argparse's word
    """A key with its default ("???": required) and the line `--help` shows for it."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrackingSettings:
    tracking_uri: str | None = _setting(
        None, "MLflow store; null: MLFLOW_TRACKING_URI, else the project's conf/tracking"
    )


def _tracking() -> Any:
    return field(default_factory=TrackingSettings, metadata={"help": ""})


@dataclass
class PredictCommand:
    images: Any = _setting(
        "???", "an image file or folder, or a list of them: images=[a.jpg,photos/]"
    )
    model_uri: str = _setting(DEFAULT_MODEL, "the MLflow model")
    whole_image: bool = _setting(
        False, "classify the whole picture where no face is found (or none big enough)"
    )
    output: str | None = _setting(None, "write the table (a row per face) to a .csv or .json")
    annotate: str | None = _setting(
        None, "a folder for copies of the images with boxes and emotions drawn"
    )
    tracking: TrackingSettings = _tracking()


@dataclass
class EvaluateCommand:
    folder: str = _setting("???", "a labelled folder: one subfolder per emotion")
    model_uri: str = _setting(DEFAULT_MODEL, "the MLflow model")
    log: bool = _setting(False, "record the evaluation as an MLflow run")
    output_dir: str | None = _setting(
        None, "where the report and confusion matrix go (null: outputs/evaluate/<time>)"
    )
    # `reframe=` (GROUP_SETTINGS) puts the framing check here, at data.reframe, as in training.
    data: dict[str, Any] = field(default_factory=dict, metadata={"help": ""})
    tracking: TrackingSettings = _tracking()


@dataclass
class ServeCommand:
    model_uri: str = _setting(DEFAULT_MODEL, "the MLflow model")
    host: str = _setting("127.0.0.1", "bind address (this machine only)")
    port: int = _setting(5001, "the port")
    workers: int = _setting(1, "server processes answering requests, sharing the cores")
    tracking: TrackingSettings = _tracking()


COMMANDS: dict[str, type] = {
    "predict": PredictCommand,
    "evaluate": EvaluateCommand,
    "serve": ServeCommand,
}
# Keys a command takes that come from a config group of conf/ rather than from its dataclass.
GROUP_SETTINGS = {
    "evaluate": {
        "reframe": (
            "none",
            "the framing check, an option of conf/reframe: none, default "
            "(placed into larger pictures), tighter (cut tighter), both",
        ),
    }
}


def register_commands() -> None:
    store = ConfigStore.instance()
    for name, node in COMMANDS.items():
        store.store(name=name, node=node)


def settings_help(name: str) -> str:
    """The command's keys, their defaults and what they mean, for its --help."""
    settings = [(s.name, s.default, s.metadata.get("help")) for s in fields(COMMANDS[name])]
    tracking = fields(TrackingSettings)[0]
    settings += [(f"tracking.{tracking.name}", tracking.default, tracking.metadata["help"])]
    settings += [(key, *entry) for key, entry in GROUP_SETTINGS.get(name, {}).items()]
    lines = [f"  {key}={_shown(default)}\n      {text}" for key, default, text in settings if text]
    return "settings (key=value, Hydra overrides):\n" + "\n".join(lines)


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)
