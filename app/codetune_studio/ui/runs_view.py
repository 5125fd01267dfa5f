"""The runs view: every run with its results, search and filters, a run's detail, and its menu.

Taken out of ``MainWindow``. The view loads runs (and their results, in two aggregate queries)
off the GUI thread, filters them as the user types without touching the database again, and asks
the window to follow, resume, clone or compare runs through signals: it never starts a run itself.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.audit import AuditAction
from codetune_studio.core.status import RunStatus
from codetune_studio.services.history import RunFilter, read_log_increment
from codetune_studio.services.runs import StaleRun, find_stale_runs, mark_lost_run_failed
from codetune_studio.ui import notify
from codetune_studio.ui.runs_model import RunsTableModel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.core.comparison import LineageStep, RunResults, RunSummary
    from codetune_studio.core.evaluation import ModelEvaluation
    from codetune_studio.core.models import ModelVersion, Run
    from codetune_studio.ui.studio_services import StudioServices

__all__ = ["RunDetail", "RunsView"]

logger = logging.getLogger(__name__)

_ALL = "All"
_LOG_POLL_MS = 1000
_LOG_TAIL_BYTES = 256 * 1024
_EVAL_COLUMNS = (
    "id", "when", "version", "tasks", "n", "pass@1", "pass@k", "base pass@1", "Δ pass@1", "parse",
    "EOS",
)  # fmt: skip


class RunsView(QWidget):
    """The central runs table with its filters and the selected run's detail.

    Args:
        services: The studio's services.
        is_hosted: Says whether this window hosts a run's worker.
        can_resume: Says whether a run may be resumed now (no other run training here).
        parent: The Qt parent.
    """

    follow_requested = Signal(object)  # Run
    resume_requested = Signal(object)  # Run
    clone_requested = Signal(object)  # Run
    compare_requested = Signal(list)  # list[int]
    sweep_compare_requested = Signal(str, list)  # sweep id, its runs' ids
    export_requested = Signal(object)  # Run
    eval_requested = Signal(int)  # a stored evaluation's id, to open in the Eval panel
    runs_loaded = Signal(list)  # list[Run]: every run, unfiltered

    def __init__(
        self,
        services: StudioServices,
        *,
        is_hosted: Callable[[int], bool],
        can_resume: Callable[[], bool],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self._is_hosted = is_hosted
        self._can_resume = can_resume
        self._task: TaskHandle | None = None
        self._summaries: list[RunSummary] = []
        #: Results of ended runs, which never change: not aggregated again on each refresh.
        self._known_results: dict[int, RunResults] = {}
        #: Runs still RUNNING in the database whose worker stopped reporting, by id.
        self.lost_runs: dict[int, StaleRun] = {}
        #: Asks before deleting a run; tests replace it.
        self.confirm_delete: Callable[[Run], bool] = self._confirm_delete
        self._build_ui()
        self._connect_signals()

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        header = QHBoxLayout()
        title = QLabel("Runs", self)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        title.setFont(font)
        header.addWidget(title)
        self.runs_summary = QLabel(self)
        self.runs_summary.setStyleSheet("color: gray")
        header.addWidget(self.runs_summary, 1)
        self.compare_button = QPushButton("Compare", self)
        self.compare_button.setObjectName("compareButton")
        self.compare_button.setToolTip("Compare the selected runs (select two or more)")
        self.compare_button.setEnabled(False)
        header.addWidget(self.compare_button)
        self.train_button = QPushButton("▶  Train", self)
        self.train_button.setObjectName("trainButton")
        self.train_button.setToolTip("Start a run with the current parameters (Ctrl+Return)")
        self.train_button.setMinimumWidth(120)
        self.train_button.setDefault(True)
        self.train_button.setStyleSheet(
            "QPushButton#trainButton { background: #2563eb; color: white; font-weight: bold;"
            " padding: 6px 14px; border-radius: 4px; }"
            "QPushButton#trainButton:disabled { background: palette(mid); color: palette(light); }"
        )
        header.addWidget(self.train_button)
        layout.addLayout(header)
        layout.addLayout(self._build_filters())

        self.runs_model = RunsTableModel(self)
        self.runs_table = QTableView(self)
        self.runs_table.setObjectName("runsTable")
        self.runs_table.setModel(self.runs_model)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.runs_table.setAlternatingRowColors(True)
        self.runs_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.runs_table.verticalHeader().setVisible(False)
        self.runs_table.verticalHeader().setDefaultSectionSize(24)
        self.runs_table.setWordWrap(False)
        self.runs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header_view = self.runs_table.horizontalHeader()
        header_view.setStretchLastSection(True)
        header_view.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = (44, 170, 76, 70, 80, 110, 110, 50, 115, 60, 60, 70, 70, 90)
        for column, width in enumerate(widths):
            self.runs_table.setColumnWidth(column, width)
        self.runs_empty = QLabel(
            "<h3>No runs yet</h3><p>1. Pick a dataset on the left (the bundled samples work "
            "offline).<br>2. Choose a preset and a model on the right.<br>3. Press "
            "<b>Train</b> and watch the curves below.</p>",
            self,
        )
        self.runs_empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.runs_empty.setStyleSheet("color: gray")
        self.runs_stack = QStackedWidget(self)
        self.runs_stack.addWidget(self.runs_empty)
        self.runs_stack.addWidget(self.runs_table)
        self.detail = RunDetail(self.services, self)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.runs_stack)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 220])
        layout.addWidget(splitter, 1)

    def _build_filters(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.search_edit = QLineEdit(self)
        self.search_edit.setObjectName("runsSearch")
        self.search_edit.setPlaceholderText("Search id, name, note, model, dataset, tag…")
        self.search_edit.setClearButtonEnabled(True)
        row.addWidget(self.search_edit, 2)
        self.status_filter = self._filter_combo("Status", [s.value for s in RunStatus], row)
        self.owner_filter = self._filter_combo("Owner", [], row)
        self.tag_filter = self._filter_combo("Tag", [], row)
        self.model_filter = self._filter_combo("Model", [], row)
        return row

    def _filter_combo(self, label: str, values: list[str], row: QHBoxLayout) -> QComboBox:
        row.addWidget(QLabel(label + ":", self))
        combo = QComboBox(self)
        combo.setObjectName(f"{label.lower()}Filter")
        combo.addItems([_ALL, *values])
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        row.addWidget(combo, 1)
        return combo

    def _connect_signals(self) -> None:
        self.search_edit.textChanged.connect(self._on_filters_changed)
        for combo in self._filters():
            combo.currentTextChanged.connect(self._on_filters_changed)
        self.runs_table.doubleClicked.connect(self._on_runs_table_double_clicked)
        self.runs_table.customContextMenuRequested.connect(self._on_runs_table_context_menu)
        self.runs_table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.compare_button.clicked.connect(self._on_compare_button_clicked)
        self.detail.run_changed.connect(self._on_detail_run_changed)
        self.detail.eval_requested.connect(self.eval_requested)

    def _filters(self) -> tuple[QComboBox, ...]:
        return (self.status_filter, self.owner_filter, self.tag_filter, self.model_filter)

    # --- loading ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the runs and their results from the database, off the GUI thread."""
        if self._task is not None and not self._task.done:
            return
        self._task = run_in_thread(
            _load_runs, self.services, dict(self._known_results), on_return=self._on_runs_returned
        )

    @safe_slot()
    def _on_runs_returned(self, result: tuple[list[RunSummary], list[StaleRun]]) -> None:
        summaries, stale = result
        # A run this window hosts is never lost: its worker's pipe says whether it lives.
        stale = [s for s in stale if not self._is_hosted(s.run.id)]
        newly_lost = [s for s in stale if s.run.id not in self.lost_runs]
        self.lost_runs = {s.run.id: s for s in stale}
        self._summaries = summaries
        self._known_results = {s.run.id: s.results for s in summaries if s.run.status.is_terminal}
        self._update_filter_choices()
        self._show_filtered()
        runs = [s.run for s in summaries]
        for run in runs:
            self.detail.update_run(run)
        self._update_summary(runs, stale)
        if newly_lost:
            names = ", ".join(f"{s.run.id} ({s.run.owner}@{s.run.host})" for s in newly_lost[:5])
            notify.warning(
                f"Run(s) {names} still say RUNNING, but their worker stopped reporting. "
                "Right-click a run and choose Mark as failed to close it."
            )
        self.runs_loaded.emit(runs)

    def _update_summary(self, runs: list[Run], stale: list[StaleRun]) -> None:
        counts = {status: sum(1 for r in runs if r.status is status) for status in RunStatus}
        active = counts[RunStatus.RUNNING] + counts[RunStatus.PENDING]
        parts = [f"{len(runs)} runs"]
        if active:
            parts.append(f"{active} active")
        if counts[RunStatus.QUEUED]:
            parts.append(f"{counts[RunStatus.QUEUED]} queued")
        if counts[RunStatus.FAILED]:
            parts.append(f"{counts[RunStatus.FAILED]} failed")
        if stale:
            parts.append(f"{len(stale)} lost")
        self.runs_summary.setText("  ·  ".join(parts))

    def _update_filter_choices(self) -> None:
        choices = {
            self.owner_filter: sorted({s.run.owner for s in self._summaries}),
            self.tag_filter: sorted({t for s in self._summaries for t in s.run.tags}),
            self.model_filter: sorted({s.model for s in self._summaries if s.model}),
        }
        for combo, values in choices.items():
            current = combo.currentText()
            if [combo.itemText(i) for i in range(1, combo.count())] == values:
                continue
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([_ALL, *values])
            combo.setCurrentText(current if current in values else _ALL)
            combo.blockSignals(False)

    def known_results(self) -> dict[int, RunResults]:
        """The results of the ended runs listed, by run id (they never change)."""
        return dict(self._known_results)

    def current_filter(self) -> RunFilter:
        """The filter the search box and the combo boxes describe."""

        def chosen(combo: QComboBox) -> str | None:
            text = combo.currentText()
            return None if text == _ALL else text

        status = chosen(self.status_filter)
        return RunFilter(
            statuses=[RunStatus(status)] if status else (),
            owner=chosen(self.owner_filter),
            tag=chosen(self.tag_filter),
            model=chosen(self.model_filter),
            text=self.search_edit.text(),
            limit=None,
        )

    def _show_filtered(self) -> None:
        run_filter = self.current_filter()
        shown = [
            s
            for s in self._summaries
            if (not run_filter.statuses or s.run.status in run_filter.statuses)
            and (run_filter.owner is None or s.run.owner == run_filter.owner)
            and run_filter.matches(s)
        ]
        selected = {run.id for run in self.selected_runs()}
        self.runs_model.set_runs(
            [s.run for s in shown],
            {run_id: stale.reason for run_id, stale in self.lost_runs.items()},
            {s.run.id: s.results for s in shown},
        )
        self.runs_stack.setCurrentWidget(self.runs_table if self._summaries else self.runs_empty)
        if {run.id for run in self.selected_runs()} == selected:
            return  # rows updated in place: the selection is as it was
        for run_id in selected:
            row = self.runs_model.row_of(run_id)
            if row is not None:
                self.runs_table.selectRow(row)

    @safe_slot()
    def _on_filters_changed(self, *_: Any) -> None:
        self._show_filtered()

    # --- selection ----------------------------------------------------------------------------

    def selected_runs(self) -> list[Run]:
        """The runs selected in the table, top to bottom."""
        rows = sorted(index.row() for index in self.runs_table.selectionModel().selectedRows())
        return [run for row in rows if (run := self.runs_model.run_at(row)) is not None]

    def selected_run(self) -> Run | None:
        """The first selected run."""
        runs = self.selected_runs()
        return runs[0] if runs else None

    def select_runs(self, run_ids: list[int]) -> None:
        """Select these runs (those shown)."""
        self.runs_table.clearSelection()
        mode = self.runs_table.selectionMode()
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for run_id in run_ids:
            row = self.runs_model.row_of(run_id)
            if row is not None:
                self.runs_table.selectRow(row)
        self.runs_table.setSelectionMode(mode)

    @safe_slot()
    def _on_selection_changed(self, *_: Any) -> None:
        runs = self.selected_runs()
        self.compare_button.setEnabled(len(runs) >= 2)
        if len(runs) == 1:
            self.detail.show_run(runs[0])

    @safe_slot()
    def _on_runs_table_double_clicked(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.follow_requested.emit(run)

    @safe_slot()
    def _on_compare_button_clicked(self) -> None:
        runs = self.selected_runs()
        if len(runs) < 2:
            notify.warning("Select two or more runs to compare (Ctrl+click or Shift+click).")
            return
        self.compare_requested.emit([run.id for run in runs])

    @safe_slot()
    def _on_detail_run_changed(self) -> None:
        self.refresh()

    # --- context menu -------------------------------------------------------------------------

    @safe_slot()
    def _on_runs_table_context_menu(self, position: Any) -> None:
        index = self.runs_table.indexAt(position)
        if index.isValid() and index.row() not in {
            i.row() for i in self.runs_table.selectionModel().selectedRows()
        }:
            self.runs_table.selectRow(index.row())
        run = self.selected_run()
        if run is None:
            return
        self.build_run_menu(run).exec(self.runs_table.viewport().mapToGlobal(position))

    def build_run_menu(self, run: Run) -> QMenu:
        """The context menu for one run (its actions carry object names like ``cloneRunAction``).

        Args:
            run: The run right-clicked.

        Returns:
            The menu.
        """
        menu = QMenu(self)
        menu.setObjectName("runMenu")
        hosted = self._is_hosted(run.id)
        selected = [r.id for r in self.selected_runs()]
        sweep_runs = self.sweep_run_ids(run.sweep_id) if run.sweep_id else []
        entries: list[tuple[str, str, Callable[[], Any], bool]] = [
            ("followRunAction", "Follow in monitor", lambda: self.follow_requested.emit(run), True),
            (
                "resumeRunAction",
                "Resume from last checkpoint",
                lambda: self.resume_requested.emit(run),
                bool(run.output_dir) and run.status.is_terminal and self._can_resume(),
            ),
            (
                "cloneRunAction",
                "Clone into Parameters",
                lambda: self.clone_requested.emit(run),
                True,
            ),
            (
                "compareRunsAction",
                f"Compare selected ({len(selected)})",
                lambda: self.compare_requested.emit(selected),
                len(selected) >= 2,
            ),
            (
                "openRunFolderAction",
                "Open output folder",
                lambda: self._open_output_folder(run),
                bool(run.output_dir),
            ),
            ("copyRunIdAction", "Copy run id", lambda: self._copy_run_id(run), True),
            ("exportRunAction", "Export model…", lambda: self.export_requested.emit(run), True),
        ]
        if run.sweep_id:
            # Only a sweep's runs get this entry; it follows "Compare selected".
            entries.insert(
                4,
                (
                    "compareSweepAction",
                    f"Compare sweep ({len(sweep_runs)} runs)",
                    lambda: self.sweep_compare_requested.emit(run.sweep_id, sweep_runs),
                    len(sweep_runs) >= 2,
                ),
            )
        if run.id in self.lost_runs:
            entries.append(
                ("markFailedAction", "Mark as failed", lambda: self._mark_failed(run), True)
            )
        entries.append(
            (
                "deleteRunAction",
                "Delete run…",
                lambda: self._delete_run(run),
                run.status.is_terminal and not hosted,
            )
        )
        for object_name, text, slot, enabled in entries:
            if object_name == "deleteRunAction":
                menu.addSeparator()
            action = menu.addAction(text)
            action.setObjectName(object_name)
            action.setEnabled(enabled)
            action.triggered.connect(safe_slot()(slot))
        return menu

    def sweep_run_ids(self, sweep_id: str) -> list[int]:
        """The runs of a sweep, oldest first (as it queued them), among the runs loaded."""
        return sorted(s.run.id for s in self._summaries if s.run.sweep_id == sweep_id)

    def _open_output_folder(self, run: Run) -> None:
        folder = Path(run.output_dir or "")
        if not run.output_dir or not folder.is_dir():
            notify.warning(
                f"Run {run.id}'s output folder {folder} is not on this machine: it lives on "
                f"{run.host}."
            )
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _copy_run_id(self, run: Run) -> None:
        QGuiApplication.clipboard().setText(str(run.id))
        notify.info(f"Copied run id {run.id}")

    def _mark_failed(self, run: Run) -> None:
        stale = self.lost_runs.get(run.id)
        if stale is None:
            return

        def done(_: object) -> None:
            self.lost_runs.pop(run.id, None)
            notify.info(f"Run {run.id} marked as failed: {stale.reason}.")
            self.refresh()

        run_in_thread(mark_lost_run_failed, self.services.experiments, stale, on_return=done)

    def _confirm_delete(self, run: Run) -> bool:
        answer = QMessageBox.question(
            self,
            "Delete run",
            f"Delete run {run.id} ({run.name}) and its metrics from the database?\n\n"
            f"Its files in {run.output_dir or 'its output folder'} are kept; delete them "
            "yourself (or with `codetune-studio runs delete --files`) if you no longer need them.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _delete_run(self, run: Run) -> None:
        if not self.confirm_delete(run):
            return

        def done(_: object) -> None:
            notify.info(f"Run {run.id} deleted; its files are kept in {run.output_dir}.")
            self.refresh()

        run_in_thread(_delete_and_record, self.services, run, on_return=done)

    def shutdown(self) -> None:
        """Stop loading and tailing; the window is closing."""
        if self._task is not None:
            self._task.cancel()
        self.detail.shutdown()


def _delete_and_record(services: StudioServices, run: Run) -> None:
    """Delete a run's records and note it in the audit log (on a worker thread)."""
    services.experiments.delete_run(run.id)
    if services.audit is not None:
        services.audit.record_quietly(AuditAction.RUN_DELETED, f"run {run.id}", {"name": run.name})


def _load_runs(
    services: StudioServices, known: dict[int, RunResults]
) -> tuple[list[RunSummary], list[StaleRun]]:
    """Runs with results, and those whose worker stopped reporting (on a worker thread)."""
    summaries = services.history.list_runs(RunFilter(limit=500), known=known)
    stale = find_stale_runs([s.run for s in summaries], datetime.now(UTC))
    return summaries, stale


class RunDetail(QTabWidget):
    """One run in depth: results, tags and note, recipe, whole log (tailing), outputs, lineage.

    Args:
        services: The studio's services.
        parent: The Qt parent.
    """

    run_changed = Signal()  # its tags or note were saved
    eval_requested = Signal(int)  # open this stored evaluation's tasks in the Eval panel

    def __init__(self, services: StudioServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runDetail")
        self.services = services
        self.run: Run | None = None
        self._log_path: Path | None = None
        self._log_offset = 0
        # The run has ended: its log is complete, so the next read shows the last line even
        # without its newline (a running worker's line waits for the rest).
        self._log_final = False
        self._load: TaskHandle | None = None
        self._tail: TaskHandle | None = None
        self._build_ui()
        self._log_timer = QTimer(self)
        self._log_timer.setInterval(_LOG_POLL_MS)
        self._log_timer.timeout.connect(self._on_log_timer_timeout)

    def _build_ui(self) -> None:
        summary = QWidget(self)
        form = QFormLayout(summary)
        self.title_label = QLabel("Select a run to see its details.", summary)
        self.title_label.setWordWrap(True)
        self.title_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.title_label)
        self.results_label = QLabel(summary)
        self.results_label.setTextFormat(Qt.TextFormat.RichText)
        form.addRow("Results", self.results_label)
        self.eval_label = QLabel(summary)
        self.eval_label.setObjectName("runEvalSummary")
        self.eval_label.setTextFormat(Qt.TextFormat.RichText)
        self.eval_label.linkActivated.connect(self._on_eval_label_link_activated)
        form.addRow("Code eval", self.eval_label)
        self.files_label = QLabel(summary)
        self.files_label.setWordWrap(True)
        self.files_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Files", self.files_label)
        self.lineage_label = QLabel(summary)
        self.lineage_label.setWordWrap(True)
        form.addRow("Lineage", self.lineage_label)
        tags_row = QHBoxLayout()
        self.tags_edit = QLineEdit(summary)
        self.tags_edit.setObjectName("runTags")
        self.tags_edit.setPlaceholderText("comma-separated tags, e.g. baseline, keep")
        tags_row.addWidget(self.tags_edit, 1)
        form.addRow("Tags", tags_row)
        self.note_edit = QPlainTextEdit(summary)
        self.note_edit.setObjectName("runNote")
        self.note_edit.setPlaceholderText("A note about this run")
        self.note_edit.setMaximumHeight(48)
        form.addRow("Note", self.note_edit)
        self.save_button = QPushButton("Save tags and note", summary)
        self.save_button.setObjectName("saveRunLabels")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._on_save_button_clicked)
        form.addRow(self.save_button)
        # Scrolls rather than pushing the runs table to a few rows when space is short.
        scroller = QScrollArea(self)
        scroller.setWidgetResizable(True)
        scroller.setFrameShape(QScrollArea.Shape.NoFrame)
        scroller.setWidget(summary)
        self.addTab(scroller, "Summary")
        self.recipe_view = QPlainTextEdit(self)
        self.recipe_view.setReadOnly(True)
        self.addTab(self.recipe_view, "Recipe")
        self.log_view = QPlainTextEdit(self)
        self.log_view.setObjectName("runLog")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(20_000)
        self.addTab(self.log_view, "Log")
        self.outputs_view = QPlainTextEdit(self)
        self.outputs_view.setReadOnly(True)
        self.addTab(self.outputs_view, "Outputs")
        self.addTab(self._build_evals_tab(), "Evals")

    def _build_evals_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(0, 0, 0, 0)
        self.evals_table = QTableWidget(0, len(_EVAL_COLUMNS), tab)
        self.evals_table.setObjectName("runEvals")
        self.evals_table.setHorizontalHeaderLabels(list(_EVAL_COLUMNS))
        self.evals_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.evals_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.evals_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.evals_table.verticalHeader().setVisible(False)
        self.evals_table.verticalHeader().setDefaultSectionSize(22)
        self.evals_table.horizontalHeader().setStretchLastSection(True)
        self.evals_table.doubleClicked.connect(self._on_evals_table_double_clicked)
        self.evals_table.itemSelectionChanged.connect(self._on_evals_table_selection_changed)
        layout.addWidget(self.evals_table, 1)
        row = QHBoxLayout()
        self.evals_hint = QLabel(tab)
        self.evals_hint.setStyleSheet("color: gray")
        self.evals_hint.setWordWrap(True)
        row.addWidget(self.evals_hint, 1)
        self.open_eval_button = QPushButton("Open tasks in Eval panel", tab)
        self.open_eval_button.setObjectName("openEvalButton")
        self.open_eval_button.setEnabled(False)
        self.open_eval_button.clicked.connect(self._on_open_eval_button_clicked)
        row.addWidget(self.open_eval_button)
        layout.addLayout(row)
        return tab

    def show_run(self, run: Run) -> None:
        """Show a run: its stored details now, then results, lineage and log as they load."""
        self.run = run
        self.title_label.setText(
            f"<b>Run {run.id}</b> · {run.name} · {run.status.value} · {run.owner}@{run.host}"
            + (f"<br><span style='color:#dc2626'>{run.error}</span>" if run.error else "")
        )
        self.tags_edit.setText(", ".join(run.tags))
        self.note_edit.setPlainText(run.note or "")
        self.save_button.setEnabled(True)
        self.recipe_view.setPlainText(json.dumps(run.recipe, indent=2))
        where = run.output_dir or "(no output folder yet)"
        self.files_label.setText(f"{where} on {run.host}")
        self.log_view.clear()
        self.eval_label.setText("…")
        self.evals_table.setRowCount(0)
        self._log_path = None
        self._log_offset = 0
        self._log_final = run.status.is_terminal
        self._log_timer.stop()
        if self._load is not None:
            self._load.cancel()
        self._load = run_in_thread(_load_detail, self.services, run, on_return=self._on_loaded)

    @safe_slot()
    def _on_loaded(self, detail: _Detail) -> None:
        summary, lineage, versions = detail.summary, detail.lineage, detail.versions
        if self.run is None or detail.run_id != self.run.id:
            return
        r = summary.results

        def num(value: float | None, digits: int = 4) -> str:
            return "-" if value is None else f"{value:.{digits}g}"

        self.results_label.setText(
            f"steps {r.steps or 0}/{summary.run.total_steps or '?'} · final loss "
            f"{num(r.final_loss)} · best eval {num(r.best_eval_loss)} · perplexity "
            f"{num(r.perplexity)} · {num(r.tokens_per_second, 5)} tokens/s · peak "
            f"{num(r.peak_memory_mb, 5)} MB"
        )
        self.lineage_label.setText(
            "  ←  ".join(
                (f"{step.relation} " if step.relation else "")
                + f"run {step.run_id} ({step.status})"
                for step in lineage
            )
        )
        self.outputs_view.setPlainText(
            "\n".join(f"Model version {v.id}: {v.path}" for v in versions)
            or "No model version yet (a run registers one when it finishes)."
        )
        self._show_evaluations(detail.evaluations, has_version=bool(versions))
        log_path = detail.log_path
        self._log_path = log_path
        if log_path is None:
            self.log_view.setPlainText(
                f"The log is on {summary.run.host} "
                f"({summary.run.log_path or summary.run.output_dir or 'its output folder'}); "
                "it is not reachable from this machine."
            )
            return
        self._log_final = summary.run.status.is_terminal
        self._on_log_timer_timeout()
        if not self._log_final:
            self._log_timer.start()

    def update_run(self, run: Run) -> None:
        """Take the shown run's newer state: once it has ended, its log's last line shows.

        Args:
            run: The run as just read (ignored unless it is the one shown).
        """
        if self.run is None or run.id != self.run.id:
            return
        self.run = run
        if run.status.is_terminal and not self._log_final:
            self._log_final = True
            self._on_log_timer_timeout()  # the last read; it stops the timer

    def _show_evaluations(self, evaluations: list[ModelEvaluation], *, has_version: bool) -> None:
        """The summary's eval line (the newest) and the Evals tab (every one, tuned rows)."""
        by_id = {e.id: e for e in evaluations}
        tuned = [e for e in evaluations if e.variant == "tuned"]
        if not tuned:
            how = (
                f"<code>codetune-studio eval {self.run.id if self.run else 'RUN'} --tasks "
                "FILE</code> or the Eval panel"
            )
            self.eval_label.setText(
                f"<span style='color:gray'>not evaluated yet: {how}</span>"
                if has_version
                else "<span style='color:gray'>no model version to evaluate yet</span>"
            )
        else:
            newest = tuned[0]
            self.eval_label.setText(_eval_summary_html(newest, _base_of(newest, by_id)))
        self.evals_table.setRowCount(len(tuned))
        for row, evaluation in enumerate(tuned):
            self._fill_eval_row(row, evaluation, _base_of(evaluation, by_id))
        self.evals_table.resizeColumnsToContents()
        self.evals_hint.setText(
            f"{len(tuned)} evaluation(s) of this run's model; double-click one for its tasks."
            if tuned
            else "Evaluate this run's model in the Eval panel or with `codetune-studio eval`."
        )
        self._on_evals_table_selection_changed()

    def _fill_eval_row(
        self, row: int, evaluation: ModelEvaluation, base: ModelEvaluation | None
    ) -> None:
        tips = {0: evaluation.task_source}
        if base is not None:
            tips[_EVAL_COLUMNS.index("base pass@1")] = (
                f"base: parses {base.parse_rate:.0%}, stopped at EOS {base.eos_rate:.0%}, "
                f"{base.mean_tokens:.0f} tokens on average"
            )
        for column, text in enumerate(_eval_cells(evaluation, base)):
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, evaluation.id)
            if column in tips:
                item.setToolTip(tips[column])
            self.evals_table.setItem(row, column, item)

    def selected_eval_id(self) -> int | None:
        """The evaluation selected in the Evals tab."""
        items = self.evals_table.selectedItems()
        value = items[0].data(Qt.ItemDataRole.UserRole) if items else None
        return int(value) if value is not None else None

    @safe_slot()
    def _on_evals_table_selection_changed(self) -> None:
        self.open_eval_button.setEnabled(self.selected_eval_id() is not None)

    @safe_slot()
    def _on_evals_table_double_clicked(self, *_: Any) -> None:
        self._on_open_eval_button_clicked()

    @safe_slot()
    def _on_open_eval_button_clicked(self) -> None:
        result_id = self.selected_eval_id()
        if result_id is not None:
            self.eval_requested.emit(result_id)

    @safe_slot()
    def _on_eval_label_link_activated(self, link: str) -> None:
        if link.startswith("eval:"):
            self.eval_requested.emit(int(link.removeprefix("eval:")))

    @safe_slot()
    def _on_log_timer_timeout(self) -> None:
        if self._log_path is None or (self._tail is not None and not self._tail.done):
            return
        run_id = self.run.id if self.run is not None else None
        self._tail = run_in_thread(
            _read_log,
            self._log_path,
            self._log_offset,
            run_id,
            self._log_final,
            on_return=self._on_log_read,
        )

    @safe_slot()
    def _on_log_read(self, result: _LogRead) -> None:
        if self.run is None or result.run_id != self.run.id:
            return
        self._log_offset = result.offset
        if result.lines:
            self.log_view.appendPlainText("\n".join(result.lines))
        if result.final:
            self._log_timer.stop()  # the run ended and its log was read to the end
        elif self._log_final:
            self._on_log_timer_timeout()  # it ended while this read was under way

    @safe_slot()
    def _on_save_button_clicked(self) -> None:
        if self.run is None:
            return
        run_id = self.run.id
        tags = [tag.strip() for tag in self.tags_edit.text().split(",")]
        note = self.note_edit.toPlainText()

        def save() -> Run:
            self.services.history.set_tags(run_id, tags)
            return self.services.history.set_note(run_id, note)

        def saved(run: Run) -> None:
            notify.info(f"Saved the tags and note of run {run.id}.")
            self.run_changed.emit()

        run_in_thread(save, on_return=saved)

    def shutdown(self) -> None:
        """Stop tailing the log."""
        self._log_timer.stop()
        for task in (self._load, self._tail):
            if task is not None:
                task.cancel()


@dataclass(frozen=True, slots=True)
class _Detail:
    """What a run's detail reads in the background."""

    run_id: int
    summary: RunSummary
    lineage: list[LineageStep]
    versions: list[ModelVersion]
    evaluations: list[ModelEvaluation]
    log_path: Path | None


def _load_detail(services: StudioServices, run: Run) -> _Detail:
    history = services.history
    summary = history.get_summary(run.id)
    return _Detail(
        run_id=run.id,
        summary=summary,
        lineage=history.run_lineage(run.id),
        versions=services.experiments.list_model_versions(run_id=run.id),
        evaluations=history.evaluations(run.id),
        log_path=history.log_file(summary.run),
    )


def _base_of(
    evaluation: ModelEvaluation, by_id: dict[int | None, ModelEvaluation]
) -> ModelEvaluation | None:
    """The base evaluated alongside ``evaluation``, when it was."""
    return by_id.get(evaluation.base_result_id) if evaluation.base_result_id else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _top_k(evaluation: ModelEvaluation) -> tuple[int, float | None]:
    k = max(evaluation.pass_at_k, default=1)
    return k, evaluation.pass_at_k.get(k)


def _when(evaluation: ModelEvaluation) -> str:
    created = evaluation.created_at
    return created.astimezone().strftime("%Y-%m-%d %H:%M") if created else "-"


def _eval_summary_html(evaluation: ModelEvaluation, base: ModelEvaluation | None) -> str:
    """Two lines no wider than the results line: scores against the base; tasks, when, link."""
    k, at_k = _top_k(evaluation)
    scores = f"<b>pass@1 {_pct(evaluation.pass_at_1)}</b>"
    if base is not None:
        delta = (evaluation.pass_at_1 - base.pass_at_1) * 100
        color = "#16a34a" if delta > 0 else "#dc2626" if delta < 0 else "gray"
        shown = f"<span style='color:{color}'>{delta:+.1f}</span>"
        scores += f" (base {_pct(base.pass_at_1)}, {shown})"
    if k > 1:
        scores += f" · pass@{k} {_pct(at_k)}"
    scores += f" · parses {evaluation.parse_rate:.0%} · EOS {evaluation.eos_rate:.0%}"
    where = (
        f"{evaluation.num_tasks} tasks x {evaluation.samples_per_task} from "
        f"{html.escape(Path(evaluation.task_source).name)}, {_when(evaluation)} · "
        f"<a href='eval:{evaluation.id}'>open tasks</a>"
    )
    return f"{scores}<br>{where}"


def _eval_cells(evaluation: ModelEvaluation, base: ModelEvaluation | None) -> list[str]:
    k, at_k = _top_k(evaluation)
    delta = f"{(evaluation.pass_at_1 - base.pass_at_1) * 100:+.1f}" if base is not None else "-"
    return [
        str(evaluation.id),
        _when(evaluation),
        f"v{evaluation.model_version_id}" if evaluation.model_version_id else "-",
        Path(evaluation.task_source).name,
        f"{evaluation.num_tasks}x{evaluation.samples_per_task}",
        _pct(evaluation.pass_at_1),
        f"{_pct(at_k)} (k={k})",
        _pct(base.pass_at_1) if base is not None else "-",
        delta,
        _pct(evaluation.parse_rate),
        _pct(evaluation.eos_rate),
    ]


@dataclass(frozen=True, slots=True)
class _LogRead:
    """What one read of a run's log brought: the run, where to go on from, the new lines."""

    run_id: int | None
    offset: int
    lines: list[str]
    final: bool  # read to the very end, a last line without its newline included


def _read_log(path: Path, offset: int, run_id: int | None, final: bool) -> _LogRead:
    """New lines of a log since ``offset``, tagged with the run they belong to."""
    new_offset, lines = read_log_increment(path, offset, first_bytes=_LOG_TAIL_BYTES, final=final)
    return _LogRead(run_id, new_offset, lines, final)
