"""The one place an error, a warning or a piece of news becomes visible to the user.

Notices are non-modal: a message in the main window's status bar and a small card in a stack at
the window's lower right, which fades after a few seconds (errors stay longer and keep a close
button). Before a window exists, or in tests of a lone panel, notices are only logged and kept in
:func:`history`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.errors import CodetuneError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Level", "Notice", "error", "history", "info", "install", "message_for", "warning"]

logger = logging.getLogger(__name__)

_HISTORY_LIMIT = 200
_DURATION_MS = {"info": 5000, "warning": 8000, "error": 12000}
_MAX_CARDS = 4


class Level(StrEnum):
    """How serious a notice is."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice as shown.

    Attributes:
        level: Its seriousness.
        text: What the user reads.
    """

    level: Level
    text: str


_history: list[Notice] = []
_area: _NoticeArea | None = None


def history() -> list[Notice]:
    """The notices shown so far in this process, oldest first (at most 200)."""
    return list(_history)


def clear_history() -> None:
    """Forget the notices shown so far (tests)."""
    _history.clear()


def install(window: QMainWindow) -> None:
    """Show notices in ``window``: its status bar and a stack of cards in its corner.

    Args:
        window: The main window.
    """
    global _area
    _area = _NoticeArea(window)


def uninstall(window: QMainWindow) -> None:
    """Stop showing notices in ``window`` (it is closing)."""
    global _area
    if _area is not None and _area.window is window:
        _area.deleteLater()
        _area = None


def message_for(exc: BaseException) -> str:
    """The sentence a user reads for an exception.

    Our own errors carry a message written for people; anything else is a bug, so it is named
    and the user pointed at the log.

    Args:
        exc: The exception.

    Returns:
        One line of text.
    """
    if isinstance(exc, CodetuneError):
        return str(exc)
    detail = str(exc) or exc.__class__.__name__
    return (
        f"Unexpected error ({exc.__class__.__name__}: {detail}). "
        "Details are in the log file (Help > Documentation says where)."
    )


def error(problem: BaseException | str) -> None:
    """Show an error: something the user asked for did not happen.

    Args:
        problem: The exception, or the message to show.
    """
    text = problem if isinstance(problem, str) else message_for(problem)
    _show(Notice(Level.ERROR, text))


def warning(text: str) -> None:
    """Show a warning: it worked, but not quite as the user might expect."""
    _show(Notice(Level.WARNING, text))


def info(text: str) -> None:
    """Show a piece of news, such as "Run 4 finished"."""
    _show(Notice(Level.INFO, text))


def _show(notice: Notice) -> None:
    log_level = {
        Level.INFO: logging.INFO,
        Level.WARNING: logging.INFO,  # already reported by whoever raised it; not a log warning
        Level.ERROR: logging.INFO,
    }[notice.level]
    logger.log(log_level, "notice (%s): %s", notice.level.value, notice.text)
    _history.append(notice)
    del _history[:-_HISTORY_LIMIT]
    if _area is not None:
        _area.show_notice(notice)


class _Card(QFrame):
    """One notice in the corner stack."""

    def __init__(self, notice: Notice, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName(f"notice_{notice.level.value}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        accent = {"info": "#3b82f6", "warning": "#d97706", "error": "#dc2626"}[notice.level]
        self.setStyleSheet(
            f"QFrame#{self.objectName()} {{ border: 1px solid palette(mid);"
            f" border-left: 4px solid {accent}; border-radius: 4px; background: palette(window); }}"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 4, 6)
        label = QLabel(notice.text, self)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(label, 1)
        close = QToolButton(self)
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.deleteLater)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        QTimer.singleShot(_DURATION_MS[notice.level], self.deleteLater)


class _NoticeArea(QWidget):
    """A transparent column of cards pinned to the main window's lower right corner."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window_ = window
        self.setObjectName("noticeArea")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, False)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._layout.addStretch(1)
        self.setFixedWidth(380)
        window.installEventFilter(self)
        self.hide()

    @property
    def window(self) -> QMainWindow:  # type: ignore[override]
        return self.window_

    def show_notice(self, notice: Notice) -> None:
        """Add a card and a status-bar message."""
        timeout = _DURATION_MS[notice.level]
        self.window_.statusBar().showMessage(notice.text, timeout)
        cards = list(self._cards())
        for old in cards[: max(0, len(cards) - _MAX_CARDS + 1)]:
            old.deleteLater()
        card = _Card(notice, self)
        card.destroyed.connect(self._on_card_destroyed)
        self._layout.addWidget(card)
        self._place()
        self.show()
        self.raise_()

    def _cards(self) -> Iterator[_Card]:
        for index in range(self._layout.count()):
            item = self._layout.itemAt(index)
            widget = item.widget() if item is not None else None
            if isinstance(widget, _Card):
                yield widget

    def _on_card_destroyed(self) -> None:
        QTimer.singleShot(0, self._place)

    def _place(self) -> None:
        alive = [card for card in self._cards() if not card.isHidden()]
        if not alive:
            self.hide()
            return
        self.adjustSize()
        height = min(self.sizeHint().height(), max(60, self.window_.height() - 120))
        bar = self.window_.statusBar().height()
        self.setGeometry(
            self.window_.width() - self.width() - 16,
            self.window_.height() - height - bar - 12,
            self.width(),
            height,
        )

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window_ and event.type() == QEvent.Type.Resize:
            self._place()
        return False
