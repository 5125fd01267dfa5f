"""The Queue panel: queued runs in order, reorder and remove, sweeps, and draining the queue here.

The queue lives in the database (QUEUED runs), so it survives a restart and is shared with
teammates on the same PostgreSQL. The panel shows the QUEUED runs the runs view loads (no query
of its own); "Run queue" starts ``codetune-studio queue run`` as a child process, which trains
them one after another (past failures) and records every run like any other.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.child_cmd import python_module_command
from codetune_studio.core.child_env import child_environment
from codetune_studio.core.comparison import METRIC_NAMES
from codetune_studio.core.errors import ConfigError
from codetune_studio.core.status import RunStatus
from codetune_studio.ui import notify
from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.core.models import Run
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.services.sweeps import SweepVariant
    from codetune_studio.ui.studio_services import StudioServices

__all__ = ["QueuePanel", "SweepDialog"]

logger = logging.getLogger(__name__)

_STOP_GRACE_MS = 60_000


class QueuePanel(Panel):
    """Queued runs, sweeps, and a queue runner on this machine.

    Args:
        services: The studio's services.
        current_recipe: The Parameters panel's recipe (``None`` while it has errors).
        parent: The Qt parent.
    """

    panel_id = "queue"
    title = "Queue"
    default_area = Qt.DockWidgetArea.RightDockWidgetArea
    queue_changed = Signal()  # something was queued, moved or removed
    sweep_queued = Signal(str, list, str)  # sweep id, run ids, the metric that picks the best

    def __init__(
        self,
        services: StudioServices,
        current_recipe: Callable[[], TrainingRecipe | None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self._current_recipe = current_recipe
        self.queued: list[Run] = []
        self.runner: QProcess | None = None
        self._build_ui()
        self._connect_signals()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, 4, self)
        self.table.setObjectName("queueTable")
        self.table.setHorizontalHeaderLabels(["ID", "Name", "Owner", "Sweep"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(True)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        order = QHBoxLayout()
        self.up_button = QPushButton("Move up", self)
        self.down_button = QPushButton("Move down", self)
        self.remove_button = QPushButton("Remove", self)
        for button in (self.up_button, self.down_button, self.remove_button):
            order.addWidget(button)
        layout.addLayout(order)
        add = QHBoxLayout()
        self.add_button = QPushButton("Queue current recipe", self)
        self.add_button.setObjectName("queueAddButton")
        self.sweep_button = QPushButton("Sweep…", self)
        self.sweep_button.setObjectName("queueSweepButton")
        add.addWidget(self.add_button)
        add.addWidget(self.sweep_button)
        layout.addLayout(add)
        run = QHBoxLayout()
        self.run_button = QPushButton("Run queue here", self)
        self.run_button.setObjectName("queueRunButton")
        self.run_button.setToolTip("Train the queued runs one after another on this machine")
        self.status_label = QLabel("Queue runner: idle", self)
        self.status_label.setStyleSheet("color: gray")
        run.addWidget(self.run_button)
        run.addWidget(self.status_label, 1)
        layout.addLayout(run)

    def _connect_signals(self) -> None:
        self.up_button.clicked.connect(self._on_up_button_clicked)
        self.down_button.clicked.connect(self._on_down_button_clicked)
        self.remove_button.clicked.connect(self._on_remove_button_clicked)
        self.add_button.clicked.connect(self._on_add_button_clicked)
        self.sweep_button.clicked.connect(self._on_sweep_button_clicked)
        self.run_button.clicked.connect(self._on_run_button_clicked)

    # --- showing ------------------------------------------------------------------------------

    def set_runs(self, runs: list[Run]) -> None:
        """Show the QUEUED runs among ``runs`` (as the runs view loaded them), in queue order."""
        queued = sorted(
            (run for run in runs if run.status is RunStatus.QUEUED),
            key=lambda run: (run.queue_position or 0, run.id),
        )
        if [(r.id, r.queue_position) for r in queued] == [
            (r.id, r.queue_position) for r in self.queued
        ]:
            return
        selected = self.selected_run_id()
        self.queued = queued
        self.table.setRowCount(len(queued))
        for row, run in enumerate(queued):
            cells = [str(run.id), run.name, run.owner, run.sweep_id or ""]
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
            if run.id == selected:
                self.table.selectRow(row)

    def selected_run_id(self) -> int | None:
        """The queued run selected in the table."""
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.queued):
            return None
        return self.queued[rows[0].row()].id

    # --- queue edits (each one database call, off the GUI thread) -----------------------------

    def _after(self, message: str) -> Callable[[Any], None]:
        def done(_: Any) -> None:
            if message:
                notify.info(message)
            self.queue_changed.emit()

        return done

    def _move(self, delta: int) -> None:
        run_id = self.selected_run_id()
        if run_id is None:
            return
        index = [run.id for run in self.queued].index(run_id) + delta
        run_in_thread(self.services.queue.move, run_id, max(0, index), on_return=self._after(""))

    @safe_slot()
    def _on_up_button_clicked(self) -> None:
        self._move(-1)

    @safe_slot()
    def _on_down_button_clicked(self) -> None:
        self._move(+1)

    @safe_slot()
    def _on_remove_button_clicked(self) -> None:
        run_id = self.selected_run_id()
        if run_id is not None:
            run_in_thread(
                self.services.queue.remove,
                run_id,
                on_return=self._after(f"Removed run {run_id} from the queue."),
            )

    @safe_slot()
    def _on_add_button_clicked(self) -> None:
        self.queue_recipe(self._current_recipe())

    def queue_recipe(
        self, recipe: TrainingRecipe | None, *, parent_run_id: int | None = None
    ) -> None:
        """Queue a recipe (off the GUI thread).

        Raises:
            ConfigError: If there is no valid recipe.
        """
        if recipe is None:
            raise ConfigError("The parameters have errors; fix the fields marked in red first.")
        run_in_thread(
            self.services.queue.add,
            recipe,
            parent_run_id=parent_run_id,
            on_return=lambda run: self._after(f"Queued run {run.id} ({run.name}).")(run),
        )

    @safe_slot()
    def _on_sweep_button_clicked(self) -> None:
        recipe = self._current_recipe()
        if recipe is None:
            raise ConfigError("The parameters have errors; fix the fields marked in red first.")
        dialog = SweepDialog(recipe, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.sweep_chosen.connect(
            lambda name, variants, metric: self.queue_sweep(
                recipe, variants, name=name or None, metric=metric
            )
        )
        dialog.open()

    def queue_sweep(
        self,
        recipe: TrainingRecipe,
        variants: list[SweepVariant],
        *,
        name: str | None = None,
        metric: str = "eval_loss",
    ) -> None:
        """Queue a sweep's variants as one group (off the GUI thread).

        Args:
            recipe: The base recipe.
            variants: The sweep's points.
            name: What the runs are called (``NAME [field=value ...]``); the recipe's name by
                default.
            metric: The metric that marks the sweep's best run when it is compared.
        """
        from codetune_studio.services.sweeps import queue_sweep

        def queued(sweep: Any) -> None:
            notify.info(f"Queued sweep {sweep.sweep_id} with {len(sweep.runs)} runs.")
            self.queue_changed.emit()
            self.sweep_queued.emit(sweep.sweep_id, [run.id for run in sweep.runs], metric)

        run_in_thread(
            queue_sweep, self.services.queue, recipe, variants, name=name, on_return=queued
        )

    # --- the queue runner ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether this window's queue runner is draining the queue."""
        return self.runner is not None and self.runner.state() != QProcess.ProcessState.NotRunning

    @safe_slot()
    def _on_run_button_clicked(self) -> None:
        if self.running:
            self.stop_runner()
        else:
            self.start_runner()

    def start_runner(self) -> None:
        """Start ``codetune-studio queue run`` for this studio's database and folders."""
        argv = python_module_command(
            "codetune_studio", "--data-dir", str(self.services.paths.data_dir), "queue", "run"
        )
        extra = {"PYTHONUNBUFFERED": "1"}
        if self.services.database_url:
            # In the environment, never on the command line, where `ps` would show a password.
            extra["CODETUNE_DATABASE_URL"] = self.services.database_url
        if self.services.offline:
            extra["CODETUNE_OFFLINE"] = "1"
        environment = QProcessEnvironment()
        for name, value in child_environment(extra).items():
            environment.insert(name, value)
        process = QProcess(self)
        process.setProcessEnvironment(environment)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._on_runner_output)
        process.finished.connect(self._on_runner_finished)
        self.runner = process
        process.start(argv[0], argv[1:])
        self.run_button.setText("Stop queue")
        self.status_label.setText("Queue runner: starting…")

    def stop_runner(self) -> None:
        """Ask the runner to stop: its current run checkpoints; killed after a grace period."""
        process = self.runner
        if process is None or not self.running:
            return
        pid = process.processId()
        if pid:
            import os

            os.kill(pid, signal.SIGINT)
        self.status_label.setText("Queue runner: stopping after a checkpoint…")
        QTimer.singleShot(_STOP_GRACE_MS, self._kill_runner)

    def _kill_runner(self) -> None:
        if self.runner is not None and self.running:
            self.runner.kill()

    @safe_slot()
    def _on_runner_output(self) -> None:
        if self.runner is None:
            return
        text = bytes(self.runner.readAllStandardOutput().data()).decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            self.status_label.setText("Queue runner: " + lines[-1][:120])
            self.queue_changed.emit()

    @safe_slot()
    def _on_runner_finished(self, exit_code: int, _status: Any) -> None:
        self.run_button.setText("Run queue here")
        self.status_label.setText(f"Queue runner: done (exit status {exit_code})")
        self.queue_changed.emit()

    def shutdown(self) -> None:
        """Stop the queue runner: its current run checkpoints (resumable) and ends CANCELLED."""
        if self.runner is None or not self.running:
            return
        self.stop_runner()
        if not self.runner.waitForFinished(_STOP_GRACE_MS):
            self.runner.kill()
            self.runner.waitForFinished(5000)


class SweepDialog(QDialog):
    """Asks for a grid (one ``field=v1,v2`` per line) and an optional seeded random sample.

    Args:
        recipe: The base recipe.
        parent: The Qt parent.
    """

    # The sweep's name ("": the recipe's), list[SweepVariant], the metric that picks the best.
    sweep_chosen = Signal(str, list, str)

    def __init__(self, recipe: TrainingRecipe, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sweepDialog")
        self.setWindowTitle("New sweep")
        self.recipe = recipe
        form = QFormLayout(self)
        self.grid_edit = QPlainTextEdit(self)
        self.grid_edit.setPlaceholderText("training.learning_rate=1e-4,3e-4\nlora.r=8,16")
        form.addRow("Grid (one field per line)", self.grid_edit)
        self.sample_spin = QSpinBox(self)
        self.sample_spin.setRange(0, 1000)
        self.sample_spin.setSpecialValueText("all combinations")
        form.addRow("Random sample", self.sample_spin)
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed_spin)
        self.name_edit = QLineEdit(recipe.name or "", self)
        form.addRow("Name", self.name_edit)
        self.metric_combo = QComboBox(self)
        self.metric_combo.setObjectName("sweepMetric")
        self.metric_combo.addItems(METRIC_NAMES)
        self.metric_combo.setCurrentText("eval_loss")
        self.metric_combo.setToolTip(
            "The metric that marks the best run when the sweep's runs are compared"
        )
        form.addRow("Best by", self.metric_combo)
        self.error_label = QLabel(self)
        self.error_label.setStyleSheet("color: #dc2626")
        self.error_label.setWordWrap(True)
        form.addRow(self.error_label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self._on_buttons_accepted)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def variants(self) -> list[SweepVariant]:
        """The sweep the form describes.

        Raises:
            ConfigError: If a line or a value is invalid.
        """
        from codetune_studio.services.sweeps import expand_sweep, parse_grid

        lines = [line.strip() for line in self.grid_edit.toPlainText().splitlines()]
        recipe = self.recipe
        if name := self.sweep_name():
            recipe = recipe.model_copy(update={"name": name})
        sample = self.sample_spin.value() or None
        return expand_sweep(
            recipe,
            parse_grid([line for line in lines if line]),
            sample=sample,
            seed=self.seed_spin.value(),
        )

    def sweep_name(self) -> str:
        """The name typed for the sweep ("" when the field is empty)."""
        return self.name_edit.text().strip()

    @safe_slot()
    def _on_buttons_accepted(self) -> None:
        try:
            variants = self.variants()
        except ConfigError as exc:
            self.error_label.setText(str(exc))
            return
        self.sweep_chosen.emit(self.sweep_name(), variants, self.metric_combo.currentText())
        self.accept()
