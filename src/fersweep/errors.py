"""Errors that fersweep reports to users as one clear line instead of a stack trace."""


class FersweepError(Exception):
    """Base class: the message names the file, row or config key and what would fix it."""


class ConfigError(FersweepError):
    """A setting that cannot work; raised before any training starts."""


class DataError(FersweepError):
    """A data set that cannot be used at all."""


class ImageError(FersweepError):
    """One image that cannot be used; callers skip it and count it."""
