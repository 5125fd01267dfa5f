"""The analysis plugins: their state and needs, their settings, and running one on code.

The panel lists what the registry found (a broken plugin shows its error), switches plugins on
and off and edits their options through :class:`PluginPreferences`, and runs the selected plugin
on pasted code, a file or the dataset selected in the Datasets panel through
:class:`AnalysisService` on a worker thread, with progress and Cancel. Findings land in a
sortable table that exports as JSON or CSV.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSignalBlocker,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.services.analysis import (
    AnalysisTarget,
    PluginPreferences,
    export_findings,
    finding_rows,
)
from codetune_studio.ui import notify
from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from codetune_studio.plugins.registry import PluginEntry
    from codetune_studio.services.analysis import (
        AnalysisOutcome,
        AnalysisProgress,
        AnalysisService,
        ExportFormat,
        FindingRow,
    )
    from codetune_studio.settings import SettingsStore

__all__ = ["FindingsTableModel", "PluginsPanel"]

logger = logging.getLogger(__name__)

_Index = QModelIndex | QPersistentModelIndex

_STATE_COLOURS = {"enabled": "#16a34a", "disabled": "#6b7280", "error": "#dc2626"}
_SEVERITY_COLOURS = {"error": "#dc2626", "warning": "#b45309", "info": "#2563eb"}
_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}
_SORT_ROLE = Qt.ItemDataRole.UserRole + 1
_SOURCES = (("Pasted code", "code"), ("File or folder", "file"), ("Selected dataset", "dataset"))
_NAME, _VERSION, _STATE, _NEEDS, _DETAILS = range(5)


class FindingsTableModel(QAbstractTableModel):
    """Finding rows for a table view: severity, row, line, message, rule.

    Sorting (through a proxy) uses :data:`_SORT_ROLE`: severity by rank (errors first), numbers
    as numbers, a missing row or line before any number.
    """

    COLUMNS = ("Severity", "Row", "Line", "Message", "Rule")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[FindingRow] = []

    @property
    def rows(self) -> list[FindingRow]:
        """The rows in model order."""
        return list(self._rows)

    def set_rows(self, rows: Sequence[FindingRow]) -> None:
        """Replace every row."""
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def append_rows(self, rows: Sequence[FindingRow]) -> None:
        """Add rows at the end (live results while a run goes on)."""
        if not rows:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        self._rows.extend(rows)
        self.endInsertRows()

    def row_at(self, row: int) -> FindingRow:
        """The finding in model row ``row``."""
        return self._rows[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        finding = self._rows[index.row()]
        column = index.column()
        values = (finding.severity, finding.row, finding.line, finding.message, finding.rule)
        value = values[column]
        if role == Qt.ItemDataRole.DisplayRole:
            return "" if value is None else str(value)
        if role == _SORT_ROLE:
            return _sort_key(finding, column, value)
        if role == Qt.ItemDataRole.ForegroundRole and column == 0:
            return QColor(_SEVERITY_COLOURS.get(finding.severity, "#6b7280"))
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(finding)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def _sort_key(finding: FindingRow, column: int, value: object) -> object:
    # Severity by rank (errors first); a missing row or line sorts before any number.
    if column == 0:
        return _SEVERITY_RANK.get(finding.severity, 3)
    if column in (1, 2):
        return -1 if value is None else value
    return str(value)


def _tooltip(finding: FindingRow) -> str:
    where = finding.path or ""
    if finding.row is not None:
        where += f" row {finding.row}"
    if finding.line is not None:
        where += f" line {finding.line}" + (f":{finding.column}" if finding.column else "")
    return f"{where.strip()}\n{finding.message}"


class PluginsPanel(Panel):
    """Lists installed plugins, edits their settings and runs them on code or a dataset.

    Args:
        discover: Lists the plugins (the registry), given the names the user disabled.
        disabled: Names the user switched off (used when no settings store is given).
        parent: The Qt parent.
        analysis: Runs plugins and records the results; without it the panel only lists.
        settings_store: Keeps enable/disable and plugin options.
        selected_dataset: Returns the path of the dataset selected in the Datasets panel.
    """

    panel_id = "plugins"
    title = "Plugins"
    default_area = Qt.DockWidgetArea.RightDockWidgetArea

    def __init__(
        self,
        discover: Callable[[Sequence[str]], list[PluginEntry]],
        disabled: Sequence[str] = (),
        parent: QWidget | None = None,
        *,
        analysis: AnalysisService | None = None,
        settings_store: SettingsStore | None = None,
        selected_dataset: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(parent)
        self._discover = discover
        self._preferences = PluginPreferences(settings_store) if settings_store else None
        self._disabled = tuple(disabled)
        if self._preferences is not None:
            self._disabled = self._preferences.current().disabled
        self._analysis = analysis
        self._selected_dataset = selected_dataset or (lambda: None)
        self._task: TaskHandle | None = None
        self._refresh_again = False
        self._run_task: TaskHandle | None = None
        self._stop = threading.Event()
        self.entries: list[PluginEntry] = []
        self.outcome: AnalysisOutcome | None = None
        self._build_ui()
        self._connect_signals()
        self.refresh()

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter)
        splitter.addWidget(self._build_list())
        splitter.addWidget(self._build_run())
        splitter.addWidget(self._build_findings())
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setStretchFactor(2, 5)

    def _build_list(self) -> QWidget:
        box = QWidget(self)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.summary = QLabel("Looking for plugins…", box)
        top.addWidget(self.summary, 1)
        self.refresh_button = QPushButton("Refresh", box)
        top.addWidget(self.refresh_button)
        layout.addLayout(top)
        self.table = QTableWidget(0, 5, box)
        self.table.setObjectName("pluginsTable")
        self.table.setHorizontalHeaderLabels(["Plugin", "Version", "State", "Needs", "Details"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)  # one line per plugin; the tooltip has the full text
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setToolTip("Tick a plugin to enable it; untick to switch it off.")
        # Three plugins fit without scrolling; the details pane below has the long text.
        self.table.setMinimumHeight(4 * 26 + 6)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        for column in (_NAME, _VERSION, _STATE, _NEEDS):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_DETAILS, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 2)
        self.details = QLabel("Select a plugin to see what it does and what it needs.", box)
        self.details.setObjectName("pluginDetails")
        self.details.setWordWrap(True)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setFrameShape(QLabel.Shape.StyledPanel)
        self.details.setMargin(6)
        layout.addWidget(self.details, 1)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.model_edit = QLineEdit(box)
        self.model_edit.setObjectName("pluginModel")
        self.base_url_edit = QLineEdit(box)
        self.base_url_edit.setObjectName("pluginBaseUrl")
        self.base_url_edit.setPlaceholderText("default server; e.g. http://127.0.0.1:8080/v1")
        self.save_options_button = QPushButton("Save settings", box)
        url_row = QHBoxLayout()
        url_row.addWidget(self.base_url_edit, 1)
        url_row.addWidget(self.save_options_button)
        form.addRow("Model", self.model_edit)
        form.addRow("Base URL", url_row)
        layout.addLayout(form)
        return box

    def _build_run(self) -> QWidget:
        box = QWidget(self)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Analyse", box))
        self.source_combo = QComboBox(box)
        for label, kind in _SOURCES:
            self.source_combo.addItem(label, kind)
        row.addWidget(self.source_combo, 1)
        self.run_button = QPushButton("Run", box)
        self.run_button.setObjectName("runPlugin")
        self.cancel_button = QPushButton("Cancel", box)
        self.cancel_button.setEnabled(False)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.source_stack = QStackedWidget(box)
        self.code_edit = QPlainTextEdit(box)
        self.code_edit.setPlaceholderText("Paste Python code here…")
        self.code_edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.source_stack.addWidget(self.code_edit)
        file_page = QWidget(box)
        file_row = QHBoxLayout(file_page)
        file_row.setContentsMargins(0, 0, 0, 0)
        self.file_edit = QLineEdit(file_page)
        self.file_edit.setPlaceholderText("A .py file, a folder, or a .jsonl dataset")
        self.browse_button = QPushButton("Browse…", file_page)
        file_row.addWidget(self.file_edit, 1)
        file_row.addWidget(self.browse_button)
        file_row.addStretch(0)
        self.source_stack.addWidget(file_page)
        self.dataset_label = QLabel(box)
        self.dataset_label.setWordWrap(True)
        self.dataset_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.source_stack.addWidget(self.dataset_label)
        layout.addWidget(self.source_stack, 1)
        self.progress = QProgressBar(box)
        self.progress.setFormat("%v of %m inputs")
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.status = QLabel("", box)
        self.status.setObjectName("analysisStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        return box

    def _build_findings(self) -> QWidget:
        box = QWidget(self)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.findings_model = FindingsTableModel(box)
        self.findings_proxy = QSortFilterProxyModel(box)
        self.findings_proxy.setSourceModel(self.findings_model)
        self.findings_proxy.setSortRole(_SORT_ROLE)
        self.findings_view = QTableView(box)
        self.findings_view.setObjectName("findingsTable")
        self.findings_view.setModel(self.findings_proxy)
        self.findings_view.setSortingEnabled(True)
        self.findings_view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # input order first
        self.findings_view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.findings_view.setAlternatingRowColors(True)
        self.findings_view.verticalHeader().setVisible(False)
        self.findings_view.verticalHeader().setDefaultSectionSize(22)
        header = self.findings_view.horizontalHeader()
        for column in (0, 1, 2):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(4, 110)  # rule names are short; the message gets the room
        layout.addWidget(self.findings_view, 1)
        row = QHBoxLayout()
        self.findings_label = QLabel("No findings yet.", box)
        row.addWidget(self.findings_label, 1)
        self.export_json_button = QPushButton("Export JSON…", box)
        self.export_csv_button = QPushButton("Export CSV…", box)
        for button in (self.export_json_button, self.export_csv_button):
            button.setEnabled(False)
            row.addWidget(button)
        layout.addLayout(row)
        return box

    def _connect_signals(self) -> None:
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_table_item_selection_changed)
        self.table.itemChanged.connect(self._on_table_item_changed)
        self.save_options_button.clicked.connect(self._on_save_options_button_clicked)
        self.source_combo.currentIndexChanged.connect(self._on_source_combo_current_index_changed)
        self.browse_button.clicked.connect(self._on_browse_button_clicked)
        self.run_button.clicked.connect(self._on_run_button_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.export_json_button.clicked.connect(self._on_export_json_button_clicked)
        self.export_csv_button.clicked.connect(self._on_export_csv_button_clicked)

    # --- public -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Ask the registry again, off the GUI thread.

        A request while a discovery runs is kept and served when it ends: that discovery may
        have read the old enabled/disabled choices, so dropping the request would show them.
        """
        if self._task is not None and not self._task.done:
            self._refresh_again = True
            return
        self._refresh_again = False
        self.refresh_button.setEnabled(False)
        self._task = run_in_thread(
            self._discover,
            self._disabled,
            on_return=self._on_discover_returned,
            on_finish=self._on_discover_finished,
        )

    def _on_discover_finished(self) -> None:
        self.refresh_button.setEnabled(True)
        if self._refresh_again and not self._stop.is_set():
            self.refresh()

    def selected_entry(self) -> PluginEntry | None:
        """The plugin selected in the list."""
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.entries):
            return None
        return self.entries[rows[0].row()]

    def select_plugin(self, name: str) -> bool:
        """Select the plugin called ``name``; returns whether it is listed."""
        for row, entry in enumerate(self.entries):
            if entry.name == name:
                self.table.selectRow(row)
                return True
        return False

    def set_source(self, kind: str, value: str = "") -> None:
        """Choose what to analyse: ``code`` (``value`` is the code), ``file`` or ``dataset``."""
        index = self.source_combo.findData(kind)
        if index < 0:
            raise ValueError(f"unknown source {kind!r}")
        self.source_combo.setCurrentIndex(index)
        if kind == "code":
            self.code_edit.setPlainText(value)
        elif kind == "file":
            self.file_edit.setText(value)

    def visible_findings(self) -> list[FindingRow]:
        """The findings in the order the table shows them (sorted and filtered)."""
        proxy = self.findings_proxy
        return [
            self.findings_model.row_at(proxy.mapToSource(proxy.index(row, 0)).row())
            for row in range(proxy.rowCount())
        ]

    def export_findings(self, path: Path, fmt: ExportFormat) -> None:
        """Write the findings, as the table shows them, to ``path``.

        Raises:
            ConfigError: The file cannot be written.
        """
        export_findings(self.visible_findings(), path, fmt)
        notify.info(f"Exported {self.findings_proxy.rowCount()} findings to {path}")

    @property
    def running(self) -> bool:
        """Whether an analysis is in progress."""
        return self._run_task is not None and not self._run_task.done

    def shutdown(self) -> None:
        self._stop.set()
        for task in (self._task, self._run_task):
            if task is not None:
                task.cancel()

    # --- list slots ---------------------------------------------------------------------------

    @safe_slot()
    def _on_discover_returned(self, entries: list[PluginEntry]) -> None:
        previous = self.selected_entry()
        self.entries = entries
        with QSignalBlocker(self.table):  # filling check boxes is not the user toggling them
            self.table.setRowCount(len(entries))
            for row, entry in enumerate(entries):
                self._fill_row(row, entry)
        if entries:
            name = previous.name if previous is not None else entries[0].name
            QTimer.singleShot(0, self, lambda: self._reselect(name))
        broken = sum(1 for e in entries if e.state.value == "error")
        if not entries:
            self.summary.setText("No plugins installed.")
        else:
            self.summary.setText(
                f"{len(entries)} plugin{'s' if len(entries) != 1 else ''}"
                + (f", {broken} with errors" if broken else "")
            )

    def _reselect(self, name: str) -> None:
        # The same row may stay selected across a refresh; its details must still update.
        if self.select_plugin(name):
            self._on_table_item_selection_changed()

    def _fill_row(self, row: int, entry: PluginEntry) -> None:
        spec = entry.spec
        version = spec.version if spec is not None else "—"
        details = entry.error or (spec.description if spec is not None else "")
        values = [
            entry.name,
            version,
            entry.state.value,
            _needs(entry),
            details or entry.entry_point,
        ]
        for column, value in enumerate(values):
            item = QTableWidgetItem(str(value))
            item.setToolTip(str(value))
            if column == _STATE:
                item.setForeground(QColor(_STATE_COLOURS.get(entry.state.value, "#6b7280")))
            if column == _NAME:
                flags = item.flags()
                if entry.state.value != "error" and self._preferences is not None:
                    item.setFlags(flags | Qt.ItemFlag.ItemIsUserCheckable)
                    checked = entry.state.value == "enabled"
                    item.setCheckState(
                        Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
                    )
            self.table.setItem(row, column, item)

    @safe_slot()
    def _on_table_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != _NAME or self._preferences is None or item.row() >= len(self.entries):
            return
        entry = self.entries[item.row()]
        enabled = item.checkState() == Qt.CheckState.Checked
        if enabled == (entry.state.value == "enabled"):
            return
        self._disabled = self._preferences.set_enabled(entry.name, enabled).disabled
        self.refresh()

    @safe_slot()
    def _on_table_item_selection_changed(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
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
        self._show_options(entry)

    def _show_options(self, entry: PluginEntry) -> None:
        options = self._preferences.options(entry.name) if self._preferences is not None else {}
        network = entry.spec is not None and entry.spec.needs_network
        editable = network and self._preferences is not None
        for edit, key in ((self.model_edit, "model"), (self.base_url_edit, "base_url")):
            edit.setText(options.get(key, ""))
            edit.setEnabled(editable)
        self.model_edit.setPlaceholderText(
            "the plugin's default model" if network else "not used by this plugin"
        )
        self.save_options_button.setEnabled(editable)
        self.run_button.setEnabled(self._analysis is not None and entry.usable and not self.running)

    @safe_slot()
    def _on_save_options_button_clicked(self) -> None:
        entry = self.selected_entry()
        if entry is None or self._preferences is None:
            return
        self._preferences.set_options(
            entry.name,
            {"model": self.model_edit.text(), "base_url": self.base_url_edit.text()},
        )
        notify.info(f"Saved the settings of {entry.name}")

    # --- run slots ----------------------------------------------------------------------------

    @safe_slot()
    def _on_source_combo_current_index_changed(self, index: int) -> None:
        self.source_stack.setCurrentIndex(index)
        if self.source_combo.itemData(index) == "dataset":
            self._update_dataset_label()

    def _update_dataset_label(self) -> str | None:
        path = self._selected_dataset()
        self.dataset_label.setText(
            f"Each row's completion in <b>{Path(path).name}</b><br>"
            f"<span style='color:gray'>{path}</span>"
            if path
            else "Select a dataset in the Datasets panel first."
        )
        return path

    @safe_slot()
    def _on_browse_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Analyse a file", "", "Python or JSONL (*.py *.jsonl *.ndjson);;All files (*)"
        )
        if path:
            self.file_edit.setText(path)

    def _target(self) -> AnalysisTarget:
        kind = str(self.source_combo.currentData())
        if kind == "code":
            return AnalysisTarget("code", self.code_edit.toPlainText())
        if kind == "file":
            return AnalysisTarget("file", self.file_edit.text().strip())
        return AnalysisTarget("dataset", self._update_dataset_label() or "")

    @safe_slot()
    def _on_run_button_clicked(self) -> None:
        entry = self.selected_entry()
        if self._analysis is None or self.running:
            return
        if entry is None or entry.spec is None or not entry.usable:
            notify.warning("Select an enabled plugin to run")
            return
        options = self._preferences.options(entry.name) if self._preferences is not None else {}
        self._stop = threading.Event()
        self.outcome = None
        self.findings_model.set_rows([])
        self.status.setText(f"Running {entry.name}…")
        self._set_running(True)
        self._run_task = run_in_thread(
            self._analysis.analyse,
            entry.spec,
            self._target(),
            options=options,
            cancelled=self._stop.is_set,
            on_yield=self._on_run_yielded,
            on_return=self._on_run_returned,
            on_error=self._on_run_errored,
            on_finish=self._on_run_finished,
        )

    @safe_slot()
    def _on_cancel_button_clicked(self) -> None:
        # The service stops the plugin's process and still returns what arrived before.
        self._stop.set()
        self.status.setText("Cancelling…")

    @safe_slot()
    def _on_run_yielded(self, progress: AnalysisProgress) -> None:
        self.progress.setMaximum(max(progress.total, 1))
        self.progress.setValue(progress.done)
        if progress.result is not None:
            self.findings_model.append_rows(finding_rows([progress.result]))
            self._update_findings_label()

    @safe_slot()
    def _on_run_returned(self, outcome: AnalysisOutcome) -> None:
        self.outcome = outcome
        self.findings_model.set_rows(outcome.findings)
        self.status.setText(outcome.describe())
        self._update_findings_label()
        if outcome.status == "error" and not outcome.findings:
            notify.error(outcome.errors[0])

    def _on_run_errored(self, exc: BaseException) -> None:
        self.status.setText(notify.message_for(exc))
        notify.error(exc)

    def _on_run_finished(self) -> None:
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the inputs are counted
        self.cancel_button.setEnabled(running)
        self.source_combo.setEnabled(not running)
        entry = self.selected_entry()
        self.run_button.setEnabled(
            not running and self._analysis is not None and entry is not None and entry.usable
        )

    def _update_findings_label(self) -> None:
        count = self.findings_model.rowCount()
        self.findings_label.setText(
            f"{count} finding{'s' if count != 1 else ''}" if count else "No findings."
        )
        for button in (self.export_json_button, self.export_csv_button):
            button.setEnabled(count > 0)

    # --- export slots -------------------------------------------------------------------------

    @safe_slot()
    def _on_export_json_button_clicked(self) -> None:
        self._ask_and_export("json")

    @safe_slot()
    def _on_export_csv_button_clicked(self) -> None:
        self._ask_and_export("csv")

    def _ask_and_export(self, fmt: ExportFormat) -> None:
        name = "findings.json" if fmt == "json" else "findings.csv"
        filters = "JSON (*.json)" if fmt == "json" else "CSV (*.csv)"
        path, _ = QFileDialog.getSaveFileName(self, "Export findings", name, filters)
        if path:
            self.export_findings(Path(path), fmt)


def _needs(entry: PluginEntry) -> str:
    spec = entry.spec
    if spec is None:
        return "—"
    needs = [*(["network"] if spec.needs_network else []), *(f"{s} key" for s in spec.secrets)]
    return ", ".join(needs) or "nothing"
