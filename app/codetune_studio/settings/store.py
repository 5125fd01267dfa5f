"""Loading and saving the settings file, surviving a corrupt one."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.fileio import atomic_write_text
from codetune_studio.settings.migrations import migrate
from codetune_studio.settings.model import AppSettings, FileSettings

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SettingsStore"]

logger = logging.getLogger(__name__)


@dataclass
class SettingsStore:
    """Reads and writes ``settings.json``; the environment overrides what it holds.

    Attributes:
        path: The settings file.
        notices: One-line messages about what happened while loading (a migrated or a
            corrupt file), for the CLI or the window to show.
    """

    path: Path
    notices: list[str] = field(default_factory=list)

    def load(self) -> AppSettings:
        """Return the effective settings: the file, migrated, with environment overrides.

        A file that cannot be read or validated is moved aside to a ``.corrupt-<time>`` backup,
        reported in :attr:`notices`, and replaced by defaults, so the studio always starts.
        """
        data = self._read_file()
        try:
            FileSettings(**data)
        except ValidationError as exc:
            self._quarantine(f"invalid value ({_first_error(exc)})")
            data = {}
        try:
            return AppSettings(**data)
        except ValidationError as exc:
            raise ConfigError(
                f"invalid CODETUNE_* environment setting: {_first_error(exc)}"
            ) from exc

    def update(self, **changes: Any) -> AppSettings:
        """Apply top-level changes to the file (not to environment overrides) and save it.

        Args:
            **changes: Field names of :class:`AppSettings` and their new values (nested models
                may be given as models or dicts).

        Returns:
            The new effective settings.

        Raises:
            ConfigError: A change is invalid; the file is left as it was.
        """
        data = self._read_file()
        for key, value in changes.items():
            data[key] = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        try:
            validated = FileSettings(**data)
        except ValidationError as exc:
            raise ConfigError(f"invalid setting: {_first_error(exc)}") from exc
        self._write(validated.model_dump(mode="json"))
        return self.load()

    def _read_file(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            raw = _parse_object(self.path.read_text(encoding="utf-8"))
            original_version = raw.get("schema_version", 1)
            data = migrate(raw)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, ConfigError) as exc:
            self._quarantine(str(exc))
            return {}
        if data.get("schema_version") != original_version:
            self._write(data)
            self.notices.append(
                f"Settings upgraded from version {original_version} to {data['schema_version']}."
            )
        return data

    def file_database_url(self) -> str | None:
        """The database URL the settings file itself holds (no environment override)."""
        database = self._read_file().get("database")
        url = database.get("url") if isinstance(database, dict) else None
        return url if isinstance(url, str) else None

    def set_database_url(self, url: str | None) -> None:
        """Replace the file's database URL, keeping every other value."""
        data = self._read_file()
        database = dict(data.get("database") or {})
        database["url"] = url
        data["database"] = database
        self._write(FileSettings(**data).model_dump(mode="json"))

    def _write(self, data: dict[str, Any]) -> None:
        try:
            atomic_write_text(
                self.path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600
            )
        except OSError as exc:
            raise ConfigError(
                f"Cannot save the settings file {self.path}: {exc.strerror or exc}; fix the "
                "permissions of the file and its folder"
            ) from None

    def _quarantine(self, reason: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        backup = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            self.path.replace(backup)
            kept = f"it was saved as {backup.name}"
        except OSError as exc:  # an unwritable folder: leave the file, still start
            kept = f"it could not be moved aside ({exc.strerror or exc})"
        message = (
            f"Settings file {self.path} was unreadable ({reason}); {kept} and defaults are in use."
        )
        logger.warning("%s", message)
        self.notices.append(message)


def _parse_object(text: str) -> dict[str, Any]:
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise TypeError(f"expected a JSON object, found {type(raw).__name__}")
    return raw


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"]) or "settings"
    return f"{location}: {error['msg']}"
