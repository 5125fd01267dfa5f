"""Opening the studio's database, with an announced fallback to the local SQLite store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codetune_studio.core.errors import StorageUnavailableError
from codetune_studio.storage.db import Database, DatabaseUnreachableError, normalize_url, sqlite_url

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.core.models import DatabaseStatus

#: ``DatabaseUnreachableError`` is re-exported for the window, which may not import storage.
__all__ = ["DatabaseService", "DatabaseUnreachableError", "OpenedDatabase", "open_database"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class OpenedDatabase:
    """The database the studio ended up using.

    Attributes:
        database: The connected database, migrated to head unless asked otherwise.
        fallback_reason: Why the local SQLite store is used instead of the configured
            PostgreSQL, or ``None`` when the configured database is in use. The caller must show
            it to the user.
    """

    database: Database
    fallback_reason: str | None = None

    @property
    def is_fallback(self) -> bool:
        """Whether the local SQLite store stands in for an unreachable PostgreSQL."""
        return self.fallback_reason is not None

    def close(self) -> None:
        """Release the database's connections."""
        self.database.dispose()


def open_database(
    url: str | None,
    *,
    sqlite_path: Path,
    allow_fallback: bool,
    connect_timeout: float = 10.0,
    upgrade: bool = True,
) -> OpenedDatabase:
    """Connect to the configured database and bring its schema up to date.

    Args:
        url: The configured database URL; ``None`` means the local SQLite store.
        sqlite_path: The local SQLite file (``<data dir>/studio.db``).
        allow_fallback: Whether to use the local store when PostgreSQL cannot be reached. The
            fallback is then reported in ``fallback_reason`` and logged as a warning; it is
            never silent.
        connect_timeout: Seconds to keep trying to reach PostgreSQL.
        upgrade: Whether to apply pending migrations.

    Returns:
        The opened database and, if it fell back, why.

    Raises:
        StorageUnavailableError: If the database cannot be reached and no fallback is allowed.
        StorageError: If the URL is invalid or a migration fails.
    """
    local_url = sqlite_url(sqlite_path)
    fallback_reason: str | None = None
    if url is None:
        database = Database.connect(local_url, connect_timeout=connect_timeout)
    else:
        try:
            database = Database.connect(url, connect_timeout=connect_timeout)
        except StorageUnavailableError as exc:
            is_local = normalize_url(url).get_backend_name() == "sqlite"
            if not allow_fallback or is_local:
                raise
            cause = exc.cause if isinstance(exc, DatabaseUnreachableError) else str(exc)
            where = exc.target if isinstance(exc, DatabaseUnreachableError) else "the server"
            fallback_reason = (
                f"PostgreSQL at {where} is unreachable ({cause}); using the local SQLite store "
                f"at {sqlite_path} instead. Runs recorded now are not shared with your team."
            )
            logger.info("%s", fallback_reason)  # the caller shows it to the user
            database = Database.connect(local_url, connect_timeout=connect_timeout)
    if upgrade:
        try:
            database.upgrade()
        except BaseException:
            database.dispose()
            raise
    return OpenedDatabase(database=database, fallback_reason=fallback_reason)


class DatabaseService:
    """``db status`` and ``db upgrade``.

    Args:
        database: The database in use.
        is_fallback: Whether it is the local store standing in for an unreachable PostgreSQL.
    """

    def __init__(self, database: Database, *, is_fallback: bool = False) -> None:
        self._database = database
        self._is_fallback = is_fallback

    def status(self) -> DatabaseStatus:
        """Describe the database: dialect, masked URL, schema revisions, row counts.

        Raises:
            StorageError: If the database cannot be read.
        """
        return self._database.status(is_fallback=self._is_fallback)

    def integrity_problems(self) -> list[str]:
        """Check the database file for damage (SQLite's ``PRAGMA integrity_check``).

        Returns:
            The problems found; empty when it is sound.

        Raises:
            StorageError: If the database cannot be read at all.
        """
        return self._database.integrity_check()

    def upgrade(self) -> tuple[str | None, str]:
        """Apply pending migrations.

        Returns:
            The schema revision before and after.

        Raises:
            StorageError: If a migration fails.
        """
        return self._database.upgrade()
