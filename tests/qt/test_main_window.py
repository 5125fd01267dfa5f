from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QTableView

from codetune_studio.core.status import RunStatus
from codetune_studio.ui import notify
from codetune_studio.ui.main_window import CloseChoice
from tests.qt.conftest import fake_worker_launch

if TYPE_CHECKING:
    from codetune_studio.ui.studio_services import StudioServices

FAKE_WORKER = Path(__file__).resolve().parents[1] / "fixtures" / "fake_worker.py"
DOCKS = ("datasetsDock", "parametersDock", "monitorDock", "pluginsDock")


def test_docks_have_object_names_and_toggle_from_the_view_menu(
    make_window: Any, qtbot: Any
) -> None:
    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    for name in DOCKS:
        dock = window.findChild(QDockWidget, name)
        assert dock is not None, name
        assert dock.features() & QDockWidget.DockWidgetFeature.DockWidgetFloatable
        action = window.dock_actions[name.removesuffix("Dock")]
        action.trigger()
        assert dock.isHidden()
        action.trigger()
        assert not dock.isHidden()
    assert window.findChild(QTableView, "runsTable") is not None
    assert window.train_action.shortcut() == QKeySequence("Ctrl+Return")
    assert window.stop_action.shortcut() == QKeySequence("Ctrl+.")
    assert window.open_dataset_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Open)


def test_layout_and_geometry_survive_a_restart(make_window: Any, qtbot: Any) -> None:
    first = make_window()
    first.show()
    qtbot.waitExposed(first)
    first.resize(1100, 760)
    first.move(30, 40)
    size, position = first.size(), first.pos()
    first.docks["plugins"].setFloating(True)
    first.docks["datasets"].hide()
    first.close()
    second = make_window()
    second.show()
    qtbot.waitExposed(second)
    assert second.docks["plugins"].isFloating()
    assert second.docks["datasets"].isHidden()
    # The offscreen screen is small, so Qt may narrow or nudge a restored window to fit it.
    assert second.height() == size.height()
    assert abs(second.pos().y() - position.y()) < 10
    assert "geometry" in (second.services.paths.config_dir / "window.ini").read_text()
    second.reset_layout()
    assert not second.docks["plugins"].isFloating()
    assert not second.docks["datasets"].isHidden()


def test_status_bar_names_database_device_and_offline_state(
    make_window: Any, services: StudioServices
) -> None:
    window = make_window()
    assert services.database_label in window.database_label.text()
    assert window.offline_label.text() == "Offline"
    from codetune_studio.services.device import DeviceInfo

    window._on_device_detected(DeviceInfo("NVIDIA H100", 80 * 1024**3, is_gpu=True))
    assert window.device_label.text() == "GPU: NVIDIA H100 (80 GB)"


def test_dropping_a_dataset_file_adds_it(make_window: Any, qtbot: Any, tmp_path: Path) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text(
        "\n".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) for i in range(50)) + "\n"
    )
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(data))])
    event = QDropEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    panel = window.datasets_panel
    assert str(data) in panel.listed_paths()
    qtbot.waitUntil(lambda: panel.analysis is not None, timeout=10_000)
    assert panel.analysis.report.format == "alpaca"
    assert panel.preview_model.rowCount() == 50
    # It is registered in the database once it reads cleanly.
    qtbot.waitUntil(
        lambda: any(r.source == str(data) for r in window.services.experiments.list_datasets()),
        timeout=5000,
    )


def test_train_runs_a_worker_and_a_crash_leaves_the_window_up(
    make_window: Any, qtbot: Any, services: StudioServices, tmp_path: Path
) -> None:
    services.worker_launch = fake_worker_launch(FAKE_WORKER, "--mode", "crash")
    window = make_window()
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    window.parameters_panel.set_dataset_path(str(data))
    assert window.parameters_panel.is_valid
    with qtbot.waitSignal(window.run_ended, timeout=20_000) as ended:
        window.train_button.click()
    outcome = ended.args[0]
    assert outcome.status is RunStatus.FAILED
    # The worker died, the window did not: it reports the failure and can train again below.
    assert any(n.level is notify.Level.ERROR and "failed" in n.text for n in notify.history())
    assert window.monitor_panel.point_count("loss") == 3
    qtbot.waitUntil(
        lambda: (
            window.runs_model.rowCount() == 1
            and window.runs_model.run_at(0).status is RunStatus.FAILED
        ),
        timeout=5000,
    )
    assert window.train_button.isEnabled()


def test_closing_during_a_run_can_stop_it(
    make_window: Any, qtbot: Any, services: StudioServices, tmp_path: Path
) -> None:
    services.worker_launch = fake_worker_launch(FAKE_WORKER, "--mode", "obey", "--delay", "0.05")
    window = make_window()
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    window.parameters_panel.set_dataset_path(str(data))
    run_id = window.start_training()
    qtbot.waitUntil(lambda: window.monitor_panel.point_count("loss") > 0, timeout=10_000)
    asked: list[bool] = []

    def choose() -> str:
        asked.append(True)
        return CloseChoice.STOP

    window.ask_close_choice = choose
    window.close()
    assert asked == [True]
    assert services.experiments.get_run(run_id).status is RunStatus.CANCELLED


def test_invalid_parameters_make_train_show_a_notice_not_a_crash(make_window: Any) -> None:
    window = make_window()
    window.parameters_panel.set_dataset_path("")
    window.train_button.click()
    assert any("fix the fields" in n.text for n in notify.history())
    assert not window.controllers


def test_window_appears_without_importing_the_ml_stack(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from codetune_studio.ui.app import create_application
        from codetune_studio.core.paths import resolve_paths
        from codetune_studio.secrets import MemorySecretStore
        from codetune_studio.services.database import open_database
        from codetune_studio.services.experiments import ExperimentService
        from codetune_studio.settings import SettingsStore
        from codetune_studio.ui.studio_services import StudioServices
        from codetune_studio.ui.main_window import MainWindow
        app = create_application()
        paths = resolve_paths({str(tmp_path / "studio")!r}).ensure()
        opened = open_database(None, sqlite_path=paths.database_file, allow_fallback=False)
        services = StudioServices(ExperimentService(opened.database), paths, MemorySecretStore(), "x")
        window = MainWindow(services, SettingsStore(paths.settings_file))
        window.show()
        late = [m for m in ("pyqtgraph", "numpy", "keyring") if m in sys.modules]
        print("LATE=" + ",".join(late))
        app.processEvents()
        heavy = [m for m in ("torch", "transformers", "datasets", "peft", "accelerate") if m in sys.modules]
        print("HEAVY=" + ",".join(heavy))
        window.close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stdout, result.stdout
    # Plots, NumPy and the keyring load after the first frame, not before it.
    assert "LATE=\n" in result.stdout, result.stdout


@pytest.mark.parametrize("choice", [CloseChoice.CANCEL])
def test_cancel_on_close_keeps_the_window_open(
    make_window: Any, qtbot: Any, services: StudioServices, tmp_path: Path, choice: str
) -> None:
    services.worker_launch = fake_worker_launch(FAKE_WORKER, "--mode", "obey", "--delay", "0.05")
    window = make_window()
    window.show()
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    window.parameters_panel.set_dataset_path(str(data))
    window.start_training()
    window.ask_close_choice = lambda: choice
    window.close()
    assert window.isVisible()
    assert window.active_controllers
    window.ask_close_choice = lambda: CloseChoice.STOP
    window.close()
    assert not window.active_controllers


def test_runs_still_running_at_startup_are_listed_and_followed(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    run = services.experiments.create_run("from-a-terminal", {"training": {"max_steps": 50}})
    services.experiments.start_run(run.id, pid=4242, host="gpu-box")
    window = make_window()
    qtbot.waitUntil(lambda: window.monitor_panel.run_id == run.id, timeout=5000)
    assert not window.monitor_panel.hosted
    assert any("still running" in n.text for n in notify.history())
    assert window.runs_model.rowCount() == 1


def test_documentation_viewer_renders_the_markdown_pages(make_window: Any, qtbot: Any) -> None:
    from codetune_studio.ui.dialogs.docs import DocsDialog

    window = make_window()
    window.docs_action.trigger()
    dialog = window.findChild(DocsDialog)
    assert dialog is not None
    assert dialog.contents.topLevelItemCount() >= 1
    assert "CodeTune" in dialog.browser.toPlainText()
    dialog.close()


def test_crash_handler_writes_a_crash_log(tmp_path: Path) -> None:
    from codetune_studio.ui.app import CrashHandler, describe_database

    handler = CrashHandler(tmp_path / "logs")

    def explode() -> None:
        raise RuntimeError("kaboom")

    try:
        explode()
    except RuntimeError as exc:
        path = handler.write_log(RuntimeError, exc, exc.__traceback__)
    text = path.read_text()
    assert "kaboom" in text
    assert "Traceback" in text
    assert describe_database("sqlite:////data/studio.db") == "SQLite /data/studio.db"
    assert describe_database("postgresql+psycopg://me:***@db.lan:5432/team") == (
        "PostgreSQL db.lan:5432/team"
    )


def test_planning_a_run_writes_the_database_off_the_gui_thread(
    make_window: Any, qtbot: Any, services: StudioServices, tmp_path: Path, monkeypatch: Any
) -> None:
    import threading

    from codetune_studio.services.training import TrainingRunService

    services.worker_launch = fake_worker_launch(FAKE_WORKER, "--mode", "obey", "--delay", "0.05")
    planned_on: list[threading.Thread] = []
    plan = TrainingRunService.plan

    def recording_plan(self: TrainingRunService, *args: Any, **kwargs: Any) -> Any:
        planned_on.append(threading.current_thread())
        return plan(self, *args, **kwargs)

    monkeypatch.setattr(TrainingRunService, "plan", recording_plan)
    window = make_window()
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    window.parameters_panel.set_dataset_path(str(data))
    run_id = window.start_training()
    # The PENDING row is written by a pool thread; the window still gets the run back at once.
    assert planned_on
    assert planned_on[0] is not threading.main_thread()
    assert services.experiments.get_run(run_id).name
    controller = window.coordinator.target(run_id)
    assert controller is not None
    with qtbot.waitSignal(window.run_ended, timeout=20_000):
        controller.stop()
