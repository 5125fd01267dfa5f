"""The manual: every page renders with working internal links and images; F1 opens entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codetune_studio.core.recipe_docs import recipe_fields, recipe_reference_markdown
from codetune_studio.ui.dialogs.docs import RECIPE_PAGE, DocsDialog, heading_anchor

DOCS = Path(__file__).resolve().parents[2] / "resources" / "docs"
REQUIRED_PAGES = {
    "index", "quickstart", "dataset-formats", "data-tools", RECIPE_PAGE, "plugins",
    "team-postgresql", "multi-gpu", "troubleshooting", "architecture",
}  # fmt: skip


@pytest.fixture
def viewer(qtbot: Any) -> DocsDialog:
    dialog = DocsDialog(DOCS)
    qtbot.addWidget(dialog)
    return dialog


def test_every_page_renders_with_no_broken_internal_link_or_missing_image(viewer):
    assert set(viewer.page_names()) >= REQUIRED_PAGES
    broken: list[str] = []
    links_seen = 0
    for page in viewer.page_names():
        viewer.open_page(page)
        assert viewer.browser.toPlainText().strip(), page
        block = viewer.browser.document().begin()
        while block.isValid():  # raw HTML such as "<data dir>" would swallow what follows
            if block.blockFormat().headingLevel():
                assert block.text().strip(), f"{page}: an empty heading"
            block = block.next()
        for href in viewer.page_links():
            if href.startswith(("http://", "https://", "mailto:")):
                continue
            links_seen += 1
            if not viewer.follow(href):
                broken.append(f"{page}: {href}")
            viewer.open_page(page)
        for image in viewer.page_images():
            if not viewer.image_loads(image):
                broken.append(f"{page}: image {image}")
    assert not broken
    assert links_seen >= 15  # the index alone links every page


def test_a_broken_link_is_caught(viewer):
    assert not viewer.follow("no-such-page.md")
    assert not viewer.follow("quickstart.md#no-such-heading")
    assert viewer.follow("troubleshooting.md#the-loss-goes-nan")
    assert viewer.current_page == "troubleshooting"


def test_every_recipe_field_has_an_entry():
    fields = recipe_fields()
    missing = [f.key for f in fields if not f.documented]
    assert not missing, f"recipe keys with no description or note in core/recipe_docs.py: {missing}"
    page = recipe_reference_markdown()
    for field in fields:
        assert f"\n### {field.key}\n" in page
    assert "skip_invalid_rows" in page


def test_the_shipped_recipe_reference_is_current():
    shipped = (DOCS / f"{RECIPE_PAGE}.md").read_text(encoding="utf-8")
    assert shipped == recipe_reference_markdown(), (
        "regenerate: python -m codetune_studio.core.recipe_docs resources/docs/recipe-reference.md"
    )


def test_contents_and_search(viewer):
    titles = [
        viewer.contents.topLevelItem(i).text(0) for i in range(viewer.contents.topLevelItemCount())
    ]
    assert titles[0] == "CodeTune Studio manual"
    assert "Troubleshooting" in titles
    assert "multi-gpu" in viewer.search_pages("accelerate launch")
    assert "plugins" not in viewer.search_pages("accelerate launch")
    viewer.search.setText("NaN")
    hidden = {
        viewer.contents.topLevelItem(i).text(0)
        for i in range(viewer.contents.topLevelItemCount())
        if viewer.contents.topLevelItem(i).isHidden()
    }
    assert "Troubleshooting" not in hidden
    assert "Plugins" in hidden
    viewer.search.returnPressed.emit()
    assert "NaN" in viewer.browser.textCursor().selectedText()


def test_f1_on_a_parameter_field_opens_its_entry(make_window: Any, qtbot: Any) -> None:
    window = make_window()
    field = window.findChild(object, "field_training_learning_rate")
    assert field is not None
    field.setFocus()
    assert window.focusWidget() is field

    window.docs_action.trigger()

    dialog = window.findChild(DocsDialog)
    assert dialog is not None
    assert dialog.current_page == RECIPE_PAGE
    cursor_block = dialog.browser.textCursor().block()
    assert cursor_block.text() == "training.learning_rate"
    assert heading_anchor("training.learning_rate") == "traininglearning_rate"
    dialog.close()
