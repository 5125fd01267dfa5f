"""Help > Audit log shows what was recorded, loaded off the GUI thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codetune_studio.core.audit import AuditAction
from codetune_studio.services.audit import AuditService
from codetune_studio.ui.dialogs.audit import AuditDialog

if TYPE_CHECKING:
    from codetune_studio.services.database import OpenedDatabase


def test_audit_dialog_lists_recorded_actions(qtbot: Any, opened_db: OpenedDatabase) -> None:
    audit = AuditService(opened_db.database, actor="alice", host="ws-1")
    audit.record(AuditAction.KEY_SET, "openai", {"store": "keyring"})
    audit.record(AuditAction.DATABASE_SWITCHED, "postgresql+psycopg://team:***@db/studio")
    dialog = AuditDialog(audit)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 2, timeout=5000)
    cells = [_cell(dialog, 0, c) for c in range(dialog.table.columnCount())]
    assert cells[1:5] == [
        "alice",
        "ws-1",
        "database.switched",
        "postgresql+psycopg://team:***@db/studio",
    ]
    assert _cell(dialog, 1, 3) == "key.set"
    assert "2 recorded actions" in dialog.status.text()


def _cell(dialog: AuditDialog, row: int, column: int) -> str:
    item = dialog.table.item(row, column)
    assert item is not None
    return item.text()
