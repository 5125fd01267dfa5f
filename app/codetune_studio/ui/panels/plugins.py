"""The plugins the registry found, with their state and, for a broken one, why."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from codetune_studio.plugins.registry import PluginEntry

__all__ = ["PluginsPanel"]

logger = logging.getLogger(__name__)

_STATE_COLOURS = {"enabled": "#16a34a", "disabled": "#6b7280", "error": "#dc2626"}


class PluginsPanel(Panel):
    """Lists installed plugins; running them comes with the plugin issue.

    Args:
        discover: Lists the plugins (the registry), given the names the user disabled.
        disabled: Names the user switched off.
        parent: The Qt parent.
    """

    panel_id = "plugins"
    title = "Plugins"
    default_area = Qt.DockWidgetArea.RightDockWidgetArea

    def __init__(
        self,
        discover: Callable[[Sequence[str]], list[PluginEntry]],
        disabled: Sequence[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._discover = discover
        self._disabled = tuple(disabled)
        self._task: TaskHandle | None = None
        self.entries: list[PluginEntry] = []
        self._build_ui()
        self._connect_signals()
        self.refresh()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        top = QHBoxLayout()
        self.summary = QLabel("Looking for plugins…", self)
        top.addWidget(self.summary, 1)
        self.refresh_button = QPushButton("Refresh", self)
        top.addWidget(self.refresh_button)
        layout.addLayout(top)
        self.table = QTableWidget(0, 4, self)
        self.table.setObjectName("pluginsTable")
        self.table.setHorizontalHeaderLabels(["Plugin", "Version", "State", "Details"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)  # one line per plugin; the tooltip has the full text
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 2)
        self.details = QLabel("Select a plugin to see what it does and what it needs.", self)
        self.details.setObjectName("pluginDetails")
        self.details.setWordWrap(True)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setFrameShape(QLabel.Shape.StyledPanel)
        self.details.setMargin(8)
        layout.addWidget(self.details, 3)

    def _connect_signals(self) -> None:
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_table_item_selection_changed)

    def refresh(self) -> None:
        """Ask the registry again, off the GUI thread."""
        if self._task is not None and not self._task.done:
            return
        self.refresh_button.setEnabled(False)
        self._task = run_in_thread(
            self._discover,
            self._disabled,
            on_return=self._on_discover_returned,
            on_finish=lambda: self.refresh_button.setEnabled(True),
        )

    @safe_slot()
    def _on_discover_returned(self, entries: list[PluginEntry]) -> None:
        self.entries = entries
        self.table.setRowCount(len(entries))
        if entries:
            QTimer.singleShot(0, self, lambda: self.table.selectRow(0))
        for row, entry in enumerate(entries):
            version = entry.spec.version if entry.spec is not None else "—"
            details = entry.error or (entry.spec.description if entry.spec is not None else "")
            values = [entry.name, version, entry.state.value, details or entry.entry_point]
            for column, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                item.setToolTip(str(value))
                if column == 2:
                    item.setForeground(QColor(_STATE_COLOURS.get(entry.state.value, "#6b7280")))
                self.table.setItem(row, column, item)
        broken = sum(1 for e in entries if e.state.value == "error")
        if not entries:
            self.summary.setText("No plugins installed.")
        else:
            self.summary.setText(
                f"{len(entries)} plugin{'s' if len(entries) != 1 else ''}"
                + (f", {broken} with errors" if broken else "")
            )

    @safe_slot()
    def _on_table_item_selection_changed(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.entries):
            return
        entry = self.entries[rows[0].row()]
        spec = entry.spec
        lines = [f"<b>{entry.name}</b> · {entry.state.value}"]
        if spec is not None:
            lines.append(spec.description or "")
            lines.append(
                "Needs the network." if spec.needs_network else "Runs locally, no network."
            )
            if spec.secrets:
                lines.append("API keys: " + ", ".join(spec.secrets) + " (File > Settings).")
            lines.append(
                f"<span style='color:gray'>API {spec.api_version} · {entry.entry_point}</span>"
            )
        if entry.error:
            lines.append(f"<span style='color:#dc2626'>{entry.error}</span>")
        self.details.setText("<br>".join(line for line in lines if line))

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
