"""A sweep's search space: any config key (or config group) with an int, float or categorical range."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from fersweep.errors import ConfigError

PARAM_TYPES = ("int", "float", "categorical")


@dataclass(frozen=True)
class Param:
    """One searched key. `key` is a Hydra override target: `model.filters` or a group: `optimizer`."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, key: str, spec: Mapping[str, Any]) -> Param:
        where = f"search_space.{key}"
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            raise ConfigError(f"{where}.type={kind!r}: use one of {PARAM_TYPES}")
        unknown = set(spec) - {"type", "low", "high", "step", "log", "choices"}
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)}")
        if kind == "categorical":
            choices = tuple(spec.get("choices") or ())
            if not choices:
                raise ConfigError(f"{where}.choices is empty: list at least one value")
            return cls(key, kind, choices=choices)
        low, high = spec.get("low"), spec.get("high")
        if low is None or high is None or low > high:
            raise ConfigError(f"{where}: needs low <= high, got low={low}, high={high}")
        if spec.get("log") and low <= 0:
            raise ConfigError(f"{where}: a log scale needs low > 0, got low={low}")
        return cls(key, kind, low, high, spec.get("step"), bool(spec.get("log", False)))

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def example(self) -> Any:
        """A value from the range, used to check the key composes before any training."""
        return self.choices[0] if self.choices else self.low


def parse_search_space(space: Mapping[str, Mapping[str, Any]]) -> list[Param]:
    return [Param.parse(key, spec) for key, spec in space.items()]


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """Hydra overrides for sampled values; lists and strings pass through as Hydra reads them."""
    return [f"{key}={_override_value(value)}" for key, value in values.items()]


def _override_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value)
