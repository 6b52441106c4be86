"""Hydra plumbing: the config resolvers, and composing a run's config from overrides."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

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
    config_dir: str | Path, overrides: Sequence[str] = (), config_name: str = "train"
) -> DictConfig:
    """The config `python train.py <overrides>` would run with, built by Hydra's compose API."""
    register_resolvers()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(Path(config_dir).resolve())):
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"overrides {list(overrides)}: {error}") from error


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


def split_arguments(
    argv: Sequence[str], default_definition: Path, prefix: str
) -> tuple[Path, list[str], list[str]]:
    """`[definition.yaml] [<prefix>key=value ...] [override ...]` as (definition file, the
    definition's own overrides without the prefix, config overrides for every run)."""
    argv = list(argv)
    path = Path(argv.pop(0)) if argv and argv[0].endswith(".yaml") else default_definition
    own = [a.removeprefix(prefix) for a in argv if a.startswith(prefix)]
    return path, own, [a for a in argv if not a.startswith(prefix)]
