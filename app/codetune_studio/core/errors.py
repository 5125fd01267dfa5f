"""The studio's error hierarchy.

Every error carries a message a user can act on: what went wrong and what to do about it. Lower
layers raise these; only the CLI and ``ui.notify`` turn them into something a person sees.
"""

from __future__ import annotations

__all__ = [
    "CodetuneError",
    "ConfigError",
    "ConflictError",
    "DatasetError",
    "ExportError",
    "NotFoundError",
    "PluginError",
    "SecretError",
    "StorageError",
    "StorageUnavailableError",
    "TrainingError",
]


class CodetuneError(Exception):
    """Base class for errors the studio reports to the user as one clear line."""

    #: Process exit status the CLI uses for this kind of error.
    exit_code: int = 1


class ConfigError(CodetuneError):
    """A settings file, recipe or command-line value is invalid."""

    exit_code = 2


class DatasetError(CodetuneError):
    """A dataset cannot be read or does not have the expected shape."""

    exit_code = 2


class TrainingError(CodetuneError):
    """Training could not start or stopped with an error."""


class StorageError(CodetuneError):
    """The database rejected an operation or could not be used."""


class StorageUnavailableError(StorageError):
    """The configured database cannot be reached at all."""


class NotFoundError(StorageError):
    """A stored record that was asked for does not exist."""


class ConflictError(StorageError):
    """Someone else saved the same record first (optimistic locking)."""


class PluginError(CodetuneError):
    """A plugin failed to load or to run."""


class SecretError(CodetuneError):
    """An API key could not be read, written or found."""


class ExportError(CodetuneError):
    """An export could not be written, verified or published."""
