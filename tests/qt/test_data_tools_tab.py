"""The Data tools panel: train, cancel and compare tokenizers; make a dataset from code."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from codetune_studio.ui.panels.data_tools import DataToolsPanel
from tests import engine_fixtures

if TYPE_CHECKING:
    from pathlib import Path

    from PySide6.QtWidgets import QTableWidget

tiny_model_dir = engine_fixtures.tiny_model_dir


def _cell(table: QTableWidget, row: int, column: int) -> str:
    item = table.item(row, column)
    assert item is not None, f"no cell at ({row}, {column})"
    return item.text()


def _corpus(tmp_path: Path, rows: int) -> Path:
    data = tmp_path / "code.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": f"def f_{i}(x):\n    return x * {i} + {i % 11}\n"}) + "\n"
            for i in range(rows)
        ),
        encoding="utf-8",
    )
    return data


def test_train_then_compare_in_the_panel(qtbot: Any, tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    data = _corpus(tmp_path, 300)
    panel = DataToolsPanel(current_dataset=lambda: str(data))
    qtbot.addWidget(panel)
    panel.add_current_button.click()
    assert panel.input_paths() == [str(data)]
    panel.vocab_spin.setValue(400)
    panel.out_edit.setText(str(tmp_path / "tok"))

    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.trained_dir is not None, timeout=30_000)
    qtbot.waitUntil(panel.train_button.isEnabled, timeout=5_000)

    assert "Saved a" in panel.status.text()
    assert AutoTokenizer.from_pretrained(tmp_path / "tok").eos_token == "<|im_end|>"
    panel.compare_edit.setText(str(tiny_model_dir))
    panel.compare_button.click()
    qtbot.waitUntil(lambda: panel.compare_table.rowCount() == 2, timeout=30_000)
    assert _cell(panel.compare_table, 0, 0) == "tok"
    assert _cell(panel.compare_table, 0, 3) == "0.00%"
    assert [s.name for s in panel.stats] == [str(tmp_path / "tok"), str(tiny_model_dir)]
    panel.shutdown()


def test_cancel_saves_nothing(qtbot: Any, tmp_path: Path) -> None:
    data = _corpus(tmp_path, 20_000)
    panel = DataToolsPanel()
    qtbot.addWidget(panel)
    panel.add_input(str(data))
    panel.out_edit.setText(str(tmp_path / "tok"))

    panel.train_button.click()
    panel.cancel_button.click()
    qtbot.waitUntil(panel.train_button.isEnabled, timeout=60_000)

    assert panel.status.text() == "Cancelled: nothing was saved."
    assert not (tmp_path / "tok").exists()
    panel.shutdown()


def test_dataset_from_code_lists_skips_and_announces_the_file(qtbot: Any, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "a.py").write_text(
        'def add(a, b):\n    """Add."""\n    total = a + b\n    return total\n', "utf-8"
    )
    (project / "b.py").write_text("def nodoc(x):\n    return x\n", "utf-8")
    panel = DataToolsPanel()
    qtbot.addWidget(panel)
    panel.code_folder_edit.setText(str(project))
    panel.code_out_edit.setText(str(tmp_path / "pairs.jsonl"))
    panel.eval_share_spin.setValue(0.0)

    with qtbot.waitSignal(panel.dataset_made, timeout=10_000) as made:
        panel.make_button.click()

    assert made.args == [str(tmp_path / "pairs.jsonl")]
    assert _cell(panel.skipped_table, 0, 0) == "b.py:1"
    assert _cell(panel.skipped_table, 0, 1) == "nodoc: no docstring"
    assert "1 train pairs from 2 files" in panel.code_status.text()
    panel.shutdown()
