"""The studio's main window: docked panels around the runs table, menus, status bar, run hosting."""

from __future__ import annotations

import html
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QEvent, QEventLoop, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.errors import ConfigError, TrainingError
from codetune_studio.core.status import RunStatus
from codetune_studio.services.device import DeviceInfo, detect_device
from codetune_studio.services.runs import StaleRun, find_stale_runs, mark_lost_run_failed
from codetune_studio.services.training import RECIPE_SNAPSHOT
from codetune_studio.ui import notify
from codetune_studio.ui.panels.datasets import DatasetsPanel
from codetune_studio.ui.panels.monitor import MonitorPanel
from codetune_studio.ui.panels.parameters import ParametersPanel
from codetune_studio.ui.panels.plugins import PluginsPanel
from codetune_studio.ui.run_host import RunController, RunHost, RunOutcome
from codetune_studio.ui.runs_model import RunsTableModel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.studio_services import StudioServices
from codetune_studio.ui.tasks import TaskHandle, run_in_thread, wait_for_tasks

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.core.events import Event
    from codetune_studio.core.models import Run
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.settings import AppSettings, SettingsStore
    from codetune_studio.ui.panels.base import Panel

__all__ = ["CloseChoice", "MainWindow", "StudioServices"]

logger = logging.getLogger(__name__)

_STATE_VERSION = 1
_RUNS_REFRESH_MS = 3000


class CloseChoice:
    """What to do with a running run when the window closes."""

    LEAVE = "leave"
    STOP = "stop"
    CANCEL = "cancel"


class MainWindow(QMainWindow):
    """The studio window.

    Args:
        services: What the panels need (inject fakes or real services on a temporary SQLite).
        settings_store: The settings file (the Settings dialog edits it).
        parent: The Qt parent.
        detect_device: Look up the training device in the background (tests may skip it).
        stop_grace_s: How long a stopping worker gets before it is terminated.
    """

    run_started = Signal(int)
    run_ended = Signal(object)  # RunOutcome
    first_frame_shown = Signal()  # the window is on screen; deferred parts are being built

    def __init__(
        self,
        services: StudioServices,
        settings_store: SettingsStore,
        parent: QWidget | None = None,
        *,
        detect_device: bool = True,
        stop_grace_s: float = 30.0,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.settings_store = settings_store
        self.stop_grace_s = stop_grace_s
        self.device: DeviceInfo | None = None
        self.controllers: dict[int, RunController] = {}
        #: Asks what to do with running runs on close; tests replace it.
        self.ask_close_choice: Callable[[], str] = self._ask_close_choice
        self._runs_task: TaskHandle | None = None
        self._announced_active = False
        self._closing = False
        self._layout_restored = False
        self._shown_once = False
        self._first_frame_done = False
        #: Runs still RUNNING in the database whose worker stopped reporting, by id.
        self.lost_runs: dict[int, StaleRun] = {}
        #: Asks before deleting a run; tests replace it.
        self.confirm_delete: Callable[[Run], bool] = self._confirm_delete
        self.setObjectName("mainWindow")
        self.setWindowTitle("CodeTune Studio")
        self.setAcceptDrops(True)
        self.setDockOptions(
            QMainWindow.DockOption.AllowTabbedDocks
            | QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AnimatedDocks
        )
        self._qsettings = QSettings(
            str(services.paths.config_dir / "window.ini"), QSettings.Format.IniFormat
        )
        self._build_ui()
        self._connect_signals()
        notify.install(self)
        self._default_state = self.saveState(_STATE_VERSION)
        self._restore_layout()
        self.refresh_runs()
        self._runs_timer.start()
        if detect_device:
            run_in_thread(detect_device_task, on_return=self._on_device_detected)

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        # A first start fills most of the screen; later starts restore the saved geometry.
        available = QGuiApplication.primaryScreen().availableGeometry()
        width = min(1600, int(available.width() * 0.94))
        height = min(1050, int(available.height() * 0.94))
        self.resize(width, height)
        self.move(
            available.x() + (available.width() - width) // 2,
            available.y() + (available.height() - height) // 2,
        )
        self.datasets_panel = DatasetsPanel(
            self.services.experiments,
            self.services.resources / "datasets",
            self,
            data_dir=self.services.paths.data_dir,
        )
        self.parameters_panel = ParametersPanel(
            self.services.experiments, self.services.resources / "recipes", self
        )
        self.monitor_panel = MonitorPanel(self.services.experiments, self)
        self.plugins_panel = PluginsPanel(
            self.services.plugins,
            parent=self,
            analysis=self.services.analysis,
            settings_store=self.settings_store,
            selected_dataset=lambda: self.datasets_panel.current_path,
        )
        self.panels: list[Panel] = [
            self.datasets_panel,
            self.parameters_panel,
            self.monitor_panel,
            self.plugins_panel,
        ]
        self.docks: dict[str, QDockWidget] = {}
        for panel in self.panels:
            dock = QDockWidget(panel.title, self)
            dock.setObjectName(f"{panel.panel_id}Dock")
            dock.setWidget(panel)
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
            )
            self.docks[panel.panel_id] = dock
        self.setCentralWidget(self._build_central())
        self._apply_default_layout()
        self._build_menus()
        self._build_status_bar()
        self._runs_timer = QTimer(self)
        self._runs_timer.setInterval(_RUNS_REFRESH_MS)

    def _build_central(self) -> QWidget:
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        header = QHBoxLayout()
        title = QLabel("Runs", central)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        title.setFont(font)
        header.addWidget(title)
        self.runs_summary = QLabel(central)
        self.runs_summary.setStyleSheet("color: gray")
        header.addWidget(self.runs_summary, 1)
        self.train_button = QPushButton("▶  Train", central)
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
        self.runs_model = RunsTableModel(self)
        self.runs_table = QTableView(central)
        self.runs_table.setObjectName("runsTable")
        self.runs_table.setModel(self.runs_model)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs_table.setAlternatingRowColors(True)
        self.runs_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.runs_table.verticalHeader().setVisible(False)
        self.runs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header_view = self.runs_table.horizontalHeader()
        header_view.setStretchLastSection(True)
        header_view.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((50, 200, 90, 110, 170, 80, 110, 130, 80)):
            self.runs_table.setColumnWidth(column, width)
        self.runs_empty = QLabel(
            "<h3>No runs yet</h3><p>1. Pick a dataset on the left (the bundled samples work "
            "offline).<br>2. Choose a preset and a model on the right.<br>3. Press "
            "<b>Train</b> and watch the curves below.</p>",
            central,
        )
        self.runs_empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.runs_empty.setStyleSheet("color: gray")
        self.runs_stack = QStackedWidget(central)
        self.runs_stack.addWidget(self.runs_empty)
        self.runs_stack.addWidget(self.runs_table)
        layout.addWidget(self.runs_stack, 1)
        return central

    def _apply_default_layout(self) -> None:
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        for panel in self.panels:
            dock = self.docks[panel.panel_id]
            dock.setFloating(False)
            dock.show()
            self.addDockWidget(panel.default_area, dock)
        self.tabifyDockWidget(self.docks["parameters"], self.docks["plugins"])
        self.docks["parameters"].raise_()
        self._apply_default_sizes()

    def _apply_default_sizes(self) -> None:
        width = max(self.width(), 1200)
        self.resizeDocks(
            [self.docks["datasets"], self.docks["parameters"]],
            [int(width * 0.27), int(width * 0.30)],
            Qt.Orientation.Horizontal,
        )
        self.resizeDocks(
            [self.docks["monitor"]], [int(max(self.height(), 800) * 0.48)], Qt.Orientation.Vertical
        )

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_dataset_action = self._action(
            file_menu,
            "Open dataset…",
            self._on_open_dataset_triggered,
            QKeySequence.StandardKey.Open,
        )
        self.open_recipe_action = self._action(
            file_menu, "Open recipe…", self._on_open_recipe_triggered
        )
        self.save_recipe_action = self._action(
            file_menu, "Save recipe", self._on_save_recipe_triggered, QKeySequence.StandardKey.Save
        )
        self.export_recipe_action = self._action(
            file_menu, "Export recipe as YAML…", self._on_export_recipe_triggered
        )
        file_menu.addSeparator()
        self.settings_action = self._action(
            file_menu,
            "Settings…",
            self._on_settings_triggered,
            QKeySequence.StandardKey.Preferences,
        )
        file_menu.addSeparator()
        self.quit_action = self._action(
            file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit
        )

        run_menu = bar.addMenu("&Run")
        self.train_action = self._action(run_menu, "Train", self._on_train_triggered, "Ctrl+Return")
        self.stop_action = self._action(run_menu, "Stop", self._on_stop_triggered, "Ctrl+.")
        self.pause_action = self._action(
            run_menu, "Pause / Resume", self._on_pause_triggered, "Ctrl+P"
        )
        self.resume_checkpoint_action = self._action(
            run_menu, "Resume from checkpoint…", self._on_resume_checkpoint_triggered
        )
        run_menu.addSeparator()
        self.follow_action = self._action(
            run_menu, "Follow selected run", self._on_follow_triggered
        )
        self.refresh_runs_action = self._action(run_menu, "Refresh runs", self.refresh_runs, "F5")

        view_menu = bar.addMenu("&View")
        self.dock_actions: dict[str, QAction] = {}
        for panel_id, dock in self.docks.items():
            action = dock.toggleViewAction()
            action.setObjectName(f"toggle_{panel_id}")
            view_menu.addAction(action)
            self.dock_actions[panel_id] = action
        view_menu.addSeparator()
        self.reset_layout_action = self._action(view_menu, "Reset layout", self.reset_layout)

        help_menu = bar.addMenu("&Help")
        self.docs_action = self._action(
            help_menu,
            "Documentation",
            self._on_docs_triggered,
            QKeySequence.StandardKey.HelpContents,
        )
        self.about_action = self._action(
            help_menu, "About CodeTune Studio", self._on_about_triggered
        )
        self._update_run_actions()

    def _action(
        self,
        menu: QMenu,
        text: str,
        slot: Callable[[], Any],
        shortcut: QKeySequence.StandardKey | str | None = None,
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.database_label = QLabel(f"Database: {self.services.database_label}", self)
        self.database_label.setObjectName("databaseStatus")
        if self.services.fallback_reason:
            self.database_label.setStyleSheet("color: #d97706")
            self.database_label.setToolTip(self.services.fallback_reason)
        self.device_label = QLabel("Device: detecting…", self)
        self.device_label.setObjectName("deviceStatus")
        self.offline_label = QLabel("Offline" if self.services.offline else "Online", self)
        self.offline_label.setObjectName("offlineStatus")
        self.offline_label.setToolTip(
            "The network is never used" if self.services.offline else "Hub downloads allowed"
        )
        for widget in (self.database_label, self.device_label, self.offline_label):
            widget.setContentsMargins(8, 0, 8, 0)
            status.addPermanentWidget(widget)

    def _connect_signals(self) -> None:
        self.train_button.clicked.connect(self._on_train_triggered)
        self.datasets_panel.dataset_chosen.connect(self._on_datasets_dataset_chosen)
        self.datasets_panel.columns_changed.connect(self._on_datasets_columns_changed)
        self.parameters_panel.model_changed.connect(self.datasets_panel.set_model)
        self.datasets_panel.set_model(*self.parameters_panel.model_settings())
        self.parameters_panel.validity_changed.connect(self._on_parameters_validity_changed)
        self.monitor_panel.stop_requested.connect(self._on_monitor_stop_requested)
        self.monitor_panel.pause_requested.connect(self._on_monitor_pause_requested)
        self.monitor_panel.resume_requested.connect(self._on_monitor_resume_requested)
        self.monitor_panel.run_status_changed.connect(self.refresh_runs)
        self.runs_table.doubleClicked.connect(self._on_runs_table_double_clicked)
        self.runs_table.customContextMenuRequested.connect(self._on_runs_table_context_menu)
        self._runs_timer.timeout.connect(self.refresh_runs)
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._on_color_scheme_changed)

    # --- layout persistence -------------------------------------------------------------------

    def _restore_layout(self) -> None:
        geometry = self._qsettings.value("window/geometry")
        state = self._qsettings.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self._layout_restored = self.restoreState(state, _STATE_VERSION)
        for panel in self.panels:
            raw = self._qsettings.value(f"panels/{panel.panel_id}")
            if isinstance(raw, str):
                try:
                    panel.restore_state(json.loads(raw))
                except (ValueError, TypeError, AttributeError):
                    logger.info("ignoring unreadable saved state of panel %s", panel.panel_id)

    def save_layout(self) -> None:
        """Write geometry, dock layout and panel states to ``window.ini``."""
        self._qsettings.setValue("window/geometry", self.saveGeometry())
        self._qsettings.setValue("window/state", self.saveState(_STATE_VERSION))
        for panel in self.panels:
            try:
                self._qsettings.setValue(f"panels/{panel.panel_id}", json.dumps(panel.save_state()))
            except (TypeError, ValueError):
                logger.exception("panel %s returned unsaveable state", panel.panel_id)
        self._qsettings.sync()

    def reset_layout(self) -> None:
        """Put every dock back where it starts."""
        self.restoreState(self._default_state, _STATE_VERSION)
        for dock in self.docks.values():
            dock.setFloating(False)
            dock.show()
        self.docks["parameters"].raise_()

    def event(self, event: QEvent) -> bool:
        handled = super().event(event)
        if not self._first_frame_done and event.type() == QEvent.Type.Paint:
            self._first_frame_done = True
            # Queued behind the rest of this paint pass: the plots come once the window shows.
            QTimer.singleShot(0, self._on_first_frame_shown)
        return handled

    @safe_slot()
    def _on_first_frame_shown(self) -> None:
        if self._closing:
            return
        self.monitor_panel.ensure_plots()
        self.first_frame_shown.emit()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.ApplicationPaletteChange:
            self.apply_palette()

    @safe_slot()
    def _on_color_scheme_changed(self) -> None:
        # Most platform themes swap the palette themselves (ApplicationPaletteChange follows);
        # re-tint once the new palette is in place in case this one does not.
        QTimer.singleShot(0, self.apply_palette)

    def apply_palette(self) -> None:
        """Re-colour the plots for the current palette (the system switched light/dark)."""
        import sys

        if "pyqtgraph" in sys.modules:  # nothing to tint before the first plot exists
            from codetune_studio.ui import plotting

            plotting.set_default_colours()
        self.monitor_panel.apply_palette()
        self.datasets_panel.apply_palette()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            if not self._layout_restored:
                # Dock sizes only stick once the window has its real size.
                QTimer.singleShot(0, self._apply_default_sizes)

    # --- drag and drop ------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and all(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        for path in paths:
            self.add_dataset(path)
        if paths:
            event.acceptProposedAction()

    def add_dataset(self, path: str | Path) -> None:
        """Add a dataset file or folder, as a drop or File > Open dataset does."""
        self.datasets_panel.add_path(path)
        self.docks["datasets"].show()
        self.docks["datasets"].raise_()

    # --- runs table ---------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        """Reload the runs table from the database, off the GUI thread."""
        if self._runs_task is not None and not self._runs_task.done:
            return
        self._runs_task = run_in_thread(
            _list_runs_and_lost, self.services.experiments, on_return=self._on_runs_returned
        )

    @safe_slot()
    def _on_runs_returned(self, result: tuple[list[Run], list[StaleRun]]) -> None:
        runs, stale = result
        # A run this window hosts is never lost: its worker's pipe says whether it lives.
        stale = [s for s in stale if s.run.id not in self.controllers]
        newly_lost = [s for s in stale if s.run.id not in self.lost_runs]
        self.lost_runs = {s.run.id: s for s in stale}
        selected = self.selected_run()
        self.runs_model.set_runs(runs, {s.run.id: s.reason for s in stale})
        self.runs_stack.setCurrentWidget(self.runs_table if runs else self.runs_empty)
        if selected is not None:
            row = self.runs_model.row_of(selected.id)
            if row is not None:
                self.runs_table.selectRow(row)
        active = [r for r in runs if r.status in (RunStatus.RUNNING, RunStatus.PENDING)]
        counts = {status: sum(1 for r in runs if r.status is status) for status in RunStatus}
        parts = [f"{len(runs)} runs"]
        if active:
            parts.append(f"{len(active)} active")
        if counts[RunStatus.FAILED]:
            parts.append(f"{counts[RunStatus.FAILED]} failed")
        if stale:
            parts.append(f"{len(stale)} lost")
        self.runs_summary.setText("  ·  ".join(parts))
        if newly_lost:
            names = ", ".join(f"{s.run.id} ({s.run.owner}@{s.run.host})" for s in newly_lost[:5])
            notify.warning(
                f"Run(s) {names} still say RUNNING, but their worker stopped reporting. "
                "Right-click a run and choose Mark as failed to close it."
            )
        if not self._announced_active:
            self._announced_active = True
            self._adopt_active_runs([r for r in active if r.id not in self.lost_runs])

    def _adopt_active_runs(self, active: list[Run]) -> None:
        """At start-up, show runs still RUNNING (from this or another studio) and follow one."""
        running = [r for r in active if r.id not in self.controllers]
        if not running:
            return
        names = ", ".join(f"{r.id} ({r.owner}@{r.host})" for r in running[:5])
        notify.info(
            f"{len(running)} run(s) still running: {names}. The monitor follows the newest; "
            "double-click another to follow it."
        )
        if self.monitor_panel.run_id is None:
            self.monitor_panel.follow_run(running[0])

    def selected_run(self) -> Run | None:
        """The run selected in the runs table."""
        rows = self.runs_table.selectionModel().selectedRows()
        return self.runs_model.run_at(rows[0].row()) if rows else None

    @safe_slot()
    def _on_runs_table_double_clicked(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.follow(run)

    @safe_slot()
    def _on_follow_triggered(self) -> None:
        run = self.selected_run()
        if run is None:
            notify.warning("Select a run in the table first.")
            return
        self.follow(run)

    def follow(self, run: Run) -> None:
        """Show a run in the monitor: live if this window hosts it, by polling otherwise."""
        if run.id in self.controllers and self.controllers[run.id].running:
            self.monitor_panel.attach_run(run.id, run.name, hosted=True)
        else:
            self.monitor_panel.follow_run(run)
        self.docks["monitor"].show()
        self.docks["monitor"].raise_()

    @safe_slot()
    def _on_runs_table_context_menu(self, position: Any) -> None:
        index = self.runs_table.indexAt(position)
        if index.isValid():
            self.runs_table.selectRow(index.row())
        run = self.selected_run()
        if run is None:
            return
        self.build_run_menu(run).exec(self.runs_table.viewport().mapToGlobal(position))

    def build_run_menu(self, run: Run) -> QMenu:
        """The runs table's context menu for one run.

        Args:
            run: The run right-clicked.

        Returns:
            The menu (its actions carry object names such as ``resumeRunAction``).
        """
        menu = QMenu(self)
        menu.setObjectName("runMenu")
        hosted = run.id in self.controllers and self.controllers[run.id].running
        entries: list[tuple[str, str, Callable[[], Any], bool]] = [
            ("followRunAction", "Follow in monitor", lambda: self.follow(run), True),
            (
                "resumeRunAction",
                "Resume from last checkpoint",
                lambda: self._resume(run),
                bool(run.output_dir) and run.status.is_terminal and not self.active_controllers,
            ),
            (
                "openRunFolderAction",
                "Open output folder",
                lambda: self._open_output_folder(run),
                bool(run.output_dir),
            ),
            ("copyRunIdAction", "Copy run id", lambda: self._copy_run_id(run), True),
        ]
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

    def _resume(self, run: Run) -> None:
        from codetune_studio.core.recipe import TrainingRecipe

        recipe = TrainingRecipe.model_validate(run.recipe)
        self.start_training(recipe.model_copy(update={"output_dir": None}), resume=run)

    def _open_output_folder(self, run: Run) -> None:
        folder = Path(run.output_dir or "")
        if not run.output_dir or not folder.is_dir():
            notify.warning(f"Run {run.id}'s output folder {folder} does not exist (any more).")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _copy_run_id(self, run: Run) -> None:
        QGuiApplication.clipboard().setText(str(run.id))
        self.statusBar().showMessage(f"Copied run id {run.id}", 3000)

    def _mark_failed(self, run: Run) -> None:
        stale = self.lost_runs.get(run.id)
        if stale is None:
            return
        mark_lost_run_failed(self.services.experiments, stale)
        del self.lost_runs[run.id]
        notify.info(f"Run {run.id} marked as failed: {stale.reason}.")
        self.refresh_runs()

    def _confirm_delete(self, run: Run) -> bool:
        answer = QMessageBox.question(
            self,
            "Delete run",
            f"Delete run {run.id} ({run.name}) and its metrics from the database?\n\n"
            f"Its files in {run.output_dir or 'its output folder'} are kept; delete them "
            "yourself if you no longer need them.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _delete_run(self, run: Run) -> None:
        if not self.confirm_delete(run):
            return
        self.services.experiments.delete_run(run.id)
        if self.monitor_panel.run_id == run.id and not self.monitor_panel.hosted:
            self.monitor_panel.attach_run(run.id, f"{run.name} (deleted)", hosted=False)
        notify.info(f"Run {run.id} deleted; its files are kept in {run.output_dir}.")
        self.refresh_runs()

    # --- training -----------------------------------------------------------------------------

    @property
    def active_controllers(self) -> list[RunController]:
        """Hosted runs that have not ended."""
        return [c for c in self.controllers.values() if c.running]

    def _update_run_actions(self) -> None:
        active = bool(self.active_controllers)
        self.stop_action.setEnabled(active)
        self.pause_action.setEnabled(active)
        self.train_button.setEnabled(not active)
        self.train_action.setEnabled(not active)
        self.train_button.setText("Training…" if active else "▶  Train")

    @safe_slot()
    def _on_train_triggered(self) -> None:
        self.start_training()

    def start_training(
        self, recipe: TrainingRecipe | None = None, *, resume: Run | None = None
    ) -> int:
        """Start a run of ``recipe`` (default: the Parameters panel's) in a worker process.

        Args:
            recipe: What to train.
            resume: A run whose last checkpoint the new run continues from.

        Returns:
            The new run's id.

        Raises:
            ConfigError: If the parameters are not valid.
            TrainingError: If a run is already training, or there is no checkpoint to resume.
        """
        if self.active_controllers:
            raise TrainingError("A run is training already; stop it before starting another.")
        if recipe is None:
            recipe = self.parameters_panel.recipe
        if recipe is None:
            raise ConfigError("The parameters have errors; fix the fields marked in red first.")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        name = recipe.name or f"{_slug(Path(recipe.dataset.path).stem)}-{stamp}"
        planned = self.services.training.plan(
            recipe, name=name, resume=str(resume.id) if resume is not None else None
        )
        run, output_dir, checkpoint = planned.run, planned.output_dir, planned.resume_from
        recipe_file = output_dir / RECIPE_SNAPSHOT
        launch = self.services.worker_launch(
            recipe_file=recipe_file,
            run_id=run.id,
            output_dir=output_dir,
            data_dir=self.services.paths.data_dir,
            database_url=self.services.database_url,
            resume_from=checkpoint,
            online=not self.services.offline,
        )
        host = RunHost(
            run.id,
            launch,
            output_dir,
            experiments=self.services.experiments,
            stop_grace_s=self.stop_grace_s,
        )
        controller = RunController(host, self)
        controller.events_received.connect(self._on_controller_events_received)
        controller.log_received.connect(self._on_controller_log_received)
        controller.finished.connect(self._on_controller_finished)
        self.controllers[run.id] = controller
        self.monitor_panel.attach_run(run.id, run.name, hosted=True)
        self.docks["monitor"].show()
        self.docks["monitor"].raise_()
        controller.start()
        self._update_run_actions()
        self.refresh_runs()
        self.run_started.emit(run.id)
        logger.info("started run %s (%s) in %s", run.id, name, output_dir)
        return run.id

    def _on_controller_events_received(self, events: list[Event]) -> None:
        controller = self.sender()
        if isinstance(controller, RunController) and controller.run_id == self.monitor_panel.run_id:
            self.monitor_panel.add_events(events)

    def _on_controller_log_received(self, lines: list[str]) -> None:
        controller = self.sender()
        if isinstance(controller, RunController) and controller.run_id == self.monitor_panel.run_id:
            self.monitor_panel.add_log_lines(lines)

    @safe_slot()
    def _on_controller_finished(self, outcome: RunOutcome) -> None:
        self._update_run_actions()
        if not outcome.detached:
            if outcome.run_id == self.monitor_panel.run_id:
                self.monitor_panel.run_ended(outcome.status, outcome.reason)
            if outcome.status is RunStatus.FAILED:
                notify.error(f"Run {outcome.run_id} failed: {outcome.reason}")
            elif outcome.status is RunStatus.CANCELLED:
                notify.info(f"Run {outcome.run_id} stopped.")
            else:
                notify.info(f"Run {outcome.run_id} finished.")
        self.refresh_runs()
        self.run_ended.emit(outcome)

    def _hosted_target(self, run_id: int | None = None) -> RunController | None:
        if run_id is not None:
            controller = self.controllers.get(run_id)
            return controller if controller is not None and controller.running else None
        active = self.active_controllers
        return active[-1] if active else None

    @safe_slot()
    def _on_stop_triggered(self) -> None:
        controller = self._hosted_target(self.monitor_panel.run_id) or self._hosted_target()
        if controller is not None:
            self.monitor_panel.stop_button.setEnabled(False)
            controller.stop()

    @safe_slot()
    def _on_monitor_stop_requested(self, run_id: int) -> None:
        controller = self._hosted_target(run_id)
        if controller is not None:
            controller.stop()

    @safe_slot()
    def _on_pause_triggered(self) -> None:
        controller = self._hosted_target(self.monitor_panel.run_id) or self._hosted_target()
        if controller is not None:
            self._set_paused(controller, not controller.paused)

    @safe_slot()
    def _on_monitor_pause_requested(self, run_id: int) -> None:
        controller = self._hosted_target(run_id)
        if controller is not None:
            self._set_paused(controller, True)

    @safe_slot()
    def _on_monitor_resume_requested(self, run_id: int) -> None:
        controller = self._hosted_target(run_id)
        if controller is not None:
            self._set_paused(controller, False)

    def _set_paused(self, controller: RunController, paused: bool) -> None:
        controller.set_paused(paused)
        if controller.run_id == self.monitor_panel.run_id:
            self.monitor_panel.set_paused(paused)

    @safe_slot()
    def _on_resume_checkpoint_triggered(self) -> None:
        run = self.selected_run()
        if run is None:
            notify.warning("Select the run to resume in the runs table first.")
            return
        self._resume(run)

    # --- other panels and menus ---------------------------------------------------------------

    @safe_slot()
    def _on_datasets_dataset_chosen(self, path: str) -> None:
        self.parameters_panel.set_dataset_path(path)
        if path == self.datasets_panel.current_path:  # the mapping made for it comes along
            panel = self.datasets_panel
            self.parameters_panel.set_dataset_mapping(panel.mapping_format, panel.columns)
        self.docks["parameters"].show()
        self.docks["parameters"].raise_()

    @safe_slot()
    def _on_datasets_columns_changed(self, path: str, fmt: str, columns: dict[str, str]) -> None:
        # A mapping belongs to its dataset: it reaches the recipe only when the recipe trains on it.
        if self.parameters_panel.field("dataset.path").value() == path:
            self.parameters_panel.set_dataset_mapping(fmt, columns)

    @safe_slot()
    def _on_parameters_validity_changed(self, valid: bool) -> None:
        self.train_button.setToolTip(
            "Start a run with the current parameters (Ctrl+Return)"
            if valid
            else "Fix the fields marked in red in the Parameters panel first"
        )

    @safe_slot()
    def _on_open_dataset_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a dataset",
            str(Path.home()),
            "Datasets (*.jsonl *.json *.csv *.tsv *.parquet *.txt *.md);;All files (*)",
        )
        if path:
            self.add_dataset(path)

    @safe_slot()
    def _on_open_recipe_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a recipe",
            str(self.services.resources / "recipes"),
            "Recipes (*.yaml *.yml *.json)",
        )
        if path:
            self.parameters_panel.load_file(Path(path))

    @safe_slot()
    def _on_save_recipe_triggered(self) -> None:
        self.parameters_panel.save_to_database()

    @safe_slot()
    def _on_export_recipe_triggered(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the recipe", str(Path.home() / "recipe.yaml"), "YAML (*.yaml *.yml)"
        )
        if path:
            self.parameters_panel.export_file(Path(path))

    @safe_slot()
    def _on_settings_triggered(self) -> None:
        from codetune_studio.ui.dialogs.settings import SettingsDialog  # not on the start-up path

        dialog = SettingsDialog(self.services, self.settings_store, self)
        dialog.settings_saved.connect(self._on_settings_dialog_settings_saved)
        dialog.open()

    @safe_slot()
    def _on_settings_dialog_settings_saved(self, settings: AppSettings) -> None:
        """Apply what can change while the studio runs (offline mode); the rest waits."""
        self.services.offline = settings.offline
        self.offline_label.setText("Offline" if settings.offline else "Online")
        self.offline_label.setToolTip(
            "The network is never used" if settings.offline else "Hub downloads allowed"
        )

    @safe_slot()
    def _on_docs_triggered(self) -> None:
        from codetune_studio.ui.dialogs.docs import DocsDialog

        dialog = DocsDialog(self.services.resources / "docs", self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    @safe_slot()
    def _on_about_triggered(self) -> None:
        QMessageBox.about(self, "About CodeTune Studio", self.about_text())

    def about_text(self) -> str:
        """Help > About's text: version, commit, torch build, device and the studio's folders."""
        from codetune_studio.core.build_info import current_build_info

        # The torch build comes from package metadata: torch itself is not imported here.
        info = current_build_info()
        device = self.device.label if self.device is not None else "still being detected"
        kind = "packaged build" if info.frozen else "source install"
        facts = [
            f"Commit: {info.commit or 'unknown'} ({kind})",
            f"torch: {info.torch}",
            f"Device: {device}",
        ]
        return (
            f"<h3>CodeTune Studio {info.version}</h3><p>Fine-tune language models on your own "
            "machine, offline or with a team.</p>"
            f"<p>{'<br>'.join(html.escape(fact) for fact in facts)}</p>"
            f"<p>Data folder: {self.services.paths.data_dir}<br>"
            f"Logs: {self.services.paths.log_dir}</p><p>Apache License 2.0</p>"
        )

    @safe_slot()
    def _on_device_detected(self, device: DeviceInfo) -> None:
        self.device = device
        self.device_label.setText(device.label)
        self.parameters_panel.set_device_memory(device.memory_bytes, on_gpu=device.is_gpu)

    # --- closing ------------------------------------------------------------------------------

    def _ask_close_choice(self) -> str:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("A run is training")
        box.setText("A run is still training. Leave it running in the background, or stop it?")
        box.setInformativeText(
            "A run left running keeps recording to the database; open the studio again to "
            "follow it."
        )
        leave = box.addButton("Leave running", QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton("Stop run", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(leave)
        box.exec()
        clicked = box.clickedButton()
        if clicked is leave:
            return CloseChoice.LEAVE
        if clicked is stop:
            return CloseChoice.STOP
        return CloseChoice.CANCEL

    def closeEvent(self, event: QCloseEvent) -> None:
        active = self.active_controllers
        if active:
            choice = self.ask_close_choice()
            if choice == CloseChoice.CANCEL:
                event.ignore()
                return
            for controller in active:
                if choice == CloseChoice.STOP:
                    controller.stop()
                else:
                    controller.detach()
            self._wait_for_controllers(active, stop=choice == CloseChoice.STOP)
        self._closing = True
        self._runs_timer.stop()
        self.save_layout()
        for panel in self.panels:
            panel.shutdown()
        wait_for_tasks(3000)
        notify.uninstall(self)
        super().closeEvent(event)

    def _wait_for_controllers(self, controllers: list[RunController], *, stop: bool) -> None:
        """Process events until the controllers end (a stop escalates to terminate and kill)."""
        budget_ms = int((self.stop_grace_s + 10) * 1000) if stop else 5000
        loop = QEventLoop()
        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)

        def check() -> None:
            if all(not c.running for c in controllers):
                loop.quit()

        for controller in controllers:
            controller.finished.connect(check)
        timer.start(budget_ms)
        check()
        if any(c.running for c in controllers):
            loop.exec()
        for controller in controllers:
            controller.wait(2000)


def _list_runs_and_lost(experiments: ExperimentService) -> tuple[list[Run], list[StaleRun]]:
    """The runs, and those whose worker stopped reporting (runs on a worker thread)."""
    runs = experiments.list_runs()
    return runs, find_stale_runs(runs, datetime.now(UTC))


def detect_device_task() -> DeviceInfo:
    """Find the training device (runs on a worker thread)."""
    return detect_device()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "run"
