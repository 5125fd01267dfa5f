"""The audit log: security-relevant actions, recorded with who, when and from where.

Other features call :meth:`AuditService.record` (``record(action, target, details)``) when they
set or delete a key, switch database, delete runs, export or push a model. Nothing secret is
stored: details pass through :func:`~codetune_studio.core.redact.scrub`, database URLs are
masked, and a key is named, never given.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from codetune_studio.core.audit import AuditEntry
from codetune_studio.core.errors import StorageError
from codetune_studio.core.redact import known_secret_values, scrub
from codetune_studio.services.experiments import current_host, current_user
from codetune_studio.storage.audit import AuditRepository

if TYPE_CHECKING:
    from collections.abc import Mapping

    from codetune_studio.storage.db import Database

__all__ = ["AuditService"]

logger = logging.getLogger(__name__)


class AuditService:
    """Records and lists audited actions.

    Args:
        database: The database in use.
        actor: Who acts; the login name by default.
        host: From where; this machine's name by default.
    """

    def __init__(
        self, database: Database, *, actor: str | None = None, host: str | None = None
    ) -> None:
        self._uow = database.unit_of_work
        self._actor = actor
        self._host = host

    def record(
        self, action: str, target: str, details: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Record one action.

        Args:
            action: What was done, e.g. ``AuditAction.KEY_SET`` (``"key.set"``).
            target: What it was done to: a key name, a masked URL, ``run 12``.
            details: Plain facts worth keeping (counts, paths, a destination); string values
                are scrubbed of secrets.

        Returns:
            The stored entry.

        Raises:
            StorageError: The database refused the write.
        """
        known = known_secret_values()
        clean = {key: _scrubbed(value, known) for key, value in (details or {}).items()}
        with self._uow() as session:
            row = AuditRepository(session).add(
                actor=self._actor or current_user(),
                host=self._host or current_host(),
                action=action,
                target=scrub(target, known),
                details=clean,
            )
            return AuditEntry.model_validate(row, from_attributes=True)

    def record_quietly(
        self, action: str, target: str, details: Mapping[str, Any] | None = None
    ) -> AuditEntry | None:
        """Like :meth:`record`, but a database failure is logged rather than raised.

        For actions that already happened (a key stored in the keyring) and must not be
        reported as failed because the log could not be written.
        """
        try:
            return self.record(action, target, details)
        except StorageError as exc:
            logger.warning("could not record %s of %s in the audit log: %s", action, target, exc)
            return None

    def list(self, *, limit: int | None = 200, action: str | None = None) -> list[AuditEntry]:
        """The newest entries first.

        Raises:
            StorageError: The database cannot be read.
        """
        with self._uow() as session:
            rows = AuditRepository(session).list_recent(limit=limit, action=action)
            return [AuditEntry.model_validate(row, from_attributes=True) for row in rows]


def _scrubbed(value: Any, known: list[str]) -> Any:
    if isinstance(value, str):
        return scrub(value, known)
    if isinstance(value, dict):
        return {str(k): _scrubbed(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, known) for v in value]
    return value
