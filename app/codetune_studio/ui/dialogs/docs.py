"""Help > Documentation: the Markdown pages in ``resources/docs`` in a browser pane."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTextBrowser,
    QWidget,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DocsDialog"]

logger = logging.getLogger(__name__)


class DocsDialog(QDialog):
    """Lists the documentation pages and shows the selected one as rendered Markdown.

    Args:
        docs_dir: The folder of ``*.md`` pages.
        parent: The Qt parent.
    """

    def __init__(self, docs_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("CodeTune Studio documentation")
        self.setObjectName("docsDialog")
        self.resize(1000, 700)
        self._docs_dir = docs_dir
        self._build_ui()
        self._connect_signals()
        self._load_pages()

    def _build_ui(self) -> None:
        layout = QHBoxLayout(self)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.pages = QListWidget(splitter)
        self.pages.setMaximumWidth(260)
        self.browser = QTextBrowser(splitter)
        self.browser.setObjectName("docsBrowser")
        self.browser.setOpenExternalLinks(True)
        splitter.addWidget(self.pages)
        splitter.addWidget(self.browser)
        splitter.setStretchFactor(1, 1)
        layout.addWidget(splitter)

    def _connect_signals(self) -> None:
        self.pages.currentItemChanged.connect(self._on_pages_current_item_changed)

    def _load_pages(self) -> None:
        paths = sorted(self._docs_dir.glob("*.md")) if self._docs_dir.is_dir() else []
        for path in paths:
            item = QListWidgetItem(path.stem.replace("-", " ").replace("_", " ").capitalize())
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            self.pages.addItem(item)
        if paths:
            self.pages.setCurrentRow(0)
        else:
            self.browser.setMarkdown("No documentation pages found in `resources/docs`.")

    def _on_pages_current_item_changed(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        from pathlib import Path

        path = Path(str(item.data(Qt.ItemDataRole.UserRole)))
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            text = f"Cannot read {path}: {exc}"
        self.browser.setSearchPaths([str(path.parent)])
        self.browser.setMarkdown(text)
