"""Fixtures for the window's tests: services on a temporary SQLite store, a window, fake workers."""

from __future__ import annotations

import sys
import threading
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


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a Python thread running."""
    before = set(threading.enumerate())
    yield
    from PySide6.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(5000)
    # Qt's own threads show up as _DummyThread once they log; the pool wait above covers them.
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not isinstance(t, threading._DummyThread)
    ]
    assert not leaked, f"threads leaked: {leaked}"


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
