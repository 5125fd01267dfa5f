"""What the audit log records: who did what, when, from which machine; never a secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["AuditAction", "AuditEntry"]


class AuditAction:
    """The actions the studio records (plain strings, so other features can add their own)."""

    KEY_SET = "key.set"
    KEY_DELETED = "key.deleted"
    DATABASE_SWITCHED = "database.switched"
    RUN_DELETED = "run.deleted"
    EXPORTED = "model.exported"
    PUSHED = "model.pushed"


class AuditEntry(BaseModel):
    """One recorded action.

    Attributes:
        id: Database id.
        at: When it happened (UTC).
        actor: The login name of the user who did it.
        host: The machine it was done from.
        action: What was done, e.g. ``key.set`` (see :class:`AuditAction`).
        target: What it was done to: a key name, a masked database URL, a run id.
        details: Further plain facts (scrubbed of anything secret-looking).
    """

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    at: datetime
    actor: str
    host: str
    action: str
    target: str
    details: dict[str, Any]
