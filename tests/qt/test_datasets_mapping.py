"""The Datasets panel's column mapping and token-length histogram."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from codetune_studio.ui.panels.datasets import DatasetsPanel
from tests import engine_fixtures

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from PySide6.QtWidgets import QComboBox

    from codetune_studio.services.experiments import ExperimentService

tiny_model_dir = engine_fixtures.tiny_model_dir


def _pick(qtbot: Any, panel: DatasetsPanel, combo: QComboBox, text: str) -> None:
    """Choose ``text`` in ``combo`` as a user would, and wait for the checks it starts."""
    index = combo.findText(text)
    assert index >= 0, f"{text!r} not offered"
    combo.setCurrentIndex(index)
    with qtbot.waitSignal(panel.columns_changed, timeout=2_000):
        combo.activated.emit(index)
    qtbot.waitUntil(lambda: panel.progress.isHidden(), timeout=10_000)


def _checked(panel: DatasetsPanel) -> bool:
    """Whether the panel's current dataset passed its checks."""
    return panel.analysis is not None


def test_changing_a_mapping_updates_the_recipe_columns(
    qtbot: Any, make_window: Callable[..., Any], tmp_path: Path
) -> None:
    data = tmp_path / "answers.jsonl"
    rows = [{"instruction": f"q{i}", "output": "", "better": f"answer {i}"} for i in range(12)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    window = make_window()
    panel = window.datasets_panel
    with qtbot.waitSignal(panel.analysis_finished, timeout=10_000):
        panel.add_path(data)
    assert panel.analysis is not None
    assert panel.analysis.report.examples == 0  # every output is empty
    # The combos list the file's columns once the preview has read its first rows.
    qtbot.waitUntil(lambda: panel.role_combo("output").currentText() == "output", timeout=5_000)
    with qtbot.waitSignal(panel.dataset_chosen):
        panel.use_button.click()

    _pick(qtbot, panel, panel.role_combo("output"), "better")

    recipe = window.parameters_panel.recipe
    assert recipe is not None
    assert recipe.dataset.path == str(data)
    assert recipe.dataset.columns == {"output": "better"}
    assert panel.analysis is not None
    assert panel.analysis.report.examples == 12
    assert panel.findings.rowCount() == 0


def test_csv_with_other_column_names_becomes_valid_after_mapping(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path
) -> None:
    data = tmp_path / "qa.csv"
    data.write_text(
        "question,answer,notes\n" + "".join(f"what is {i}?,it is {i},n{i}\n" for i in range(10)),
        encoding="utf-8",
    )
    panel = DatasetsPanel(experiments, tmp_path / "no-samples")
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.analysis_failed, timeout=10_000) as failed:
        panel.add_path(data)
    assert "cannot detect the format" in failed.args[1]
    assert not _checked(panel)
    qtbot.waitUntil(lambda: panel.preview_model.columns() == ["question", "answer", "notes"])
    assert panel.mapping_box.isVisibleTo(panel)

    _pick(qtbot, panel, panel.format_combo, "completion")
    assert not _checked(panel)  # no column is called prompt or completion yet
    prompt = panel.role_combo("prompt")
    assert [prompt.itemText(i) for i in range(1, prompt.count())] == ["question", "answer", "notes"]
    _pick(qtbot, panel, panel.role_combo("prompt"), "question")
    _pick(qtbot, panel, panel.role_combo("completion"), "answer")

    assert panel.columns == {"prompt": "question", "completion": "answer"}
    assert panel.analysis is not None
    assert panel.analysis.report.format == "completion"
    assert panel.analysis.report.examples == 10
    assert panel.findings.rowCount() == 0
    panel.shutdown()


def test_histogram_counts_tokens_with_a_tokenizer_on_disk(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path, tiny_model_dir: Path
) -> None:
    data = tmp_path / "long.jsonl"
    rows = [{"prompt": f"p{i}", "completion": "word " * (10 + 20 * i)} for i in range(8)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    panel = DatasetsPanel(experiments, tmp_path / "no-samples", data_dir=tmp_path / "studio")
    qtbot.addWidget(panel)

    panel.set_model("starter", 64)  # not built in this data folder: characters, and why
    with qtbot.waitSignal(panel.analysis_finished, timeout=10_000):
        panel.add_path(data)
    assert panel.length_unit == "characters"
    assert "starter model is not built" in panel.lengths_label.text()

    with qtbot.waitSignal(panel.analysis_finished, timeout=15_000):
        panel.set_model(str(tiny_model_dir), 64)
    assert panel.length_unit == "tokens"
    axis = panel.histogram.getPlotItem().getAxis("bottom")
    assert "tokens" in axis.labelText
    assert panel.analysis is not None
    assert panel.analysis.report.truncated > 0  # the longest completions exceed 64 tokens
    assert "exceed max_seq_length 64" in panel.lengths_label.text()
    panel.shutdown()
