"""The studio's main window: docked panels around the runs table, menus, status bar, run hosting."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QWidget,
)

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.status import RunStatus
from codetune_studio.services.device import DeviceInfo, detect_device
from codetune_studio.ui import notify
from codetune_studio.ui.panels.datasets import DatasetsPanel
from codetune_studio.ui.panels.models import ModelsPanel
from codetune_studio.ui.panels.monitor import MonitorPanel
from codetune_studio.ui.panels.parameters import ParametersPanel
from codetune_studio.ui.panels.plugins import PluginsPanel
from codetune_studio.ui.panels.queue import QueuePanel
from codetune_studio.ui.run_coordinator import CloseChoice, RunCoordinator
from codetune_studio.ui.runs_view import RunsView
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.studio_services import StudioServices
from codetune_studio.ui.tasks import run_in_thread, wait_for_tasks

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.core.models import Run
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.services.runs import StaleRun
    from codetune_studio.settings import AppSettings, SettingsStore
    from codetune_studio.ui.compare_dialog import CompareDialog
    from codetune_studio.ui.dialogs.export import ExportDialog
    from codetune_studio.ui.panels.base import Panel
    from codetune_studio.ui.run_host import RunController, RunOutcome
    from codetune_studio.ui.runs_model import RunsTableModel

__all__ = ["CloseChoice", "MainWindow", "StudioServices"]

logger = logging.getLogger(__name__)

_STATE_VERSION = 1
_SWEEP_METRIC_GROUP = "sweeps/best_metric"  # sweep id -> the metric its dialog chose
_RUNS_REFRESH_MS = 3000


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
        #: Asks what to do with running runs on close; tests replace it.
        self.ask_close_choice: Callable[[], str] = self._ask_close_choice
        self._announced_active = False
        self._closing = False
        self._layout_restored = False
        self._shown_once = False
        self._first_frame_done = False
        self._compare_dialogs: list[QWidget] = []
        self._clone_parent: tuple[int, TrainingRecipe | None] | None = None
        #: Starts, stops and pauses the runs this window hosts (see ui/run_coordinator.py).
        self.coordinator = RunCoordinator(services, self, stop_grace_s=stop_grace_s)
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
            *self._build_playground_panels(),
        ]
        self._add_experiment_panels()
        self._add_data_tools_panel()
        self.docks: dict[str, QDockWidget] = {}
        for panel in self.panels:
            dock = QDockWidget(panel.title, self)
            dock.setObjectName(f"{panel.panel_id}Dock")
            dock.setWidget(_scrollable(panel))
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
        self.runs_view = RunsView(
            self.services,
            is_hosted=self.coordinator.is_hosted,
            can_resume=lambda: not self.active_controllers,
            parent=self,
        )
        self.train_button = self.runs_view.train_button
        return self.runs_view

    def _add_experiment_panels(self) -> None:
        """The run queue (with sweeps) and the model versions, as docked panels."""
        self.queue_panel = QueuePanel(
            self.services, lambda: self.parameters_panel.recipe, parent=self
        )
        self.models_panel = ModelsPanel(self.services, self)
        self.panels += [self.queue_panel, self.models_panel]

    def _apply_default_layout(self) -> None:
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        for panel in self.panels:
            dock = self.docks[panel.panel_id]
            dock.setFloating(False)
            dock.show()
            self.addDockWidget(panel.default_area, dock)
        self.tabifyDockWidget(self.docks["parameters"], self.docks["plugins"])
        self.tabifyDockWidget(self.docks["parameters"], self.docks["queue"])
        self.tabifyDockWidget(self.docks["monitor"], self.docks["models"])
        self.tabifyDockWidget(self.docks["plugins"], self.docks["datatools"])
        self.docks["parameters"].raise_()
        self.docks["monitor"].raise_()
        self._tabify_playground_docks()
        self._apply_default_sizes()

    def _build_playground_panels(self) -> list[Panel]:
        """The Playground and Eval panels (issue 10): generation and code evaluation."""
        from codetune_studio.services.evaluation import EvalService
        from codetune_studio.ui.panels.evaluation import EvalPanel
        from codetune_studio.ui.panels.playground import PlaygroundPanel, model_resolver

        resolve = model_resolver(
            self.services.experiments, self.services.paths.data_dir, offline=self.services.offline
        )
        self.playground_panel = PlaygroundPanel(self.services.experiments, resolve, self)
        self.eval_panel = EvalPanel(
            self.services.evaluations or EvalService(None),
            self.services.experiments,
            resolve,
            self.services.resources / "eval" / "python-tasks.jsonl",
            self,
        )
        self.playground_panel.picker.refresh()
        self.eval_panel.refresh()
        return [self.playground_panel, self.eval_panel]

    def _tabify_playground_docks(self) -> None:
        """Playground and Eval share the bottom area with the monitor, as tabs behind it."""
        self.tabifyDockWidget(self.docks["monitor"], self.docks["playground"])
        self.tabifyDockWidget(self.docks["monitor"], self.docks["evaluation"])
        self.docks["monitor"].raise_()

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
        self.compare_action = self._action(
            run_menu, "Compare selected runs", self._on_compare_triggered, "Ctrl+D"
        )
        self.clone_action = self._action(
            run_menu, "Clone selected run into Parameters", self._on_clone_triggered
        )
        self.refresh_runs_action = self._action(run_menu, "Refresh runs", self.refresh_runs, "F5")
        self._build_export_action(run_menu)

        view_menu = bar.addMenu("&View")
        self.dock_actions: dict[str, QAction] = {}
        for panel_id, dock in self.docks.items():
            action = dock.toggleViewAction()
            action.setObjectName(f"toggle_{panel_id}")
            view_menu.addAction(action)
            self.dock_actions[panel_id] = action
        view_menu.addSeparator()
        self.reset_layout_action = self._action(view_menu, "Reset layout", self.reset_layout)

        self._add_tools_menu(bar.addMenu("&Tools"))
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
        self._add_audit_menu(help_menu)
        self._update_run_actions()

    def _add_audit_menu(self, help_menu: QMenu) -> None:
        """Help > Audit log… (issue 14): who set keys, switched database, deleted, exported."""
        self.audit_action = self._action(help_menu, "Audit log…", self._on_audit_triggered)
        self.audit_action.setEnabled(self.services.audit is not None)

    def _add_data_tools_panel(self) -> None:
        """The Data tools panel (tokenizer builder, dataset from code), tabbed with Plugins."""
        from codetune_studio.ui.panels.data_tools import DataToolsPanel

        self.data_tools_panel = DataToolsPanel(
            self,
            data_dir=self.services.paths.data_dir,
            current_dataset=lambda: self.datasets_panel.current_path,
        )
        self.data_tools_panel.dataset_made.connect(self.add_dataset)
        self.panels.append(self.data_tools_panel)

    def _add_tools_menu(self, menu: QMenu) -> None:
        def show_tool(index: int) -> None:
            self.docks["datatools"].show()
            self.docks["datatools"].raise_()
            self.data_tools_panel.tabs.setCurrentIndex(index)

        self.tokenizer_action = self._action(menu, "Tokenizer builder", lambda: show_tool(0))
        self.from_code_action = self._action(menu, "Dataset from code…", lambda: show_tool(1))

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
        self.runs_view.follow_requested.connect(self.follow)
        self.runs_view.resume_requested.connect(self._resume)
        self.runs_view.clone_requested.connect(self.clone_run)
        self.runs_view.compare_requested.connect(self.compare_runs)
        self.runs_view.sweep_compare_requested.connect(self.compare_sweep)
        self.runs_view.export_requested.connect(self.open_export_dialog)
        self.runs_view.eval_requested.connect(self.open_evaluation)
        self.runs_view.runs_loaded.connect(self._on_runs_view_runs_loaded)
        self.queue_panel.queue_changed.connect(self.refresh_runs)
        self.queue_panel.sweep_queued.connect(self._on_queue_sweep_queued)
        self.coordinator.events_received.connect(self._on_coordinator_events_received)
        self.coordinator.log_received.connect(self._on_coordinator_log_received)
        self.coordinator.run_ended.connect(self._on_coordinator_run_ended)
        self.coordinator.run_started.connect(self.run_started)
        self.coordinator.active_changed.connect(self._update_run_actions)
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

    # --- runs view (ui/runs_view.py) ---------------------------------------------------------

    @property
    def runs_model(self) -> RunsTableModel:
        """The runs table's model."""
        return self.runs_view.runs_model

    @property
    def runs_table(self) -> QWidget:
        """The runs table."""
        return self.runs_view.runs_table

    @property
    def lost_runs(self) -> dict[int, StaleRun]:
        """Runs still RUNNING in the database whose worker stopped reporting, by id."""
        return self.runs_view.lost_runs

    @property
    def confirm_delete(self) -> Callable[[Run], bool]:
        """Asks before deleting a run; tests replace it."""
        return self.runs_view.confirm_delete

    @confirm_delete.setter
    def confirm_delete(self, ask: Callable[[Run], bool]) -> None:
        self.runs_view.confirm_delete = ask

    def refresh_runs(self) -> None:
        """Reload the runs view from the database, off the GUI thread."""
        self.runs_view.refresh()

    def selected_run(self) -> Run | None:
        """The (first) run selected in the runs table."""
        return self.runs_view.selected_run()

    def build_run_menu(self, run: Run) -> QMenu:
        """The runs table's context menu for one run (see ``RunsView.build_run_menu``)."""
        return self.runs_view.build_run_menu(run)

    @safe_slot()
    def _on_runs_view_runs_loaded(self, runs: list[Run]) -> None:
        self.queue_panel.set_runs(runs)
        if not self._announced_active:
            self._announced_active = True
            active = [r for r in runs if r.status in (RunStatus.RUNNING, RunStatus.PENDING)]
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

    @safe_slot()
    def _on_follow_triggered(self) -> None:
        run = self.selected_run()
        if run is None:
            notify.warning("Select a run in the table first.")
            return
        self.follow(run)

    def follow(self, run: Run) -> None:
        """Show a run in the monitor: live if this window hosts it, by polling otherwise."""
        if self.coordinator.is_hosted(run.id):
            self.monitor_panel.attach_run(run.id, run.name, hosted=True)
        else:
            self.monitor_panel.follow_run(run)
        self.docks["monitor"].show()
        self.docks["monitor"].raise_()

    @safe_slot()
    def _on_compare_triggered(self) -> None:
        self.compare_runs([run.id for run in self.runs_view.selected_runs()])

    def compare_runs(self, run_ids: list[int], *, metric: str | None = None) -> CompareDialog:
        """Open a comparison of these runs (two or more) in its own window.

        Returns:
            The comparison dialog.
        """
        from codetune_studio.ui.compare_dialog import CompareDialog

        if len(run_ids) < 2:
            raise ConfigError("Select two or more runs to compare (Ctrl+click or Shift+click).")
        dialog = CompareDialog(
            self.services,
            run_ids,
            metric=metric,
            known_results=self.runs_view.known_results(),
            parent=self,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._compare_dialogs = [d for d in self._compare_dialogs if d.isVisible()] + [dialog]
        dialog.show()
        return dialog

    @safe_slot()
    def open_evaluation(self, result_id: int) -> None:
        """Show a stored evaluation's tasks and samples in the Eval panel (from a run's detail)."""
        dock = self.docks["evaluation"]
        dock.show()
        dock.raise_()
        self.eval_panel.show_result(result_id)

    @safe_slot()
    def _on_queue_sweep_queued(self, sweep_id: str, run_ids: list[int], metric: str) -> None:
        # The sweep's comparison opens marked by the metric chosen for it (runs carry no metric).
        self._qsettings.setValue(f"{_SWEEP_METRIC_GROUP}/{sweep_id}", metric)
        self.statusBar().showMessage(
            f"Sweep {sweep_id} queued ({len(run_ids)} runs); run the queue, then compare them "
            "(right-click one of its runs: Compare sweep).",
            8000,
        )

    @safe_slot()
    def compare_sweep(self, sweep_id: str, run_ids: list[int]) -> CompareDialog:
        """Open the comparison of a sweep's runs, the best marked by the sweep's own metric.

        A sweep queued from another machine or the command line has none recorded here: the
        comparison then uses the metric chosen last in "Best by".

        Returns:
            The comparison dialog.
        """
        metric = self._qsettings.value(f"{_SWEEP_METRIC_GROUP}/{sweep_id}")
        return self.compare_runs(run_ids, metric=metric if isinstance(metric, str) else None)

    @safe_slot()
    def _on_clone_triggered(self) -> None:
        run = self.selected_run()
        if run is None:
            notify.warning("Select the run to clone in the runs table first.")
            return
        self.clone_run(run)

    def clone_run(self, run: Run) -> None:
        """Load a run's recipe into the Parameters panel; the next run records it as its parent."""
        from codetune_studio.core.recipe import TrainingRecipe

        recipe = TrainingRecipe.model_validate(run.recipe)
        self.parameters_panel.set_recipe(recipe.model_copy(update={"output_dir": None}))
        self._clone_parent = (run.id, self.parameters_panel.recipe)
        self.docks["parameters"].show()
        self.docks["parameters"].raise_()
        notify.info(f"Loaded run {run.id}'s recipe; change it and press Train to rerun.")

    # --- export (issue 11) ---------------------------------------------------------------------

    def _build_export_action(self, run_menu: QMenu) -> None:
        """Run > Export model…: export the selected run (its newest model version)."""

        def on_triggered() -> None:
            run = self.selected_run()
            if run is None:
                notify.warning("Select a finished run in the table first.")
                return
            self.open_export_dialog(run)

        self.export_model_action = self._action(
            run_menu, "Export model…", safe_slot()(on_triggered), "Ctrl+E"
        )

    def open_export_dialog(self, run: Run, model: str | None = None) -> ExportDialog:
        """Open the Export dialog for a run, or for one of its model versions (``v:ID``)."""
        from codetune_studio.ui.dialogs.export import ExportDialog

        default_out = self.services.paths.data_dir / "exports" / f"run-{run.id}"
        experiments = self.services.experiments
        dialog = ExportDialog(
            self.services,
            model or str(run.id),
            f"{run.name} (run {run.id}, newest version)",
            default_out,
            versions=lambda: experiments.list_model_versions(run_id=run.id),
            parent=self,
        )
        dialog.show()
        return dialog

    def _resume(self, run: Run) -> None:
        from codetune_studio.core.recipe import TrainingRecipe

        recipe = TrainingRecipe.model_validate(run.recipe)
        self.start_training(recipe.model_copy(update={"output_dir": None}), resume=run)

    # --- training (ui/run_coordinator.py) -----------------------------------------------------

    @property
    def controllers(self) -> dict[int, RunController]:
        """The runs this window hosts, by id."""
        return self.coordinator.controllers

    @property
    def active_controllers(self) -> list[RunController]:
        """Hosted runs that have not ended."""
        return self.coordinator.active_controllers

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

        A run started from a recipe cloned from another run ("Clone into Parameters") records
        that run as its parent.

        Args:
            recipe: What to train.
            resume: A run whose last checkpoint the new run continues from.

        Returns:
            The new run's id.

        Raises:
            ConfigError: If the parameters are not valid.
            TrainingError: If a run is already training, or there is no checkpoint to resume.
        """
        from_form = recipe is None
        if recipe is None:
            recipe = self.parameters_panel.recipe
        parent = self._clone_parent
        parent_id = parent[0] if parent is not None and from_form and resume is None else None
        run = self.coordinator.start(recipe, resume=resume, parent_run_id=parent_id)
        self.monitor_panel.attach_run(run.id, run.name, hosted=True)
        self.docks["monitor"].show()
        self.docks["monitor"].raise_()
        self.refresh_runs()
        return run.id

    def _on_coordinator_events_received(self, run_id: int, events: list[Any]) -> None:
        if run_id == self.monitor_panel.run_id:
            self.monitor_panel.add_events(events)

    def _on_coordinator_log_received(self, run_id: int, lines: list[str]) -> None:
        if run_id == self.monitor_panel.run_id:
            self.monitor_panel.add_log_lines(lines)

    @safe_slot()
    def _on_coordinator_run_ended(self, outcome: RunOutcome) -> None:
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
        self.models_panel.refresh()
        self.run_ended.emit(outcome)

    def _hosted_target(self, run_id: int | None = None) -> RunController | None:
        return self.coordinator.target(run_id)

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
        self.open_settings()

    def open_settings(self) -> QDialog:
        """Show the Settings dialog (window-modal), as File > Settings does."""
        from codetune_studio.ui.dialogs.settings import SettingsDialog  # not on the start-up path

        dialog = SettingsDialog(self.services, self.settings_store, self)
        dialog.settings_saved.connect(self._on_settings_dialog_settings_saved)
        dialog.open()
        return dialog

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
        # F1 in a parameter field opens that recipe key's entry in the reference.
        # The window's focus widget: the field last focused, even while a menu has the keyboard.
        focus: QWidget | None = self.focusWidget()
        key = focus.property("recipeKey") if focus is not None else None
        if isinstance(key, str) and key:
            self.open_docs("recipe-reference", key)
        else:
            self.open_docs()

    def open_docs(self, page: str | None = None, key: str | None = None) -> QDialog:
        """Show the manual (reusing an open viewer), at a page and a recipe key's entry.

        Args:
            page: The page's file name without ``.md``; the index by default.
            key: A recipe key (``training.learning_rate``) or a heading anchor on that page.

        Returns:
            The documentation viewer.
        """
        from codetune_studio.ui.dialogs.docs import DocsDialog, heading_anchor

        anchor = heading_anchor(key) if key else None
        dialog = self.findChild(DocsDialog)
        if dialog is None:
            dialog = DocsDialog(self.services.resources / "docs", self, page=page, anchor=anchor)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        elif page is not None:
            dialog.open_page(page, anchor)
        dialog.show()
        dialog.raise_()
        return dialog

    @safe_slot()
    def _on_audit_triggered(self) -> None:
        from codetune_studio.ui.dialogs.audit import AuditDialog

        if self.services.audit is None:
            return
        dialog = AuditDialog(self.services.audit, self)
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
        if not self.coordinator.prepare_close(self.ask_close_choice):
            event.ignore()
            return
        self._closing = True
        self._runs_timer.stop()
        self.save_layout()
        self.runs_view.shutdown()
        for panel in self.panels:
            panel.shutdown()
        wait_for_tasks(3000)
        notify.uninstall(self)
        super().closeEvent(event)


def detect_device_task() -> DeviceInfo:
    """Find the training device (runs on a worker thread)."""
    return detect_device()


def _scrollable(panel: QWidget) -> QScrollArea:
    """Let a dock shrink below its panel's natural size (it scrolls instead).

    Without this the window's minimum size is the sum of every panel's, which with all the
    panels open exceeded a 1920x1080 screen.
    """
    area = QScrollArea()
    area.setObjectName(f"{panel.objectName() or type(panel).__name__}Scroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(panel)
    return area
