"""Hydra plumbing: the config resolvers, and composing a run's config from overrides."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fersweep.config.aliases import canonical
from fersweep.config.commands import GROUP_SETTINGS, register_commands
from fersweep.config.schemas import register_schemas
from fersweep.errors import ConfigError, FersweepError

CPU_PRECISION = "32-true"
GPU_PRECISION = "bf16-mixed"


def auto_precision(accelerator: str) -> str:
    """bf16 mixed precision where a CUDA GPU that supports it will be used, full precision else."""
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return GPU_PRECISION if on_gpu and torch.cuda.is_bf16_supported() else CPU_PRECISION


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)
    OmegaConf.register_new_resolver("auto_precision", auto_precision, replace=True)


def compose_config(
    config_dir: str | Path,
    overrides: Sequence[str] = (),
    config_name: str = "train",
    search_path: Sequence[str] = (),
) -> DictConfig:
    """The config `python train.py <overrides>` would run with, built by Hydra's compose API;
    the folders of `search_path` (file:// URLs) are searched for config groups too."""
    register_resolvers()
    overrides = canonical(overrides)
    if search_path:
        folders = ",".join(f"'{folder}'" for folder in search_path)
        overrides = [f"hydra.searchpath=[{folders}]", *overrides]
    return _composed(Path(config_dir).resolve(), config_name, list(overrides))


def _composed(folder: Path | None, name: str, overrides: list[str]) -> DictConfig:
    """Hydra's compose of config `name`, with `folder`'s configs (None: the ConfigStore's
    only); Hydra's errors as one ConfigError."""
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    context = (
        initialize(version_base="1.3", config_path=None)
        if folder is None
        else initialize_config_dir(version_base="1.3", config_dir=str(folder))
    )
    try:
        with context:
            return compose(config_name=name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(_composition_error(error)) from error


def compose_command(config_dir: str | Path, name: str, overrides: Sequence[str]) -> DictConfig:
    """A `fersweep` command's config (fersweep.config.commands) with its overrides; with the
    project's conf/ groups where `config_dir` is a project's conf/, without them elsewhere."""
    register_resolvers()
    register_commands()
    folder = Path(config_dir).resolve()
    in_project = is_project_config(folder)
    overrides = _with_groups(name, list(overrides), in_project, config_dir)
    cfg = _composed(folder if in_project else None, name, overrides)
    if missing := sorted(OmegaConf.missing_keys(cfg)):
        keys = " ".join(f"{key}=..." for key in missing)
        raise ConfigError(f"fersweep {name} needs {keys} (fersweep {name} --help lists its keys)")
    return cfg


def _with_groups(
    name: str, overrides: list[str], in_project: bool, config_dir: str | Path
) -> list[str]:
    """The command's settings that are options of conf/ groups (evaluate's `reframe=`), added
    to its defaults with their default option; outside a project, none (and none may be given)."""
    for group, (default, _) in GROUP_SETTINGS.get(name, {}).items():
        given = [o for o in overrides if o.split("=")[0] == group]
        if given and not in_project:
            raise ConfigError(
                f"{given[0]}: an option of the project's conf/{group}/, and --config-dir="
                f"{config_dir} is no project's conf/ (run from the project folder)"
            )
        if in_project:
            overrides = [o for o in overrides if o not in given]
            overrides.append(f"+{given[-1] if given else f'{group}={default}'}")
    return overrides


def command_tracking_uri(cfg: DictConfig, config_dir: str | Path) -> str:
    """The MLflow store a command reads: `tracking.tracking_uri` where given, else
    MLFLOW_TRACKING_URI, else the project's conf/tracking (sqlite:///mlruns/mlflow.db)."""
    if cfg.tracking.tracking_uri:
        return cfg.tracking.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if not is_project_config(config_dir):
        raise FersweepError(
            f"no project configs at --config-dir={config_dir}; run from the project folder or "
            "give tracking.tracking_uri=<MLflow store> (or MLFLOW_TRACKING_URI)"
        )
    return compose_config(config_dir).tracking.tracking_uri


def is_project_config(folder: str | Path) -> bool:
    return (Path(folder) / "train.yaml").is_file()


def _composition_error(error: Exception) -> str:
    """Hydra's message, with the cause it wraps (e.g. which values an enum key accepts)."""
    message = str(error)
    cause = error.__cause__
    if cause is not None and str(cause).splitlines() and str(cause).splitlines()[0] not in message:
        message += f": {str(cause).splitlines()[0]}"
    return message


def check_builds(cfg: DictConfig, groups: Sequence[str]) -> None:
    """Build these groups of a config once and throw them away, so a bad setting fails before
    any training; on a copy, because `instantiate` resolves interpolations in place."""
    trial = copy.deepcopy(cfg)
    for group in groups:
        build(trial[group])


def build(node: DictConfig, **kwargs):
    """`hydra.utils.instantiate`, but our own errors reach the user unwrapped, naming the key."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None:
            if isinstance(cause, FersweepError):
                raise cause from None
            cause = cause.__cause__
        raise ConfigError(str(error)) from error


def compose_definition(
    config_dir: str | Path, section: str, argv: Sequence[str] = ()
) -> tuple[DictConfig, list[str]]:
    """`conf/<section>.yaml` composed with the command line: the training config every run
    starts from, and under `<section>` a definition file checked against its schema
    (fersweep.config.schemas). The project folder is on Hydra's search path, so `sweeps/` and
    `bench/` are config groups; `hydra.searchpath=[file:///elsewhere]` adds folders of one's
    own. Returns the config and the overrides of `argv` meant for the runs."""
    register_schemas()
    parsed = OverridesParser.create().parse_overrides(canonical(argv))
    rest = [o.input_line for o in parsed if o.key_or_group != "hydra.searchpath"]
    cfg = compose_config(
        config_dir, rest, config_name=section, search_path=_search_folders(config_dir, parsed)
    )
    return cfg, [o.input_line for o in parsed if _is_run_override(o, section)]


def set_apart_absent_keys(
    config_dir: str | Path, section: str, argv: Sequence[str]
) -> tuple[list[str], list[str]]:
    """`argv` split in two: what composes with `conf/<section>.yaml`, and the run overrides of
    keys its config lacks (`model.net.frozen_memo_mb=0` where the config's model is the CNN),
    which belong to configs composed later (a sweep's trials of the model that has the key)."""
    register_schemas()
    parsed = OverridesParser.create().parse_overrides(canonical(argv))
    keys = [o for o in parsed if _is_run_override(o, section) and _sets_a_key(o)]
    others = [
        o.input_line for o in parsed if o not in keys and o.key_or_group != "hydra.searchpath"
    ]
    cfg = compose_config(
        config_dir, others, config_name=section, search_path=_search_folders(config_dir, parsed)
    )
    absent = [o.input_line for o in keys if not has_key(cfg, o.input_line)]
    return [o.input_line for o in parsed if o.input_line not in absent], absent


def has_key(cfg: DictConfig, override: str) -> bool:
    """Whether the key `override` (`key=value`) sets is in `cfg`, whatever its value."""
    parent, _, last = override.split("=", 1)[0].rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and last in node.keys()  # keys(): values unresolved


def _sets_a_key(override: Override) -> bool:
    """A plain `a.b=value`: not a config group's option, an addition, a deletion or a package."""
    plain = not (override.is_add() or override.is_force_add() or override.is_delete())
    return plain and override.package is None and "." in override.key_or_group


def _search_folders(config_dir: str | Path, parsed: Sequence[Override]) -> list[str]:
    """The project folder (holding `sweeps/`, `bench/`), then `hydra.searchpath`'s folders."""
    folders = [f"file://{Path(config_dir).resolve().parent}"]
    for override in parsed:
        if override.key_or_group == "hydra.searchpath":
            folders += list(override.value())
    return folders


def _is_run_override(override: Override, section: str) -> bool:
    """Whether an override changes the training config rather than the definition or Hydra."""
    top = override.key_or_group.split(".")[0]
    package = (override.package or "").split(".")[0]
    return section not in (top, package) and top != "hydra"


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """Hydra overrides for sampled values; lists and strings pass through as Hydra reads them."""
    return [f"{key}={_override_value(value)}" for key, value in values.items()]


def _override_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value)
