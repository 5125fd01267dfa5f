"""Help > Documentation (F1): the manual in ``resources/docs`` with contents, search and links.

Pages are Markdown files rendered by Qt's own Markdown support. Links between pages
(``[text](page.md#heading)``) open in the viewer; web links open in the browser. The recipe
reference is generated from the recipe schema when it is shown, so it always matches the studio.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Final

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.ui.safe_slot import safe_slot

__all__ = ["RECIPE_PAGE", "DocsDialog", "heading_anchor"]

logger = logging.getLogger(__name__)

#: The page generated from the recipe schema.
RECIPE_PAGE: Final = "recipe-reference"
_INDEX: Final = "index"
_LINK = re.compile(r"\]\(([\w\-]+)\.md(?:#[\w\-]+)?\)")
_HEADING = re.compile(r"^(#{1,3}) +(.+?) *$", re.MULTILINE)
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def heading_anchor(text: str) -> str:
    """A heading's anchor, by GitHub's rule (so links work on GitHub too)."""
    from codetune_studio.core.recipe_docs import heading_anchor as anchor

    return anchor(text)


class DocsDialog(QDialog):
    """The manual: a contents tree (pages and their sections), a search box and the page.

    Args:
        docs_dir: The folder of ``*.md`` pages.
        parent: The Qt parent.
        page: The page to open first (its file name without ``.md``); the index by default.
        anchor: A heading anchor on that page to scroll to.
    """

    def __init__(
        self,
        docs_dir: Path,
        parent: QWidget | None = None,
        *,
        page: str | None = None,
        anchor: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("CodeTune Studio documentation")
        self.setObjectName("docsDialog")
        self.resize(1100, 760)
        self._docs_dir = docs_dir
        self._texts: dict[str, str] = {}
        self._items: dict[str, QTreeWidgetItem] = {}
        self._history: list[tuple[str, str | None]] = []
        #: The page shown (file name without ``.md``).
        self.current_page: str | None = None
        self._build_ui()
        self._connect_signals()
        self._load_pages()
        if self._texts:
            self.open_page(page or (_INDEX if _INDEX in self._texts else self.page_names()[0]),
                           anchor)  # fmt: skip
        else:
            self.browser.setMarkdown("No documentation pages found in `resources/docs`.")

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        layout = QHBoxLayout(self)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        side = QWidget(splitter)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        self.search = QLineEdit(side)
        self.search.setObjectName("docsSearch")
        self.search.setPlaceholderText("Search the manual…")
        self.search.setClearButtonEnabled(True)
        side_layout.addWidget(self.search)
        self.search_status = QLabel(side)
        self.search_status.setStyleSheet("color: palette(mid); font-size: 11px;")
        side_layout.addWidget(self.search_status)
        self.contents = QTreeWidget(side)
        self.contents.setObjectName("docsContents")
        self.contents.setHeaderHidden(True)
        side_layout.addWidget(self.contents, 1)
        self.back_button = QPushButton("Back", side)
        self.back_button.setEnabled(False)
        side_layout.addWidget(self.back_button)
        side.setMaximumWidth(300)
        self.browser = QTextBrowser(splitter)
        self.browser.setObjectName("docsBrowser")
        self.browser.setOpenLinks(False)  # page links are ours; web links go to the browser
        splitter.addWidget(side)
        splitter.addWidget(self.browser)
        splitter.setStretchFactor(1, 1)
        layout.addWidget(splitter)

    def _connect_signals(self) -> None:
        self.contents.itemClicked.connect(self._on_contents_item_clicked)
        self.browser.anchorClicked.connect(self._on_browser_anchor_clicked)
        self.search.returnPressed.connect(self._on_search_return_pressed)
        self.search.textChanged.connect(self._on_search_text_changed)
        self.back_button.clicked.connect(self._on_back_button_clicked)

    def _load_pages(self) -> None:
        if not self._docs_dir.is_dir():
            return
        for path in sorted(self._docs_dir.glob("*.md")):
            try:
                self._texts[path.stem] = path.read_text(encoding="utf-8")
            except OSError as exc:
                self._texts[path.stem] = f"# {path.stem}\n\nCannot read {path}: {exc}"
        self._texts[RECIPE_PAGE] = _recipe_reference()
        for name in self.page_names():
            item = QTreeWidgetItem(self.contents, [_title(name, self._texts[name])])
            item.setData(0, Qt.ItemDataRole.UserRole, (name, None))
            for level, text in _headings(self._texts[name]):
                if level == 2:
                    child = QTreeWidgetItem(item, [text])
                    child.setData(0, Qt.ItemDataRole.UserRole, (name, heading_anchor(text)))
            self._items[name] = item

    # --- navigation ---------------------------------------------------------------------------

    def page_names(self) -> list[str]:
        """The pages in contents order: the index, the pages it links to, then the rest."""
        order = [_INDEX] if _INDEX in self._texts else []
        for linked in _LINK.findall(_FENCE.sub("", self._texts.get(_INDEX, ""))):
            if linked in self._texts and linked not in order:
                order.append(linked)
        return order + sorted(name for name in self._texts if name not in order)

    def open_page(self, name: str, anchor: str | None = None, *, remember: bool = True) -> bool:
        """Show a page, scrolled to ``anchor`` when given.

        Returns:
            Whether the page (and the anchor, if any) exist.
        """
        if name not in self._texts:
            logger.info("no documentation page %r", name)
            return False
        if remember and self.current_page is not None:
            self._history.append((self.current_page, None))
            self.back_button.setEnabled(True)
        if name != self.current_page:
            self.browser.document().setBaseUrl(QUrl.fromLocalFile(str(self._docs_dir) + "/"))
            self.browser.setSearchPaths([str(self._docs_dir)])
            self.browser.setMarkdown(self._texts[name])
            self.current_page = name
        item = self._items.get(name)
        if item is not None:
            self.contents.setCurrentItem(item)
            item.setExpanded(True)
        found = self.scroll_to(anchor) if anchor else True
        if not anchor:
            self.browser.verticalScrollBar().setValue(0)
        term = self.search.text().strip()
        if term:
            self.browser.moveCursor(QTextCursor.MoveOperation.Start)
            self.browser.find(term)
        return found

    def scroll_to(self, anchor: str) -> bool:
        """Scroll the page so the heading with this anchor is at the top."""
        document = self.browser.document()
        block = document.begin()
        while block.isValid():
            if block.blockFormat().headingLevel() and heading_anchor(block.text()) == anchor:
                cursor = QTextCursor(block)
                self.browser.setTextCursor(cursor)
                top = document.documentLayout().blockBoundingRect(block).top()
                self.browser.verticalScrollBar().setValue(int(top))
                return True
            block = block.next()
        return False

    def page_links(self) -> list[str]:
        """The links on the rendered page (``href`` values), in order."""
        return re.findall(r'href="([^"]*)"', self.browser.document().toHtml())

    def page_images(self) -> list[str]:
        """The image sources on the rendered page."""
        return re.findall(r'<img src="([^"]*)"', self.browser.document().toHtml())

    def image_loads(self, source: str) -> bool:
        """Whether an image of the page resolves to a picture."""
        resource = self.browser.document().resource(
            QTextDocument.ResourceType.ImageResource, QUrl(source)
        )
        return resource is not None and not getattr(resource, "isNull", lambda: False)()

    def follow(self, href: str) -> bool:
        """Follow a link of the page as a click would; ``False`` for a broken internal link."""
        url = QUrl(href)
        if url.scheme() in {"http", "https", "mailto"}:
            QDesktopServices.openUrl(url)
            return True
        path, _, fragment = href.partition("#")
        name = Path(path).stem if path else (self.current_page or "")
        return self.open_page(name, fragment or None)

    def search_pages(self, term: str) -> list[str]:
        """The pages whose text holds ``term`` (any case)."""
        lowered = term.lower()
        return [name for name in self.page_names() if lowered in self._texts[name].lower()]

    # --- slots --------------------------------------------------------------------------------

    @safe_slot()
    def _on_contents_item_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        name, anchor = item.data(0, Qt.ItemDataRole.UserRole)
        self.open_page(name, anchor)

    @safe_slot()
    def _on_browser_anchor_clicked(self, url: QUrl) -> None:
        if not self.follow(url.toString()):
            self.search_status.setText(f"No such page or section: {url.toString()}")

    @safe_slot()
    def _on_search_return_pressed(self) -> None:
        term = self.search.text().strip()
        if not term:
            return
        if not self.browser.find(term):  # next match on this page, else the next page with one
            pages = self.search_pages(term)
            after = [p for p in pages if self.current_page is None or p > self.current_page]
            candidates = after or pages
            if candidates:
                self.open_page(candidates[0])

    @safe_slot()
    def _on_search_text_changed(self, text: str) -> None:
        term = text.strip()
        pages = set(self.search_pages(term)) if term else set(self._texts)
        for name, item in self._items.items():
            item.setHidden(name not in pages)
        self.search_status.setText(
            f"{len(pages)} page{'s' if len(pages) != 1 else ''} mention “{term}”" if term else ""
        )

    @safe_slot()
    def _on_back_button_clicked(self) -> None:
        if self._history:
            name, anchor = self._history.pop()
            self.open_page(name, anchor, remember=False)
        self.back_button.setEnabled(bool(self._history))


def _recipe_reference() -> str:
    from codetune_studio.core.recipe_docs import recipe_reference_markdown

    return recipe_reference_markdown()


def _title(name: str, text: str) -> str:
    first = next((t for level, t in _headings(text) if level == 1), None)
    return first or name.replace("-", " ").replace("_", " ").capitalize()


def _headings(text: str) -> list[tuple[int, str]]:
    return [(len(m.group(1)), m.group(2)) for m in _HEADING.finditer(_FENCE.sub("", text))]
