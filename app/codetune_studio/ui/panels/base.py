"""The contract every docked panel keeps."""

from __future__ import annotations

from typing import Any, ClassVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

__all__ = ["Panel"]


class Panel(QWidget):
    """A widget the main window docks: it has an id, a title and a default place.

    ``MainWindow`` wraps each panel in a ``QDockWidget`` whose object name is
    ``f"{panel_id}Dock"``, so ``saveState()``/``restoreState()`` find it again after a restart.

    Attributes:
        panel_id: A stable identifier (also the dock's object name stem).
        title: What the dock's title bar says.
        default_area: Where the dock goes in the default layout.
    """

    panel_id: ClassVar[str] = "panel"
    title: ClassVar[str] = "Panel"
    default_area: ClassVar[Qt.DockWidgetArea] = Qt.DockWidgetArea.LeftDockWidgetArea

    def shutdown(self) -> None:
        """Cancel background work and release resources; the window is closing."""

    def save_state(self) -> dict[str, Any]:
        """What the panel wants back after a restart (JSON-compatible)."""
        return {}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`save_state` returned in an earlier session.

        Args:
            state: The saved state; it may come from an older version, so read it defensively.
        """
