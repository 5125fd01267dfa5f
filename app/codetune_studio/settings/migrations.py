"""Upgrades for settings files written by older versions of the studio.

Each entry of :data:`MIGRATIONS` turns a file of version ``n`` into one of version ``n + 1``.
Renaming or removing a field always adds an entry here, so no user loses a setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codetune_studio.core.errors import ConfigError
from codetune_studio.settings.model import SCHEMA_VERSION

__all__ = ["MIGRATIONS", "migrate"]

Migration = Callable[[dict[str, Any]], dict[str, Any]]


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the database fields flat; version 2 groups them under ``database``."""
    migrated = dict(data)
    database = dict(migrated.pop("database", None) or {})
    if "database_url" in migrated:
        database["url"] = migrated.pop("database_url")
    if "sqlite_fallback" in migrated:
        database["fallback_to_sqlite"] = migrated.pop("sqlite_fallback")
    migrated["database"] = database
    return migrated


MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a settings document up to :data:`SCHEMA_VERSION`.

    Raises:
        ConfigError: The file comes from a newer studio, or names no usable version.
    """
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise ConfigError(f"schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the file was written by a newer CodeTune Studio (settings version {version}, "
            f"this one understands up to {SCHEMA_VERSION}); upgrade the studio"
        )
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
        data["schema_version"] = version
    return data
