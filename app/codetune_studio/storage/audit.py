"""The audit log's queries; like every repository it works inside the caller's session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from codetune_studio.storage.orm import AuditRow

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.orm import Session

__all__ = ["AuditRepository"]


class AuditRepository:
    """Adds and lists audit entries.

    Args:
        session: The unit of work's session.
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(
        self, *, actor: str, host: str, action: str, target: str, details: Mapping[str, Any]
    ) -> AuditRow:
        """Record one action (flushed, so its id and time are set)."""
        row = AuditRow(actor=actor, host=host, action=action, target=target, details=dict(details))
        self._session.add(row)
        self._session.flush()
        return row

    def list_recent(self, *, limit: int | None = 200, action: str | None = None) -> list[AuditRow]:
        """The newest entries first, optionally of one action only."""
        query = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc())
        if action is not None:
            query = query.where(AuditRow.action == action)
        if limit is not None:
            query = query.limit(limit)
        return list(self._session.scalars(query))
