"""The Eval panel: run code evaluations and drill into stored ones, task by task.

The left list holds the stored evaluations (pass@1, parse rate, EOS share). Selecting one fills
the tree with its tasks (how many samples passed) and their samples; selecting a sample shows
the prompt, the answer, the program's test output and the analyzer's findings. Run evaluates the
chosen model (and its base) on a task file in the background: generation in a child process,
each sample in the sandbox.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.generation import GenerationParams
from codetune_studio.ui import notify
from codetune_studio.ui.code_highlight import PythonHighlighter
from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.panels.playground import ModelPicker
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from codetune_studio.core.evaluation import ModelEvaluation, SampleOutcome, TaskOutcome
    from codetune_studio.services.evaluation import EvalProgress, EvalService
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.services.generation import ResolvedModel

__all__ = ["EvalPanel"]

logger = logging.getLogger(__name__)

_COLUMNS = ("id", "model", "variant", "tasks", "n", "pass@1", "parse", "EOS")


class EvalPanel(Panel):
    """Runs code evaluations and shows stored ones with a per-task drill-down.

    Args:
        evaluations: Runs and stores evaluations.
        experiments: Lists model versions for the picker.
        resolve: Turns the picker's value into a model (called off the GUI thread).
        default_tasks: The task file offered first (the bundled held-out set).
        parent: The Qt parent.
    """

    panel_id = "evaluation"
    title = "Eval"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    evaluation_finished = Signal()
    results_loaded = Signal()
    result_shown = Signal()

    def __init__(
        self,
        evaluations: EvalService,
        experiments: ExperimentService,
        resolve: Callable[[str], ResolvedModel],
        default_tasks: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._evaluations = evaluations
        self._resolve = resolve
        self._run: TaskHandle | None = None
        self._load: TaskHandle | None = None
        self._drill: TaskHandle | None = None
        self._shown: ModelEvaluation | None = None
        self.picker = ModelPicker(experiments, self)
        self._build_ui(default_tasks)
        self._connect_signals()
        self._update_buttons()

    def _build_ui(self, default_tasks: Path | None) -> None:
        self.tasks_edit = QLineEdit(str(default_tasks or ""), self)
        self.tasks_edit.setMinimumWidth(160)
        self.tasks_edit.setPlaceholderText("task file (JSONL)")
        self.browse_button = QPushButton("…", self)
        self.samples = QSpinBox(self)
        self.samples.setRange(1, 200)
        self.temperature = QDoubleSpinBox(self)
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.compare_check = QCheckBox("Compare with base", self)
        self.compare_check.setChecked(True)
        self.run_button = QPushButton("Run eval", self)
        self.stop_button = QPushButton("Stop", self)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)  # error messages are long sentences
        # Two rows, and the code under the task list rather than beside it: in one row, with three
        # panes side by side, the panel was wider than the centre of the window at 1600x1000, so
        # Run eval and the sample's code sat off screen behind a scroll bar.
        tasks_row = QHBoxLayout()
        row_widgets: tuple[QWidget, ...] = (
            QLabel("Tasks:", self), self.tasks_edit, self.browse_button, self.compare_check
        )  # fmt: skip
        for widget in row_widgets:
            tasks_row.addWidget(widget)
        tasks_row.setStretch(1, 1)
        controls = QHBoxLayout()
        row_widgets = (QLabel("Samples:", self), self.samples, QLabel("Temperature:", self),
                       self.temperature)  # fmt: skip
        for widget in row_widgets:
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(self.run_button)
        controls.addWidget(self.stop_button)
        self.results = QTableWidget(0, len(_COLUMNS), self)
        self.results.setObjectName("evalResults")
        self.results.setHorizontalHeaderLabels(list(_COLUMNS))
        self.results.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.verticalHeader().setVisible(False)
        self.results.horizontalHeader().setStretchLastSection(True)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("evalTasks")
        self.tree.setHeaderLabels(["task / sample", "result", "stop", "tokens"])
        self.tree.setColumnWidth(0, 200)
        self.detail = QPlainTextEdit(self)
        self.detail.setReadOnly(True)
        font = QFont("Monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        self.detail.setFont(font)
        self._highlighter = PythonHighlighter(self.detail.document())
        drill_down = QSplitter(Qt.Orientation.Horizontal, self)
        drill_down.addWidget(self.tree)
        drill_down.addWidget(self.detail)
        drill_down.setStretchFactor(0, 2)
        drill_down.setStretchFactor(1, 3)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.results)
        split.addWidget(drill_down)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picker)
        layout.addLayout(tasks_row)
        layout.addLayout(controls)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.status, 2)
        layout.addLayout(progress_row)
        layout.addWidget(split, 1)

    def _connect_signals(self) -> None:
        self.run_button.clicked.connect(self._on_run_button_clicked)
        self.stop_button.clicked.connect(self._on_stop_button_clicked)
        self.browse_button.clicked.connect(self._on_browse_button_clicked)
        self.results.itemSelectionChanged.connect(self._on_results_item_selection_changed)
        self.tree.currentItemChanged.connect(self._on_tree_current_item_changed)
        self.picker.changed.connect(lambda _v: self._update_buttons())
        self.picker.refresh_button.clicked.connect(self.reload_results)

    # --- public -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether an evaluation is in progress."""
        return self._run is not None and not self._run.done

    def refresh(self) -> None:
        """Reload the model versions and the stored evaluations in the background."""
        self.picker.refresh()
        self.reload_results()

    def reload_results(self) -> None:
        """Reload the stored evaluations (others may have added some from the CLI)."""
        if self._load is not None:
            self._load.cancel()
        self._load = run_in_thread(self._evaluations.list_results, on_return=self._show_results)

    def show_result(self, result_id: int) -> None:
        """Drill into one stored evaluation (a run's detail asks for it), read off the GUI thread.

        Its row is selected when the list holds it; the tasks and samples fill the tree.
        """
        row = self._row_of(result_id)
        if row is not None:
            self._select_row_quietly(row)
        # Its own handle: showing the panel reloads the list, which must not cancel this.
        if self._drill is not None:
            self._drill.cancel()
        self._drill = run_in_thread(
            self._evaluations.get_result, result_id, on_return=self._show_detail
        )

    def _select_row_quietly(self, row: int) -> None:
        self.results.blockSignals(True)
        self.results.selectRow(row)
        self.results.blockSignals(False)

    def _row_of(self, result_id: int) -> int | None:
        for row in range(self.results.rowCount()):
            item = self.results.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == result_id:
                return row
        return None

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self.running:
            self.reload_results()

    def start(self) -> None:
        """Evaluate the chosen model on the task file in the background."""
        model = self.picker.value()
        tasks = self.tasks_edit.text().strip()
        if not model or not tasks or self.running:
            return
        temperature = self.temperature.value()
        params = GenerationParams(max_new_tokens=384, temperature=temperature, seed=0)
        self._run = run_in_thread(
            self._evaluate,
            model,
            Path(tasks),
            self.samples.value(),
            params,
            self.compare_check.isChecked(),
            on_yield=self._on_progress,
            on_return=self._on_evaluated,
            on_error=self._on_failed,
            on_finish=self._on_run_finish,
        )
        self.status.setText("Starting…")
        self._update_buttons()

    def shutdown(self) -> None:
        self.picker.shutdown()
        for task in (self._run, self._load, self._drill):
            if task is not None:
                task.cancel()

    # --- work (on a pool thread) --------------------------------------------------------------

    def _evaluate(
        self,
        model: str,
        tasks_file: Path,
        samples: int,
        params: GenerationParams,
        compare: bool,
    ) -> Generator[EvalProgress, None, list[ModelEvaluation]]:
        from codetune_studio.services.evaluation import load_tasks

        resolved = self._resolve(model)
        tasks = load_tasks(tasks_file)
        return (
            yield from self._evaluations.evaluate(
                resolved,
                tasks,
                task_source=str(tasks_file),
                samples=samples,
                params=params,
                compare_base=compare and resolved.adapter is not None,
            )
        )

    # --- slots --------------------------------------------------------------------------------

    def _update_buttons(self) -> None:
        running = self.running
        self.run_button.setEnabled(not running and bool(self.picker.value()))
        self.stop_button.setEnabled(running)

    def _on_progress(self, progress: EvalProgress) -> None:
        self.progress.setMaximum(max(progress.total, 1))
        self.progress.setValue(progress.done)
        self.status.setText(progress.message)

    def _on_evaluated(self, evaluations: list[ModelEvaluation]) -> None:
        summary = ", ".join(f"{e.label}: pass@1 {e.pass_at_1:.0%}" for e in evaluations)
        self.status.setText(summary)
        self.refresh()
        if evaluations:
            self._show_detail(evaluations[0])
        self.evaluation_finished.emit()

    def _on_failed(self, exc: BaseException) -> None:
        self.status.setText(f"Eval failed: {exc}")
        notify.error(exc)

    def _on_run_finish(self) -> None:
        self._update_buttons()

    @safe_slot()
    def _on_run_button_clicked(self) -> None:
        self.start()

    @safe_slot()
    def _on_stop_button_clicked(self) -> None:
        if self._run is not None:
            self._run.cancel()
            self.status.setText("Stopped.")

    @safe_slot()
    def _on_browse_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Task file", "", "JSONL (*.jsonl)")
        if path:
            self.tasks_edit.setText(path)

    def _show_results(self, results: list[ModelEvaluation]) -> None:
        self.results.setRowCount(len(results))
        for row, result in enumerate(results):
            values: list[Any] = [
                result.id, result.label, result.variant, result.num_tasks,
                result.samples_per_task, f"{result.pass_at_1:.1%}", f"{result.parse_rate:.0%}",
                f"{result.eos_rate:.0%}",
            ]  # fmt: skip
            for column, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                item.setData(Qt.ItemDataRole.UserRole, result.id)
                self.results.setItem(row, column, item)
        self.results.resizeColumnsToContents()
        shown_id = self._shown.id if self._shown is not None else None
        shown = self._row_of(shown_id) if shown_id is not None else None
        if shown is not None:
            self._select_row_quietly(shown)
        self.results_loaded.emit()

    @safe_slot()
    def _on_results_item_selection_changed(self) -> None:
        items = self.results.selectedItems()
        if not items:
            return
        result_id = items[0].data(Qt.ItemDataRole.UserRole)
        if self._load is not None:
            self._load.cancel()
        self._load = run_in_thread(
            self._evaluations.get_result, int(result_id), on_return=self._show_detail
        )

    def _show_detail(self, evaluation: ModelEvaluation) -> None:
        self._shown = evaluation
        self.tree.clear()
        for task in evaluation.tasks:
            parent = QTreeWidgetItem(
                [task.task_id, f"{task.passed}/{len(task.samples)} passed", "", ""]
            )
            parent.setData(0, Qt.ItemDataRole.UserRole, (task, None))
            for sample in task.samples:
                child = QTreeWidgetItem(
                    [f"sample {sample.sample}", sample.reason, sample.stop_reason,
                     str(sample.tokens)]
                )  # fmt: skip
                child.setData(0, Qt.ItemDataRole.UserRole, (task, sample))
                parent.addChild(child)
            self.tree.addTopLevelItem(parent)
        self.tree.expandAll()
        self.result_shown.emit()

    @safe_slot()
    def _on_tree_current_item_changed(self, current: QTreeWidgetItem | None, *_: Any) -> None:
        if current is None:
            return
        task, sample = current.data(0, Qt.ItemDataRole.UserRole)
        self.detail.setPlainText(_describe(task, sample))


def _describe(task: TaskOutcome, sample: SampleOutcome | None) -> str:
    lines = [
        f"# task {task.task_id}",
        "# prompt:",
        *(f"#   {line}" for line in task.prompt.splitlines()),
    ]
    if sample is None:
        lines += ["", "# tests:", task.tests]
        return "\n".join(lines)
    lines += [
        f"# sample {sample.sample}: {sample.reason} (stopped: {sample.stop_reason}, "
        f"{sample.tokens} tokens, parses: {'yes' if sample.parsed else 'no'})",
        "",
        sample.code or sample.completion,
        "# --- test output ---",
        *(f"# {line}" for line in (sample.output or "(none)").splitlines()),
    ]
    if sample.findings:
        lines.append("# --- analyzer findings ---")
        lines += [f"# line {f.line}: [{f.rule}] {f.message}" for f in sample.findings]
    return "\n".join(lines)
