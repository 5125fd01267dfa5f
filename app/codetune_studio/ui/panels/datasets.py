"""Datasets: bundled samples, registered and added data, a lazy preview, findings and lengths."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QSignalBlocker,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.errors import ConflictError
from codetune_studio.engine.formats import (
    FORMATS,
    format_roles,
    guess_columns,
    mapping_from_choices,
)
from codetune_studio.services.dataset_preview import (
    DatasetAnalysis,
    IndexProgress,
    analyse_dataset,
    index_lines,
    line_kind,
    read_line_rows,
)
from codetune_studio.ui import notify, plotting
from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Generator

    import numpy as np

    from codetune_studio.core.models import DatasetRecord
    from codetune_studio.services.experiments import ExperimentService

__all__ = ["DatasetsPanel", "RowsTableModel"]

logger = logging.getLogger(__name__)

_CHUNK = 256
_CACHED_CHUNKS = 32
_CELL_CHARS = 160
_Index = QModelIndex | QPersistentModelIndex
_PATH_ROLE = Qt.ItemDataRole.UserRole
_UNMAPPED = "(not mapped)"


class RowsTableModel(QAbstractTableModel):
    """Dataset rows, read lazily: only the chunks on screen are ever parsed.

    Rows arrive either as byte offsets into a line-based file (:meth:`append_offsets`, while the
    index is being built) or as records already in memory (:meth:`set_records`).
    """

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._path: Path | None = None
        self._kind = "jsonl"
        self._offsets: np.ndarray[Any, Any] | None = None  # NumPy loads with the first file
        self._records: list[dict[str, Any]] | None = None
        self._columns: list[str] = []
        self._cache: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()

    def reset_file(self, path: Path, kind: str) -> None:
        """Start previewing a line-based file; rows come with :meth:`append_offsets`."""
        self.beginResetModel()
        self._path, self._kind = path, kind
        self._offsets = None
        self._records = None
        self._columns = []
        self._cache.clear()
        self.endResetModel()

    def append_offsets(self, offsets: np.ndarray[Any, Any]) -> None:
        """Add rows found by the indexer."""
        if not len(offsets):
            return
        import numpy as np

        first = len(self._offsets) if self._offsets is not None else 0
        if first == 0 or self._offsets is None:
            self._columns = self._guess_columns(offsets[:_CHUNK])
            self.beginResetModel()
            self._offsets = np.asarray(offsets, dtype=np.int64)
            self.endResetModel()
            return
        self.beginInsertRows(QModelIndex(), first, first + len(offsets) - 1)
        self._offsets = np.concatenate((self._offsets, offsets))
        self.endInsertRows()

    def set_records(self, records: list[dict[str, Any]]) -> None:
        """Show records already read."""
        self.beginResetModel()
        self._path = None
        self._records = records
        self._offsets = None
        self._cache.clear()
        self._columns = _columns_of(records[:_CHUNK])
        self.endResetModel()

    def columns(self) -> list[str]:
        """The columns shown (the file's, as read from its first rows)."""
        return list(self._columns)

    def clear(self) -> None:
        """Show nothing."""
        self.beginResetModel()
        self._path, self._records = None, None
        self._offsets = None
        self._columns = []
        self._cache.clear()
        self.endResetModel()

    def _guess_columns(self, offsets: np.ndarray[Any, Any]) -> list[str]:
        if self._path is None:
            return []
        return _columns_of(read_line_rows(self._path, offsets, self._kind))

    def row(self, row: int) -> dict[str, Any]:
        """One row's record (read from disk if it is not cached)."""
        if self._records is not None:
            return self._records[row]
        chunk = row // _CHUNK
        rows = self._cache.get(chunk)
        if rows is None:
            assert self._path is not None  # noqa: S101 - rows exist only with a file
            assert self._offsets is not None  # noqa: S101
            start = chunk * _CHUNK
            rows = read_line_rows(self._path, self._offsets[start : start + _CHUNK], self._kind)
            self._cache[chunk] = rows
            if len(self._cache) > _CACHED_CHUNKS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(chunk)
        return rows[row % _CHUNK]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        if parent.isValid():
            return 0
        if self._records is not None:
            return len(self._records)
        return len(self._offsets) if self._offsets is not None else 0

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self._columns[section] if section < len(self._columns) else None
        return str(section + 1)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        record = self.row(index.row())
        value = record.get(self._columns[index.column()], "")
        text = value if isinstance(value, str) else _compact(value)
        if role == Qt.ItemDataRole.ToolTipRole:
            return text[:2000]
        text = text.replace("\n", " ⏎ ")
        return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


def _columns_of(records: list[dict[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return list(columns)


def _compact(value: Any) -> str:
    import json

    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


class DatasetsPanel(Panel):
    """Pick, add and check datasets.

    Args:
        experiments: Lists and registers datasets.
        samples_dir: The bundled sample datasets.
        parent: The Qt parent.
        data_dir: The studio's data folder, where the starter model's tokenizer is found.
    """

    panel_id = "datasets"
    title = "Datasets"
    default_area = Qt.DockWidgetArea.LeftDockWidgetArea

    dataset_chosen = Signal(str)  # the user picked this dataset for training
    analysis_finished = Signal(str)  # the checks of this dataset are done
    analysis_failed = Signal(str, str)  # path, the reason its checks failed
    columns_changed = Signal(str, str, object)  # path, format, {role: column} the user mapped

    def __init__(
        self,
        experiments: ExperimentService,
        samples_dir: Path,
        parent: QWidget | None = None,
        *,
        data_dir: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self._experiments = experiments
        self._samples_dir = samples_dir
        self._data_dir = data_dir
        self._model: str | None = None
        self._max_seq_length = 512
        self._detected_format: str | None = None
        self._role_combos: dict[str, QComboBox] = {}
        #: The format the user chose for the current dataset (``"auto"``: detect it).
        self.mapping_format = "auto"
        #: The current dataset's column mapping, as ``dataset.columns`` takes it.
        self.columns: dict[str, str] = {}
        #: The unit of the lengths shown: ``"tokens"`` or ``"characters"``.
        self.length_unit = "characters"
        self._index_task: TaskHandle | None = None
        self._analysis_task: TaskHandle | None = None
        self._list_task: TaskHandle | None = None
        self.current_path: str | None = None
        self.analysis: DatasetAnalysis | None = None
        self._added: list[str] = []
        self._build_ui()
        self._connect_signals()
        self.refresh()

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        buttons = QHBoxLayout()
        self.add_file_button = QPushButton("Add file…", self)
        self.add_folder_button = QPushButton("Add folder…", self)
        self.use_button = QPushButton("Use for training", self)
        self.use_button.setObjectName("useDatasetButton")
        self.use_button.setEnabled(False)
        buttons.addWidget(self.add_file_button)
        buttons.addWidget(self.add_folder_button)
        buttons.addStretch(1)
        buttons.addWidget(self.use_button)
        layout.addLayout(buttons)
        self._add_hub_row(layout)

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.tree = QTreeWidget(splitter)
        self.tree.setObjectName("datasetsTree")
        self.tree.setHeaderLabels(["Dataset", "Format", "Rows"])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(False)
        self._samples_item = QTreeWidgetItem(self.tree, ["Samples (bundled)"])
        self._registered_item = QTreeWidgetItem(self.tree, ["Registered"])
        self._added_item = QTreeWidgetItem(self.tree, ["Added"])
        for item in (self._samples_item, self._registered_item, self._added_item):
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            item.setExpanded(True)
        splitter.addWidget(self.tree)

        details = QWidget(splitter)
        details_layout = QVBoxLayout(details)
        details_layout.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel("Select a dataset to preview it, or drop a file here.", details)
        self.summary.setObjectName("datasetSummary")
        self.summary.setWordWrap(True)
        details_layout.addWidget(self.summary)
        progress_row = QHBoxLayout()
        self.progress = QProgressBar(details)
        self.progress.setObjectName("datasetProgress")
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", details)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        details_layout.addLayout(progress_row)
        self._set_busy(None)

        self.mapping_box = QGroupBox("Column mapping", details)
        self.mapping_box.setObjectName("columnMapping")
        self._mapping_form = QFormLayout(self.mapping_box)
        self._mapping_form.setContentsMargins(6, 4, 6, 4)
        self._mapping_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.format_combo = QComboBox(self.mapping_box)
        self.format_combo.setObjectName("datasetFormat")
        self.format_combo.addItems(["auto", *FORMATS])
        self.format_combo.setToolTip("The record layout; 'auto' detects it from the first record.")
        self._mapping_form.addRow("Format", self.format_combo)
        self.mapping_hint = QLabel(self.mapping_box)
        self.mapping_hint.setWordWrap(True)
        self.mapping_hint.setStyleSheet("color: palette(mid); font-size: 11px;")
        self._mapping_form.addRow(self.mapping_hint)
        self.mapping_box.setVisible(False)
        details_layout.addWidget(self.mapping_box)

        self.tabs = QTabWidget(details)
        self.preview_model = RowsTableModel(self)
        self.preview = QTableView(self.tabs)
        self.preview.setObjectName("datasetPreview")
        self.preview.setModel(self.preview_model)
        self.preview.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.preview.verticalHeader().setDefaultSectionSize(22)
        self.preview.horizontalHeader().setDefaultSectionSize(180)
        self.preview.setWordWrap(False)
        self.tabs.addTab(self.preview, "Preview")
        self.findings = QTableWidget(0, 2, self.tabs)
        self.findings.setObjectName("datasetFindings")
        self.findings.setHorizontalHeaderLabels(["Row", "Finding"])
        self.findings.horizontalHeader().setStretchLastSection(True)
        self.findings.verticalHeader().setVisible(False)
        self.findings.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.tabs.addTab(self.findings, "Findings")
        lengths_tab = QWidget(self.tabs)
        self._lengths_layout = QVBoxLayout(lengths_tab)
        self._lengths_layout.setContentsMargins(4, 4, 4, 4)
        self.lengths_label = QLabel("Lengths appear once a dataset is checked.", lengths_tab)
        self.lengths_label.setObjectName("lengthsUnit")
        self.lengths_label.setWordWrap(True)
        self._lengths_layout.addWidget(self.lengths_label)
        self._histogram: Any = None  # a pyqtgraph PlotWidget, created on first use
        self.tabs.addTab(lengths_tab, "Lengths")
        self._add_tokens_tab()
        details_layout.addWidget(self.tabs, 1)
        splitter.addWidget(details)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        layout.addWidget(splitter, 1)

    def _add_hub_row(self, layout: QVBoxLayout) -> None:
        """A Hub dataset id field: offline, the dataset loads from the local cache."""
        row = QHBoxLayout()
        self.hub_edit = QLineEdit(self)
        self.hub_edit.setObjectName("hubDatasetId")
        self.hub_edit.setPlaceholderText("Hugging Face dataset id, e.g. user/dataset")
        self.hub_edit.setToolTip(
            "Offline, only datasets already in the local Hugging Face cache load."
        )
        self.hub_button = QPushButton("Load", self)
        self.hub_button.setObjectName("hubLoadButton")
        row.addWidget(self.hub_edit, 1)
        row.addWidget(self.hub_button)
        layout.addLayout(row)
        self.hub_edit.returnPressed.connect(self._on_hub_button_clicked)
        self.hub_button.clicked.connect(self._on_hub_button_clicked)

    @safe_slot()
    def _on_hub_button_clicked(self) -> None:
        name = self.hub_edit.text().strip()
        if name:
            self.add_hub_dataset(name)

    def add_hub_dataset(self, name: str) -> None:
        """Add a Hugging Face Hub dataset by id; it is checked and previewed like a file."""
        if name not in self._added:
            self._added.append(name)
            item = self._add_item(self._added_item, name, name, "", "")
        else:
            item = self._find_item(name) or self._added_item
        self.tree.setCurrentItem(item)
        self._start_analysis(name, register=True)

    def _add_tokens_tab(self) -> None:
        """The token and label inspector, as the Tokens tab."""
        from codetune_studio.ui.panels.token_inspector import TokenInspectorWidget

        self.tokens = TokenInspectorWidget(self.tabs, data_dir=self._data_dir)
        self.tabs.addTab(self.tokens, "Tokens")

    def _update_tokens_source(self) -> None:
        self.tokens.set_source(
            self.current_path, self.mapping_format, self.columns, self._model, self._max_seq_length
        )

    def _connect_signals(self) -> None:
        self.add_file_button.clicked.connect(self._on_add_file_button_clicked)
        self.add_folder_button.clicked.connect(self._on_add_folder_button_clicked)
        self.use_button.clicked.connect(self._on_use_button_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.tree.currentItemChanged.connect(self._on_tree_current_item_changed)
        self.tree.itemDoubleClicked.connect(self._on_tree_item_double_clicked)
        self.format_combo.activated.connect(self._on_format_combo_activated)

    # --- public API ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the bundled samples and the registered datasets."""
        self._samples_item.takeChildren()
        samples = sorted(self._samples_dir.glob("*.jsonl")) if self._samples_dir.is_dir() else []
        for path in samples:
            self._add_item(self._samples_item, path.stem, str(path), "", "")
        if self._list_task is not None:
            self._list_task.cancel()
        self._list_task = run_in_thread(
            self._experiments.list_datasets, on_return=self._on_list_returned
        )

    def add_path(self, path: str | Path) -> None:
        """Add a dataset file or folder (from a dialog, a drop or File > Open dataset).

        It is checked in the background and registered in the database once it reads cleanly.
        """
        text = str(Path(path).expanduser().resolve())
        if text not in self._added:
            self._added.append(text)
            item = self._add_item(self._added_item, Path(text).name, text, "", "")
        else:
            item = self._find_item(text) or self._added_item
        self.tree.setCurrentItem(item)
        self._start_analysis(text, register=True)

    def select_path(self, path: str) -> bool:
        """Select the dataset at ``path`` if it is listed; returns whether it was."""
        item = self._find_item(path)
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        return True

    def set_model(self, model: str, max_seq_length: int) -> None:
        """Measure lengths with this model's tokenizer, counting truncation at ``max_seq_length``.

        The tokenizer loads on a worker thread; without one on disk, lengths stay in characters.
        """
        if (model, max_seq_length) == (self._model, self._max_seq_length):
            return
        self._model, self._max_seq_length = model, max_seq_length
        if self.current_path is not None:
            self._run_checks(self.current_path, register=False)

    def set_mapping(self, fmt: str, columns: dict[str, str]) -> None:
        """Read the current dataset as ``fmt`` with ``columns`` (as if the user had picked them).

        Args:
            fmt: ``"auto"`` or one of the formats.
            columns: ``{role: column}``, as ``dataset.columns`` takes it.
        """
        self.mapping_format = fmt
        self.columns = dict(columns)
        self._show_mapping()
        self._mapping_edited()

    def listed_paths(self) -> list[str]:
        """Every dataset path in the list."""
        return [
            str(child.data(0, _PATH_ROLE))
            for group in (self._samples_item, self._registered_item, self._added_item)
            for child in _children(group)
        ]

    def shutdown(self) -> None:
        for task in (self._index_task, self._analysis_task, self._list_task):
            if task is not None:
                task.cancel()
        self.tokens.shutdown()

    def save_state(self) -> dict[str, Any]:
        return {"added": self._added[-20:], "current": self.current_path}

    def restore_state(self, state: dict[str, Any]) -> None:
        for path in state.get("added", []):
            if isinstance(path, str) and Path(path).exists() and path not in self._added:
                self._added.append(path)
                self._add_item(self._added_item, Path(path).name, path, "", "")

    # --- list ---------------------------------------------------------------------------------

    def _add_item(
        self, parent: QTreeWidgetItem, name: str, path: str, fmt: str, rows: str
    ) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [name, fmt, rows])
        item.setData(0, _PATH_ROLE, path)
        item.setToolTip(0, path)
        item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return item

    def _find_item(self, path: str) -> QTreeWidgetItem | None:
        for group in (self._added_item, self._registered_item, self._samples_item):
            for child in _children(group):
                if child.data(0, _PATH_ROLE) == path:
                    return child
        return None

    @safe_slot()
    def _on_list_returned(self, records: list[DatasetRecord]) -> None:
        self._registered_item.takeChildren()
        for record in records:
            self._add_item(
                self._registered_item,
                record.name,
                record.source,
                record.format,
                f"{record.num_rows:,}",
            )
        self._registered_item.setHidden(not records)

    @safe_slot()
    def _on_tree_current_item_changed(self, current: QTreeWidgetItem | None) -> None:
        path = current.data(0, _PATH_ROLE) if current is not None else None
        self.use_button.setEnabled(bool(path))
        if path and path != self.current_path:
            self._start_analysis(str(path), register=False)

    @safe_slot()
    def _on_tree_item_double_clicked(self, item: QTreeWidgetItem) -> None:
        path = item.data(0, _PATH_ROLE)
        if path:
            self.dataset_chosen.emit(str(path))

    @safe_slot()
    def _on_use_button_clicked(self) -> None:
        item = self.tree.currentItem()
        path = item.data(0, _PATH_ROLE) if item is not None else None
        if path:
            self.dataset_chosen.emit(str(path))
            notify.info(f"Training will use {Path(str(path)).name}.")

    @safe_slot()
    def _on_add_file_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Add a dataset file",
            str(Path.home()),
            "Datasets (*.jsonl *.json *.csv *.tsv *.parquet *.txt *.md);;All files (*)",
        )
        if path:
            self.add_path(path)

    @safe_slot()
    def _on_add_folder_button_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Add a folder of code or data", str(Path.home())
        )
        if path:
            self.add_path(path)

    # --- background work ----------------------------------------------------------------------

    def _start_analysis(self, path: str, *, register: bool) -> None:
        if self._index_task is not None:
            self._index_task.cancel()  # the newest request wins
        if path != self.current_path:
            self.mapping_format, self.columns, self._detected_format = "auto", {}, None
        self.current_path = path
        self.summary.setText(f"<b>{Path(path).name}</b> · reading…")
        kind = line_kind(Path(path))
        if kind is not None:
            self.preview_model.reset_file(Path(path), kind)
            self._set_busy("Indexing rows…", maximum=100)
            self._index_task = run_in_thread(
                index_lines,
                Path(path),
                skip_header=kind in {"csv", "tsv"},
                on_yield=self._on_index_yielded,
            )
        else:
            self.preview_model.clear()
        self._show_mapping()
        self._run_checks(path, register=register)

    def _run_checks(self, path: str, *, register: bool) -> None:
        """Check ``path`` with the current format, mapping and model (on a worker thread)."""
        if self._analysis_task is not None:
            self._analysis_task.cancel()  # the newest request wins
        self.analysis = None
        self.findings.setRowCount(0)
        if self._histogram is not None:
            self._histogram.clear()
        self._set_busy("Checking…")
        self._analysis_task = run_in_thread(
            _analyse_and_register,
            self._experiments if register else None,
            path,
            self.mapping_format,
            dict(self.columns),
            self._max_seq_length,
            self._model,
            self._data_dir,
            on_yield=self._on_analysis_yielded,
            on_return=self._on_analysis_returned,
            on_error=self._on_analysis_errored,
            on_finish=self._on_analysis_finished,
        )

    # --- column mapping -----------------------------------------------------------------------

    def _shown_format(self) -> str:
        if self.mapping_format != "auto":
            return self.mapping_format
        return self._detected_format or "auto"

    def _show_mapping(self) -> None:
        """Rebuild the role rows for the shown format, each preselecting its column."""
        while self._mapping_form.rowCount() > 2:
            self._mapping_form.removeRow(2)
        self._role_combos.clear()
        with QSignalBlocker(self.format_combo):
            self.format_combo.setCurrentText(self.mapping_format)
        file_columns = self.preview_model.columns()
        fmt = self._shown_format()
        self.mapping_box.setVisible(self.current_path is not None)
        roles = format_roles(fmt)
        if not roles:
            self.mapping_hint.setText("Pick the format, then the column that holds each field.")
            return
        detected = f"detected {fmt}" if self.mapping_format == "auto" else f"read as {fmt}"
        self.mapping_hint.setText(f"{detected}; the column that holds each field:")
        guessed = guess_columns(fmt, file_columns, self.columns)
        for role in roles:
            combo = QComboBox(self.mapping_box)
            combo.setObjectName(f"columnFor_{role}")
            combo.addItem(_UNMAPPED, "")
            for column in file_columns:
                combo.addItem(column, column)
            index = combo.findData(guessed[role])
            combo.setCurrentIndex(max(index, 0))
            combo.activated.connect(self._on_role_combo_activated)
            self._role_combos[role] = combo
            self._mapping_form.addRow(role, combo)

    def role_combo(self, role: str) -> QComboBox:
        """The combo box choosing the column for ``role`` (for tests and automation)."""
        return self._role_combos[role]

    def _choices(self) -> dict[str, str]:
        return {role: str(combo.currentData() or "") for role, combo in self._role_combos.items()}

    @safe_slot()
    def _on_format_combo_activated(self, _index: int) -> None:
        self.mapping_format = self.format_combo.currentText()
        self.columns = {}
        self._show_mapping()
        self.columns = mapping_from_choices(self._choices())
        self._mapping_edited()

    @safe_slot()
    def _on_role_combo_activated(self, _index: int) -> None:
        self.columns = mapping_from_choices(self._choices())
        self._mapping_edited()

    def _mapping_edited(self) -> None:
        if self.current_path is None:
            return
        self.columns_changed.emit(self.current_path, self.mapping_format, dict(self.columns))
        self._run_checks(self.current_path, register=False)

    @safe_slot()
    def _on_index_yielded(self, progress: IndexProgress) -> None:
        had_columns = bool(self.preview_model.columns())
        self.preview_model.append_offsets(progress.offsets)
        if not had_columns and self.preview_model.columns():
            self._show_mapping()  # the file's columns are known now
        if progress.total_bytes:
            self.progress.setMaximum(100)
            self.progress.setValue(int(100 * progress.done_bytes / progress.total_bytes))

    @safe_slot()
    def _on_analysis_yielded(self, message: str) -> None:
        self.progress.setFormat(message)

    @safe_slot()
    def _on_analysis_returned(self, result: tuple[DatasetAnalysis, DatasetRecord | None]) -> None:
        analysis, registered = result
        if analysis.path != self.current_path:
            return
        self.analysis = analysis
        report = analysis.report
        if analysis.records is not None:
            self.preview_model.set_records(analysis.records)
        self._detected_format = report.format
        self._show_mapping()
        stats = report.lengths
        parts = [
            f"<b>{Path(analysis.path).name}</b>",
            f"format <b>{report.format}</b>",
            f"{report.rows:,} rows, {report.examples:,} usable",
        ]
        if report.bad_row_count:
            parts.append(f"<span style='color:#dc2626'>{report.bad_row_count:,} bad rows</span>")
        if report.empty_rows:
            parts.append(f"<span style='color:#dc2626'>{report.empty_rows} dropped</span>")
        if report.secrets:
            parts.append(f"<span style='color:#dc2626'>{len(report.secrets)} likely secrets</span>")
        if report.duplicate_rows:
            parts.append(f"<span style='color:#d97706'>{report.duplicate_rows} duplicates</span>")
        if stats is not None:
            parts.append(f"length p50 {stats.p50:,}, p95 {stats.p95:,} {stats.unit}")
        self.summary.setText(" · ".join(parts))
        self._show_findings(report)
        self._show_histogram(analysis.lengths, analysis.unit)
        self._show_length_note(analysis)
        item = self._find_item(analysis.path)
        if item is not None:
            item.setText(1, report.format)
            item.setText(2, f"{report.rows:,}")
        if registered is not None:
            notify.info(f"Dataset {registered.name} registered ({registered.num_rows:,} rows).")
            self.refresh()
        self._update_tokens_source()
        self.analysis_finished.emit(analysis.path)

    def _on_analysis_errored(self, exc: BaseException) -> None:
        message = notify.message_for(exc)
        self.summary.setText(f"<span style='color:#dc2626'>{message}</span>")
        self.findings.setRowCount(1)
        self.findings.setItem(0, 0, QTableWidgetItem(""))
        self.findings.setItem(0, 1, QTableWidgetItem(message))
        self.tabs.setTabText(1, "Findings (error)")
        if self._detected_format is not None and self.mapping_format == "auto":
            self._detected_format = None
            self._show_mapping()
        if self.current_path is not None:
            self.analysis_failed.emit(self.current_path, message)
        notify.error(exc)

    def _on_analysis_finished(self) -> None:
        if self._analysis_task is not None and self._analysis_task.done:
            self._set_busy(None)

    @safe_slot()
    def _on_cancel_button_clicked(self) -> None:
        for task in (self._index_task, self._analysis_task):
            if task is not None:
                task.cancel()
        self._set_busy(None)
        self.summary.setText(self.summary.text().replace("reading…", "cancelled"))

    def _set_busy(self, message: str | None, maximum: int = 0) -> None:
        busy = message is not None
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setRange(0, maximum)
            self.progress.setFormat(message or "")

    def _show_findings(self, report: Any) -> None:
        rows: list[tuple[str, str]] = [(b.source, f"bad row: {b.problem}") for b in report.bad_rows]
        if report.bad_row_count > len(report.bad_rows):
            more = report.bad_row_count - len(report.bad_rows)
            rows.append(("", f"… and {more:,} more bad rows (dataset inspect --json lists them)"))
        rows += [(d.source, d.reason) for d in report.dropped]
        rows += [(d.source, f"duplicate of {_row_label(d.same_as)}") for d in report.duplicates]
        rows += [
            (d.source, f"near-duplicate ({d.similarity:.0%}) of {_row_label(d.similar_to)}")
            for d in report.near_duplicates
        ]
        rows += [
            (d.source, f"in validation and training (row {_row_label(d.same_as)})")
            for d in report.split_leaks
        ]
        rows += [(d.source, f"also in the eval file ({d.same_as})") for d in report.eval_leaks]
        rows += [(f.source, f"likely secret: {f.kind} {f.excerpt}") for f in report.secrets]
        rows += [
            (source, f"truncated at max_seq_length {report.max_seq_length}")
            for source in report.truncated_rows
        ]
        if report.truncated and not report.truncated_rows:
            rows.append(("", f"{report.truncated} examples exceed {report.max_seq_length} tokens"))
        self.findings.setRowCount(len(rows))
        for row, (where, what) in enumerate(rows):
            self.findings.setItem(row, 0, QTableWidgetItem(_row_label(where)))
            self.findings.setItem(row, 1, QTableWidgetItem(what))
        self.findings.resizeColumnToContents(0)
        label = f"Findings ({len(rows)})" if rows else "Findings (none)"
        self.tabs.setTabText(1, label)

    @property
    def histogram(self) -> Any:
        """The token-length histogram (a ``pyqtgraph.PlotWidget``, created on first use)."""
        if self._histogram is None:
            plot = plotting.new_plot_widget(self)
            plot.setObjectName("lengthHistogram")
            item = plot.getPlotItem()
            item.setLabel("bottom", "length (characters)")
            item.setLabel("left", "examples")
            item.showGrid(y=True, alpha=0.2)
            self._lengths_layout.addWidget(plot, 1)
            self._histogram = plot
        return self._histogram

    def apply_palette(self) -> None:
        """Re-colour the histogram after the system switched between light and dark."""
        if self._histogram is not None:
            plotting.tint_plot(self._histogram)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.apply_palette()

    def _show_length_note(self, analysis: DatasetAnalysis) -> None:
        report = analysis.report
        if analysis.unit == "tokens":
            note = f"Lengths in tokens, measured with {self._model}'s tokenizer"
            if report.truncated:
                note += (
                    f"; <b>{report.truncated}</b> examples exceed max_seq_length "
                    f"{report.max_seq_length} and will be truncated"
                )
            else:
                note += f"; none exceeds max_seq_length {report.max_seq_length}"
        else:
            reason = analysis.unit_reason or "no tokenizer"
            note = f"Lengths in characters ({reason}; pick a model whose tokenizer is on disk)"
        self.lengths_label.setText(note + ".")

    def _show_histogram(self, lengths: list[int], unit: str = "characters") -> None:
        import numpy as np
        import pyqtgraph as pg

        self.length_unit = unit
        self.histogram.clear()
        self.histogram.getPlotItem().setLabel("bottom", f"length ({unit})")
        if not lengths:
            return
        counts, edges = np.histogram(np.asarray(lengths), bins=min(40, max(5, len(lengths) // 5)))
        width = float(edges[1] - edges[0]) if len(edges) > 1 else 1.0
        bars = pg.BarGraphItem(
            x0=edges[:-1], width=width * 0.9, height=counts, brush="#3b82f6", pen=None
        )
        self.histogram.addItem(bars)


def _children(group: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    children = (group.child(i) for i in range(group.childCount()))
    return [child for child in children if child is not None]


def _row_label(source: str) -> str:
    # "path/to/file.jsonl:17" -> "17"; other sources are shown as they are.
    head, _, tail = source.rpartition(":")
    return tail if head and tail.isdigit() else source


def _analyse_and_register(
    experiments: ExperimentService | None,
    path: str,
    fmt: str = "auto",
    columns: dict[str, str] | None = None,
    max_seq_length: int = 512,
    model: str | None = None,
    data_dir: Path | None = None,
) -> Generator[str, None, tuple[DatasetAnalysis, DatasetRecord | None]]:
    """Check a dataset and, for a newly added one, register it (runs on a worker thread)."""
    analysis = yield from analyse_dataset(
        path, fmt, columns, max_seq_length, model=model, data_dir=data_dir
    )
    registered = None
    if experiments is not None and not any(r.source == path for r in experiments.list_datasets()):
        report = analysis.report
        stem = Path(path).stem or "dataset"
        for attempt in range(1, 20):
            name = stem if attempt == 1 else f"{stem}-{attempt}"
            try:
                registered = experiments.register_dataset(
                    name,
                    source=path,
                    format=report.format,
                    fingerprint=report.fingerprint,
                    num_rows=report.rows,
                )
                break
            except ConflictError:
                continue
    return analysis, registered
