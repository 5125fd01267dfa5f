"""Fixtures for the window's tests: services on a temporary SQLite store, a window, fake workers."""

from __future__ import annotations

import gc
import sys
import traceback
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.paths import resolve_paths
from codetune_studio.secrets import MemorySecretStore
from codetune_studio.services.database import OpenedDatabase, open_database
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.settings import SettingsStore
from codetune_studio.ui import notify
from codetune_studio.ui.studio_services import StudioServices, WorkerLaunch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The offscreen platform cannot size floating docks natively and says so at WARNING.
    for item in items:
        if "/tests/qt/" in str(item.path):
            item.add_marker(pytest.mark.qt_log_ignore("propagateSizeHints", "support raise"))


class _StartedQtObjects:
    """Every QThread and QTimer a test starts, found by wrapping their ``start`` methods."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from PySide6.QtCore import QThread, QTimer

        # Threads by strong reference: a running QThread whose wrapper is collected aborts the
        # process anyway. Timers by weak reference: a parentless timer dropped by its owner is
        # destroyed (and stopped) with its wrapper, which is no leak.
        self.threads: list[tuple[QThread, str]] = []
        self.timers: list[tuple[weakref.ref[QTimer], str]] = []
        thread_start, timer_start = QThread.start, QTimer.start

        def start_thread(thread: QThread, *args: Any) -> None:
            self.threads.append((thread, _caller()))
            thread_start(thread, *args)

        def start_timer(timer: QTimer, *args: Any) -> None:
            self.timers.append((weakref.ref(timer), _caller()))
            timer_start(timer, *args)

        monkeypatch.setattr(QThread, "start", start_thread)
        monkeypatch.setattr(QTimer, "start", start_timer)

    def running_threads(self) -> list[str]:
        return [
            f"{_name(t)} started at {at}" for t, at in self.threads if _alive(t) and t.isRunning()
        ]

    def active_timers(self) -> list[str]:
        timers = [(ref(), at) for ref, at in self.timers]
        return [
            f"{_name(t)} started at {at}"
            for t, at in timers
            if t is not None and _alive(t) and t.isActive()
        ]


def _caller() -> str:
    """Where the code that called ``start`` is (skipping this module's wrappers)."""
    frame = traceback.extract_stack(limit=3)[0]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _alive(obj: Any) -> bool:
    from shiboken6 import Shiboken

    return bool(Shiboken.isValid(obj))


def _name(obj: Any) -> str:
    parent = obj.parent()
    owner = f" of {type(parent).__name__}" if parent is not None else ""
    return f"{type(obj).__name__}({obj.objectName()!r}){owner}"


def _process_deferred_deletes() -> None:
    from PySide6.QtCore import QCoreApplication, QEvent

    app = QCoreApplication.instance()
    if app is None:
        return
    # pyqtgraph's items hold their parentless menus in reference cycles: collect them first.
    gc.collect()
    for _ in range(3):  # deleting a widget may post the deletion of its helpers
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture(autouse=True)
def no_leaked_qt_objects(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that leaves a QThread running, a QTimer active or a top-level widget alive.

    Runs after pytest-qt has closed and scheduled the deletion of the widgets given to
    ``qtbot.addWidget`` (this fixture is set up first, so it is torn down last).
    """
    from PySide6.QtCore import QThreadPool
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    widgets_before = {id(w) for w in QApplication.topLevelWidgets()} if app else set()
    started = _StartedQtObjects(monkeypatch)
    yield
    pool_done = QThreadPool.globalInstance().waitForDone(10_000)
    _process_deferred_deletes()
    problems = []
    if not pool_done:
        problems.append("QThreadPool tasks (ui.tasks.run_in_thread) still running after 10 s")
    if threads := started.running_threads():
        problems.append(f"QThreads still running: {threads}")
    if timers := started.active_timers():
        problems.append(f"QTimers still active: {timers}")
    leftover = [
        w
        for w in QApplication.topLevelWidgets()
        if id(w) not in widgets_before and _alive(w) and _is_a_window(w)
    ]
    if leftover:
        problems.append(f"top-level widgets left behind: {[_name(w) for w in leftover]}")
        for widget in leftover:  # so the next test starts clean
            widget.close()
            widget.deleteLater()
        _process_deferred_deletes()
    started.threads.clear()
    started.timers.clear()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def _is_a_window(widget: Any) -> bool:
    """A window the user could see: anything visible, or a main window or dialog.

    Hidden popups (context menus pyqtgraph keeps for its plots, a combo box's list) are not
    counted: they belong to their owner and go with it.
    """
    from PySide6.QtWidgets import QDialog, QMainWindow

    return bool(widget.isVisible()) or isinstance(widget, QMainWindow | QDialog)


@pytest.fixture(autouse=True)
def _fresh_notices() -> Iterator[None]:
    notify.clear_history()
    yield
    notify.clear_history()


@pytest.fixture
def opened_db(tmp_path: Path) -> Iterator[OpenedDatabase]:
    opened = open_database(None, sqlite_path=tmp_path / "studio.db", allow_fallback=False)
    yield opened
    opened.close()


@pytest.fixture
def experiments(opened_db: OpenedDatabase) -> ExperimentService:
    return ExperimentService(opened_db.database)


def fake_worker_launch(script: Path, *extra: str) -> Callable[..., WorkerLaunch]:
    """A ``worker_launch`` that runs a fake worker script instead of the real trainer."""

    def launch(*, recipe_file: Path, run_id: int, output_dir: Path, **_: Any) -> WorkerLaunch:
        argv = [sys.executable, str(script), "--run-id", str(run_id), *extra]
        return WorkerLaunch(argv=argv, cwd=output_dir)

    return launch


@pytest.fixture
def services(
    tmp_path: Path, opened_db: OpenedDatabase, experiments: ExperimentService
) -> StudioServices:
    paths = resolve_paths(tmp_path / "studio").ensure()
    return StudioServices(
        experiments=experiments,
        paths=paths,
        secrets=MemorySecretStore(),
        database_label=f"SQLite {tmp_path / 'studio.db'}",
        database_url=opened_db.database.connection_url,
        offline=True,
        plugins=lambda disabled: [],
    )


@pytest.fixture
def settings_store(services: StudioServices) -> SettingsStore:
    return SettingsStore(services.paths.settings_file)


@pytest.fixture
def make_window(
    qtbot: Any, services: StudioServices, settings_store: SettingsStore
) -> Iterator[Callable[..., Any]]:
    """Build main windows; each is closed (leaving no run behind) at the end of the test."""
    from codetune_studio.ui.main_window import CloseChoice, MainWindow

    windows: list[MainWindow] = []

    def make(**kwargs: Any) -> MainWindow:
        window = MainWindow(services, settings_store, detect_device=False, **kwargs)
        window.ask_close_choice = lambda: CloseChoice.STOP
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.isVisible() or window.active_controllers:
            window.close()
