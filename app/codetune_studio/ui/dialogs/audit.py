"""Help > Audit log: who set or deleted keys, switched database, deleted or exported, and when."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from codetune_studio.core.audit import AuditEntry
    from codetune_studio.services.audit import AuditService

__all__ = ["AuditDialog"]

logger = logging.getLogger(__name__)

_COLUMNS = ("When (UTC)", "Who", "Host", "Action", "Target", "Details")


class AuditDialog(QDialog):
    """Shows the newest audit entries, loaded off the GUI thread.

    Args:
        audit: The audit service.
        parent: The Qt parent.
        limit: How many entries to load.
    """

    def __init__(
        self, audit: AuditService, parent: QWidget | None = None, limit: int = 500
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Audit log")
        self.setObjectName("auditDialog")
        self.resize(1000, 500)
        layout = QVBoxLayout(self)
        self.status = QLabel("Loading…", self)
        self.status.setObjectName("auditStatus")
        layout.addWidget(self.status)
        self.table = QTableWidget(0, len(_COLUMNS), self)
        self.table.setObjectName("auditTable")
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._task: TaskHandle | None = run_in_thread(
            audit.list, limit=limit, on_return=self._show, on_error=self._failed
        )

    def _show(self, entries: list[AuditEntry]) -> None:
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            details = ", ".join(f"{k}={v}" for k, v in entry.details.items())
            values = (
                entry.at.strftime("%Y-%m-%d %H:%M:%S"),
                entry.actor,
                entry.host,
                entry.action,
                entry.target,
                details,
            )
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self.status.setText(
            f"{len(entries)} recorded actions, newest first. Secrets are never recorded."
            if entries
            else "Nothing recorded yet."
        )

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"Could not read the audit log: {exc}")

    def done(self, result: int) -> None:
        """Close, dropping a load still in flight."""
        if self._task is not None:
            self._task.cancel()
        super().done(result)
