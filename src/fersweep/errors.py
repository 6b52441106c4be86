"""Errors that fersweep reports to users as one clear line instead of a stack trace."""

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


class FersweepError(Exception):
    """Base class: the message names the file, row or config key and what would fix it."""


class ConfigError(FersweepError):
    """A setting that cannot work; raised before any training starts."""


class DataError(FersweepError):
    """A data set that cannot be used at all."""


class ImageError(FersweepError):
    """One image that cannot be used; callers skip it and count it."""


class TrialTimeout(FersweepError):
    """A sweep trial ran past its time budget."""


def exits_cleanly(main: Callable[..., Result]) -> Callable[..., Result]:
    """For entry points: a FersweepError ends the program with its message and status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> Result:
        try:
            return main(*args, **kwargs)
        except FersweepError as error:
            print(f"fersweep: error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper
