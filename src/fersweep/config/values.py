"""A composed config as the values it sets: each setting once, under the key that sets it, and
flattened to the dotted keys Hydra overrides use (what a run records as its parameters, and
what a comparison compares to find an earlier run with the same settings)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value


def own_values(node: DictConfig) -> dict[str, Any]:
    """The resolved config, without nodes that only repeat another (`optimizer: ${optimizer}`
    inside the model), so every setting is recorded once, under the key that sets it.
    Take it before instantiating: `instantiate` resolves interpolations in place."""
    values: dict[str, Any] = {}
    for key in node:
        value = node[key]
        if OmegaConf.is_interpolation(node, key) and OmegaConf.is_config(value):
            continue
        if isinstance(value, DictConfig):
            values[key] = own_values(value)
        elif isinstance(value, ListConfig):
            values[key] = OmegaConf.to_container(value, resolve=True)
        else:
            values[key] = value
    return values


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys to values, the way Hydra overrides name them; lists become JSON."""
    if isinstance(tree, Mapping):
        flat: dict[str, str] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    value = json.dumps(tree) if isinstance(tree, list) else str(tree)
    return {prefix.rstrip("."): value[:MAX_PARAM_LENGTH]}
