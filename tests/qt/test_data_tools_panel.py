"""The Datasets panel lists every bad row; its Tokens tab shows trained and masked tokens."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from codetune_studio.ui.panels.datasets import DatasetsPanel
from tests import engine_fixtures

if TYPE_CHECKING:
    from pathlib import Path

    from PySide6.QtWidgets import QTableWidget

    from codetune_studio.services.experiments import ExperimentService

tiny_model_dir = engine_fixtures.tiny_model_dir


def _cell(table: QTableWidget, row: int, column: int) -> str:
    item = table.item(row, column)
    assert item is not None, f"no cell at ({row}, {column})"
    return item.text()


def _findings(panel: DatasetsPanel) -> list[tuple[str, str]]:
    return [
        (_cell(panel.findings, r, 0), _cell(panel.findings, r, 1))
        for r in range(panel.findings.rowCount())
    ]


def test_findings_list_every_bad_row_and_likely_secret(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path
) -> None:
    data = tmp_path / "mixed.jsonl"
    rows = [json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(5)]
    rows[1] = '{"prompt": "broken'
    rows[3] = json.dumps({"prompt": "q", "completion": 'key = "AKIAIOSFODNN7EXAMPLE"'})
    code = "def area(w, h):\n    result = w * h\n    return result\n"
    near = [
        json.dumps({"prompt": "Write area.", "completion": code}),
        json.dumps({"prompt": "Write area. ", "completion": code.replace(" * ", "  *  ")}),
    ]
    data.write_text("\n".join(rows) + "\n[1]\n" + "\n".join(near) + "\n", encoding="utf-8")
    panel = DatasetsPanel(experiments, tmp_path / "no-samples")
    qtbot.addWidget(panel)

    with qtbot.waitSignal(panel.analysis_finished, timeout=10_000):
        panel.add_path(data)

    found = _findings(panel)
    assert ("2", found[0][1]) == found[0]
    assert found[0][1].startswith("bad row: invalid JSON")
    assert ("6", "bad row: found an array, expected a JSON object record") in found
    assert any(row == "4" and "likely secret: AWS access key" in text for row, text in found)
    assert ("8", "near-duplicate (100%) of 7") in found
    assert "2 bad rows" in panel.summary.text()
    panel.shutdown()


def test_tokens_tab_steps_through_samples_and_jumps_to_the_worst(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path, tiny_model_dir: Path
) -> None:
    data = tmp_path / "qa.jsonl"
    rows = [
        {"prompt": "Q: one? A:", "completion": " 1"},
        {"prompt": "Q: long? A:", "completion": " word" * 100},
        {"prompt": "Q: two? A:", "completion": " 2"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    panel = DatasetsPanel(experiments, tmp_path / "no-samples", data_dir=tmp_path / "studio")
    qtbot.addWidget(panel)
    panel.show()
    panel.set_model(str(tiny_model_dir), 48)
    with qtbot.waitSignal(panel.analysis_finished, timeout=15_000):
        panel.add_path(data)

    panel.tabs.setCurrentWidget(panel.tokens)
    tokens = panel.tokens
    qtbot.waitUntil(lambda: tokens.view is not None, timeout=15_000)

    assert tokens.count_label.text() == "of 3"
    assert "EOS present and trained" in tokens.summary.text()
    shown = tokens.browser.toHtml()
    assert "#bbf7d0" in shown or "#86efac" in shown  # trained tokens, green
    assert "#f3f4f6" in shown or "#e5e7eb" in shown  # masked prompt tokens, grey
    tokens.next_button.click()
    assert tokens.view is not None
    assert tokens.view.source.endswith(":2")
    tokens.worst_combo.setCurrentIndex(tokens.worst_combo.findData("no-eos"))
    tokens.show_sample(0)
    tokens.worst_button.click()
    assert tokens.view.source.endswith(":2")
    assert tokens.view.truncated
    assert "max_seq_length 48" in tokens.browser.toPlainText()
    assert "no EOS" in tokens.summary.text()
    panel.shutdown()
