"""Starting the studio when the configured PostgreSQL server cannot be reached."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.paths import resolve_paths
from codetune_studio.secrets import MemorySecretStore
from codetune_studio.services.database import OpenedDatabase, open_database
from codetune_studio.settings import SettingsStore
from codetune_studio.ui import notify
from codetune_studio.ui.app import DatabaseChoice, open_studio_window

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.core.paths import StudioPaths

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:9/studio"  # port 9: refused at once


@dataclass
class _Context:
    paths: StudioPaths
    settings_store: SettingsStore
    secrets: MemorySecretStore
    offline: bool = True
    database_url: str | None = UNREACHABLE

    def open_database(self, *, upgrade: bool = True) -> OpenedDatabase:
        return open_database(
            self.database_url,
            sqlite_path=self.paths.database_file,
            allow_fallback=False,
            connect_timeout=1,
            upgrade=upgrade,
        )


@pytest.fixture
def context(tmp_path: Path) -> _Context:
    paths = resolve_paths(tmp_path / "studio").ensure()
    return _Context(paths, SettingsStore(paths.settings_file), MemorySecretStore())


def test_unreachable_postgres_offers_the_local_store_and_the_window_says_so(
    qtbot: Any, context: _Context
) -> None:
    asked: list[tuple[str, Path]] = []

    def use_local(problem: str, local_store: Path) -> DatabaseChoice:
        asked.append((problem, local_store))
        return DatabaseChoice.USE_LOCAL

    window = open_studio_window(context, ask=use_local)
    assert window is not None
    qtbot.addWidget(window)
    try:
        ((problem, local_store),) = asked
        assert "127.0.0.1:9" in problem
        assert local_store == context.paths.database_file
        assert window.isVisible()
        assert window.services.database_label.startswith("SQLite ")
        assert str(context.paths.database_file) in window.services.database_label
        label = window.database_label
        assert label.isVisible()
        assert "SQLite" in label.text()
        assert "local SQLite store" in label.toolTip()
        warnings = [n.text for n in notify.history() if n.level == "warning"]
        assert any("Cannot reach PostgreSQL" in text for text in warnings), warnings
    finally:
        window.close()


def test_quitting_at_the_unreachable_database_question_opens_no_window(
    qtbot: Any, context: _Context
) -> None:
    assert open_studio_window(context, ask=lambda problem, store: DatabaseChoice.QUIT) is None


def test_without_a_display_the_command_says_so_instead_of_aborting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codetune_studio.cli import main

    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: No display to open the studio window on")
    assert "codetune-studio --help" in err


def test_a_missing_xcb_library_is_named_with_its_package_instead_of_aborting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codetune_studio.cli import main
    from codetune_studio.ui import platform_check

    def load(name: str) -> str | None:
        if name == "libxcb-cursor.so.0":
            return f"{name}: cannot open shared object file: No such file or directory"
        return None

    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr(platform_check, "load_error", load)
    assert main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The studio window needs system libraries that are missing: ")
    assert "sudo apt-get install libxcb-cursor0 " in err
    assert err.count("\n") == 1


@pytest.mark.reliability
def test_the_window_names_the_server_stays_usable_and_opens_settings(
    qtbot: Any, context: _Context
) -> None:
    """Issue 14, PostgreSQL unreachable at start: the real question box, "Open Settings"."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from codetune_studio.ui.dialogs.settings import SettingsDialog

    seen: dict[str, str] = {}

    def answer_the_question() -> None:
        # Read the box as the user would, then press "Open Settings".
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]
        if not boxes or not boxes[0].isVisible():
            QTimer.singleShot(20, answer_the_question)
            return
        box = boxes[0]
        seen["text"] = box.text()
        seen["informative"] = box.informativeText()
        seen["buttons"] = ", ".join(b.text() for b in box.buttons())
        (settings,) = [b for b in box.buttons() if b.text() == "Open Settings"]
        settings.click()

    notify.clear_history()
    QTimer.singleShot(0, answer_the_question)
    window = open_studio_window(context)  # the real question box
    assert window is not None
    qtbot.addWidget(window)
    try:
        assert seen["text"] == "Cannot reach PostgreSQL at 127.0.0.1:9/studio: connection refused."
        assert "Start the server or fix the database URL in Settings" in seen["informative"]
        assert str(context.paths.database_file) in seen["informative"]
        assert "Use local store" in seen["buttons"]
        assert "Quit" in seen["buttons"]
        # Usable: the window is up on the local store, and says which server to fix where.
        assert window.isVisible()
        assert window.services.database_label.startswith("SQLite ")
        warnings = [n.text for n in notify.history() if n.level == "warning"]
        assert any("127.0.0.1:9" in t and "File > Settings" in t for t in warnings), warnings
        # ...and Settings is open, on the database URL to fix.
        dialog = window.findChild(SettingsDialog)
        assert dialog is not None
        assert dialog.isVisible()
        dialog.close()
    finally:
        window.close()
