"""The Models panel: every trained model version, and where the selected one came from.

The lineage reads as a chain from the version back to the base model: its runs (resumed from,
cloned from) and its parent versions, so a teammate sees which data and recipe made an adapter
and on which machine its files are.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from codetune_studio.core.comparison import LineageStep
    from codetune_studio.core.models import ModelVersion
    from codetune_studio.ui.studio_services import StudioServices

__all__ = ["ModelsPanel", "lineage_html"]

logger = logging.getLogger(__name__)

_COLUMNS = ("ID", "Name", "Base model", "Run", "Parent", "Dataset", "Recipe", "Created", "Path")


def lineage_html(chain: list[tuple[ModelVersion, list[LineageStep]]]) -> str:
    """A model version's lineage as a chain of boxes joined by arrows (rich text).

    Args:
        chain: From ``RunHistoryService.model_lineage``: the version first, then its parents.

    Returns:
        HTML for a ``QLabel``.
    """
    boxes: list[str] = []
    for version, runs in chain:
        boxes.append(f"<b>model v{version.id}</b><br><small>{html.escape(version.name)}</small>")
        for step in runs:
            relation = html.escape(step.relation or "made by")
            boxes.append(
                f"<small>{relation}</small><br>run {step.run_id} "
                f"<small>({html.escape(step.status)})</small>"
            )
    if chain:
        base = chain[-1][0]
        revision = f" @ {html.escape(base.base_revision[:12])}" if base.base_revision else ""
        boxes.append(f"<b>base</b><br>{html.escape(base.base_model)}{revision}")
    cells = "<td align='center' style='color:gray'>&nbsp;←&nbsp;</td>".join(
        f"<td style='border:1px solid #94a3b8; padding:6px'>{box}</td>" for box in boxes
    )
    return f"<table cellspacing='0'><tr>{cells}</tr></table>"


class ModelsPanel(Panel):
    """Model versions with base model, dataset fingerprint, recipe hash and parent; lineage.

    Args:
        services: The studio's services.
        parent: The Qt parent.
    """

    panel_id = "models"
    title = "Models"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    def __init__(self, services: StudioServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.versions: list[ModelVersion] = []
        self._tasks: list[TaskHandle] = []
        self._build_ui()
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.summary_label = QLabel("Model versions", self)
        top.addWidget(self.summary_label, 1)
        self.refresh_button = QPushButton("Refresh", self)
        top.addWidget(self.refresh_button)
        layout.addLayout(top)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.table = QTableWidget(0, len(_COLUMNS), self)
        self.table.setObjectName("modelsTable")
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        splitter.addWidget(self.table)
        self.lineage_label = QLabel("Select a model version to see its lineage.", self)
        self.lineage_label.setObjectName("modelLineage")
        self.lineage_label.setTextFormat(Qt.TextFormat.RichText)
        self.lineage_label.setWordWrap(True)
        self.lineage_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.lineage_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        splitter.addWidget(self.lineage_label)
        splitter.setSizes([200, 120])
        layout.addWidget(splitter, 1)

    def refresh(self) -> None:
        """Reload the versions, off the GUI thread."""
        self._tasks = [t for t in self._tasks if not t.done]
        self._tasks.append(
            run_in_thread(self.services.experiments.list_model_versions, on_return=self._on_listed)
        )

    @safe_slot()
    def _on_listed(self, versions: list[ModelVersion]) -> None:
        selected = self.selected_version_id()
        self.versions = versions
        self.summary_label.setText(f"{len(versions)} model versions")
        self.table.setRowCount(len(versions))
        for row, version in enumerate(versions):
            cells = [
                str(version.id),
                version.name,
                version.base_model
                + (f" @ {version.base_revision[:12]}" if version.base_revision else ""),
                str(version.run_id or ""),
                str(version.parent_id or ""),
                (version.dataset_fingerprint or "")[:12],
                (version.recipe_hash or "")[:12],
                version.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
                version.path,
            ]
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
            if version.id == selected:
                self.table.selectRow(row)

    def selected_version_id(self) -> int | None:
        """The selected model version's id."""
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.versions):
            return None
        return self.versions[rows[0].row()].id

    def select_version(self, version_id: int) -> None:
        """Select a version (shown) and load its lineage."""
        for row, version in enumerate(self.versions):
            if version.id == version_id:
                self.table.selectRow(row)

    @safe_slot()
    def _on_table_selection_changed(self) -> None:
        version_id = self.selected_version_id()
        if version_id is None:
            return
        self._tasks.append(
            run_in_thread(
                self.services.history.model_lineage, version_id, on_return=self._on_lineage
            )
        )

    @safe_slot()
    def _on_lineage(self, chain: list[tuple[ModelVersion, list[LineageStep]]]) -> None:
        if chain and chain[0][0].id == self.selected_version_id():
            self.lineage_label.setText(lineage_html(chain))

    def shutdown(self) -> None:
        """Cancel loading."""
        for task in self._tasks:
            task.cancel()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self.versions:
            self.refresh()
