"""Starting the studio window: the application, the crash handler, the database, the services."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from datetime import UTC, datetime
from enum import Enum, auto
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from codetune_studio import __version__
from codetune_studio.core.errors import CodetuneError, StorageError, StorageUnavailableError
from codetune_studio.core.fileio import atomic_write_text
from codetune_studio.core.redact import known_secret_values, scrub

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import TracebackType

    from codetune_studio.core.paths import StudioPaths
    from codetune_studio.secrets import SecretStore
    from codetune_studio.services.database import OpenedDatabase
    from codetune_studio.settings import SettingsStore
    from codetune_studio.ui.main_window import MainWindow
    from codetune_studio.ui.studio_services import StudioServices

__all__ = [
    "CrashHandler",
    "DatabaseChoice",
    "StudioContext",
    "ask_database_choice",
    "describe_unreachable",
    "open_studio_window",
    "run_studio",
]

logger = logging.getLogger(__name__)

#: Set to quit right after the window's first painted frame (start-up timing).
EXIT_AFTER_FIRST_FRAME_ENV = "CODETUNE_EXIT_AFTER_FIRST_FRAME"


class StudioContext(Protocol):
    """What the window needs from the command line's ``CliContext``.

    A protocol, because ``ui`` may not import ``cli``, which sits above it.
    """

    @property
    def paths(self) -> StudioPaths:
        """The studio's folders."""

    @property
    def settings_store(self) -> SettingsStore:
        """The settings file."""

    @property
    def secrets(self) -> SecretStore:
        """The API key store."""

    @property
    def offline(self) -> bool:
        """Whether the network is off limits."""

    @property
    def database_url(self) -> str | None:
        """The configured database URL; ``None`` for the local SQLite store."""

    def open_database(self, *, upgrade: bool = True) -> OpenedDatabase:
        """Connect to the configured database."""


class CrashHandler:
    """``sys.excepthook`` for the window: write a crash log and offer it in a dialog.

    Args:
        log_dir: Where crash logs go.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.last_log: Path | None = None
        self._showing = False
        self._previous = sys.excepthook

    def install(self) -> None:
        """Become ``sys.excepthook``."""
        sys.excepthook = self

    def uninstall(self) -> None:
        """Give ``sys.excepthook`` back."""
        if sys.excepthook is self:
            sys.excepthook = self._previous

    def write_log(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> Path:
        """Write the crash log (secrets masked, readable by its owner only) and return its path."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        path = self.log_dir / f"crash-{stamp}.log"
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # An error's text may quote a database URL or a key: users attach this file to reports.
        text = scrub("".join(traceback.format_exception(exc_type, exc, tb)), known_secret_values())
        atomic_write_text(
            path,
            f"CodeTune Studio {__version__}, Python {sys.version.split()[0]}, {sys.platform}\n\n"
            + text,
            mode=0o600,
        )
        self.last_log = path
        return path

    def __call__(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            QApplication.quit()
            return
        logger.critical("unexpected error", exc_info=(exc_type, exc, tb))
        try:
            path = self.write_log(exc_type, exc, tb)
        except OSError:
            logger.exception("could not write the crash log")
            return
        if self._showing or QApplication.instance() is None:
            return
        self._showing = True
        try:
            self._show_dialog(exc, path)
        finally:
            self._showing = False

    def _show_dialog(self, exc: BaseException, path: Path) -> None:
        box = QMessageBox(QApplication.activeWindow())
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("CodeTune Studio hit an unexpected error")
        box.setText(
            f"Something went wrong: {exc.__class__.__name__}: {exc}\n\n"
            "The studio keeps running, but save your work. A crash log was written; please attach "
            "it when you report the problem."
        )
        box.setDetailedText(str(path))
        open_log = box.addButton("Open crash log", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Close)
        box.exec()
        if box.clickedButton() is open_log:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class DatabaseChoice(Enum):
    """What the user wants when the configured database cannot be reached at start."""

    #: Open the window on the local SQLite store for this session.
    USE_LOCAL = auto()
    #: The same, and open Settings at once to fix the database URL.
    OPEN_SETTINGS = auto()
    #: Do not start.
    QUIT = auto()


def ask_database_choice(problem: str, local_store: Path) -> DatabaseChoice:
    """Ask what to do because the configured database is unreachable.

    Args:
        problem: One line naming the server and what went wrong.
        local_store: The local SQLite file.

    Returns:
        The user's choice.
    """
    box = QMessageBox()
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Database unreachable")
    box.setText(problem)
    box.setInformativeText(
        "Start the server or fix the database URL in Settings, or use the local SQLite store "
        f"for this session ({local_store}; runs recorded there are not shared with your team)."
    )
    settings = box.addButton("Open Settings", QMessageBox.ButtonRole.ActionRole)
    use_local = box.addButton("Use local store", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(settings)
    box.exec()
    clicked = box.clickedButton()
    if clicked is settings:
        return DatabaseChoice.OPEN_SETTINGS
    if clicked is use_local:
        return DatabaseChoice.USE_LOCAL
    return DatabaseChoice.QUIT


def describe_unreachable(exc: StorageUnavailableError) -> str:
    """One line for the window: which server could not be reached, and why (no CLI flags)."""
    from codetune_studio.services.database import DatabaseUnreachableError

    if isinstance(exc, DatabaseUnreachableError):
        return f"Cannot reach PostgreSQL at {exc.target}: {exc.cause}."
    return str(exc)


def _open_database(
    context: StudioContext, ask: Callable[[str, Path], DatabaseChoice] = ask_database_choice
) -> tuple[OpenedDatabase, DatabaseChoice] | None:
    """Open the configured database; offer the local store when PostgreSQL is unreachable.

    Returns:
        The database and what the user chose (``USE_LOCAL`` when nothing was asked), or
        ``None`` when the studio should not start.
    """
    try:
        return context.open_database(), DatabaseChoice.USE_LOCAL
    except StorageUnavailableError as exc:
        problem = describe_unreachable(exc)
        choice = ask(problem, context.paths.database_file)
        if choice is DatabaseChoice.QUIT:
            return None
        from codetune_studio.services.database import OpenedDatabase, open_database

        opened = open_database(None, sqlite_path=context.paths.database_file, allow_fallback=False)
        reason = (
            f"{problem} Using the local SQLite store at {context.paths.database_file} for this "
            "session; start the server or fix the database URL in File > Settings."
        )
        return OpenedDatabase(opened.database, fallback_reason=reason), choice
    except StorageError as exc:
        QMessageBox.critical(None, "Database problem", f"{exc}\n\nThe studio cannot start.")
        return None


def build_services(context: StudioContext, opened: OpenedDatabase) -> StudioServices:
    """Bundle what the window needs from the context and the opened database.

    Args:
        context: The command line's context.
        opened: The database in use.

    Returns:
        The services.
    """
    from codetune_studio.services.audit import AuditService
    from codetune_studio.services.evaluation import EvalService, local_analyzer
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.ui.studio_services import StudioServices

    # Not ``status()``: counting rows of a large shared metrics table would delay the window.
    status_url = opened.database.url_masked
    return StudioServices(
        experiments=ExperimentService(opened.database),
        paths=context.paths,
        secrets=context.secrets,
        database_label=describe_database(status_url),
        # The store actually in use (the local one after a fallback), so workers record there.
        database_url=opened.database.connection_url,
        offline=context.offline,
        fallback_reason=opened.fallback_reason,
        audit=AuditService(opened.database),
        evaluations=EvalService(opened.database, analyzer=local_analyzer()),
    )


def describe_database(url_masked: str) -> str:
    """``sqlite:////x/studio.db`` -> ``SQLite x/studio.db``; PostgreSQL as ``host/db``."""
    if url_masked.startswith("sqlite"):
        return "SQLite " + url_masked.split(":///", 1)[-1]
    rest = url_masked.split("://", 1)[-1]
    host_db = rest.rsplit("@", 1)[-1].split("?", 1)[0]
    return f"PostgreSQL {host_db}"


def _require_display() -> None:
    """Refuse early, in words, where Qt would abort the process blaming a missing library."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise CodetuneError(
            "No display to open the studio window on (DISPLAY and WAYLAND_DISPLAY are unset). "
            "Start it from a desktop session or over `ssh -X`, or use the headless commands: "
            "codetune-studio --help"
        )


def _require_platform_plugin() -> None:
    """Name the system package to install where Qt's X11 plugin would abort the process."""
    from codetune_studio.ui.platform_check import xcb_problem

    problem = xcb_problem()
    if problem:
        raise CodetuneError(problem)


def create_application(argv: list[str] | None = None) -> QApplication:
    """The application object, created once."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("CodeTune Studio")
    app.setApplicationDisplayName("CodeTune Studio")
    app.setOrganizationName("CodeTune")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("codetune-studio")
    _set_window_icon(app)
    return app


def _set_window_icon(app: QApplication) -> None:
    """The studio's icon on every window (the .desktop entry names the same one)."""
    from codetune_studio.ui.studio_services import resources_dir

    icon = resources_dir() / "icons" / "codetune-studio.png"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))


def run_studio(context: StudioContext) -> int:
    """Open the studio window and run until it closes.

    Args:
        context: The command line's context (paths, settings, secrets, database).

    Returns:
        The process exit status.
    """
    _require_display()
    _require_platform_plugin()
    app = create_application()
    crash = CrashHandler(context.paths.log_dir)
    crash.install()
    try:
        window = open_studio_window(context)
        if window is None:
            return 1
        _exit_after_first_frame_if_asked(window, app)
        status = app.exec()
        del window
        return int(status)
    finally:
        crash.uninstall()


def _exit_after_first_frame_if_asked(window: MainWindow, app: QApplication) -> None:
    """Quit once the first frame is painted when ``CODETUNE_EXIT_AFTER_FIRST_FRAME`` is set.

    Timing a start to its first frame from outside (``make package-test`` compares the packaged
    window with the source install's) needs the process to end there.
    """
    if os.environ.get(EXIT_AFTER_FIRST_FRAME_ENV):
        window.first_frame_shown.connect(app.quit)


def open_studio_window(
    context: StudioContext,
    *,
    ask: Callable[[str, Path], DatabaseChoice] = ask_database_choice,
) -> MainWindow | None:
    """Open the database (or the local store, if the user agrees) and show the window.

    Args:
        context: The command line's context.
        ask: Asks what to do when the configured database is unreachable (tests answer it).

    Returns:
        The shown window, or ``None`` when the studio cannot start (the user chose Quit).
    """
    answer = _open_database(context, ask)
    if answer is None:
        return None
    opened, choice = answer
    window = _show_window(context, opened)
    if choice is DatabaseChoice.OPEN_SETTINGS:
        window.open_settings()
    return window


def _show_window(context: StudioContext, opened: OpenedDatabase) -> MainWindow:
    from codetune_studio.ui import notify
    from codetune_studio.ui.main_window import MainWindow

    services = build_services(context, opened)
    window = MainWindow(services, context.settings_store)
    window.show()
    for notice in context.settings_store.notices:
        notify.warning(notice)
    if opened.fallback_reason:
        notify.warning(opened.fallback_reason)
    logger.info("window shown")
    return window
