from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from PySide6.QtWidgets import QLineEdit

from codetune_studio.services.memory_estimate import ModelShape, estimate_memory
from codetune_studio.ui import notify
from codetune_studio.ui.panels.datasets import DatasetsPanel
from codetune_studio.ui.panels.parameters import ParametersPanel
from codetune_studio.ui.panels.plugins import PluginsPanel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.studio_services import resources_dir

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.services.experiments import ExperimentService

RESOURCES = resources_dir()


def test_preview_of_a_million_rows_is_lazy(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    line = json.dumps({"instruction": "write a loop", "output": "for i in range(3): pass"})
    with path.open("w") as handle:
        for _ in range(1_000_000):
            handle.write(line + "\n")
    panel = DatasetsPanel(experiments, tmp_path / "no-samples")
    qtbot.addWidget(panel)
    panel.preview_model.reset_file(path, "jsonl")
    from codetune_studio.services.dataset_preview import index_lines
    from codetune_studio.ui.tasks import drain

    generator = index_lines(path)
    for progress in generator:
        panel.preview_model.append_offsets(progress.offsets)
    assert panel.preview_model.rowCount() == 1_000_000
    index = panel.preview_model.index(999_999, 0)
    assert panel.preview_model.data(index) == "write a loop"
    assert len(panel.preview_model._cache) == 1  # only the chunk that was looked at was read
    assert drain(index_lines(path)) == 1_000_000


def test_sample_dataset_shows_format_findings_and_histogram(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path
) -> None:
    data = tmp_path / "mixed.jsonl"
    rows = [{"instruction": f"q{i}", "output": f"answer {i}"} for i in range(30)]
    rows.append({"instruction": "empty", "output": ""})
    rows.append(rows[0])
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    panel = DatasetsPanel(experiments, RESOURCES / "datasets")
    qtbot.addWidget(panel)
    assert any("python" in p for p in panel.listed_paths())  # the bundled samples
    with qtbot.waitSignal(panel.analysis_finished, timeout=10_000):
        panel.add_path(data)
    assert panel.analysis is not None
    assert panel.analysis.report.format == "alpaca"
    assert panel.findings.rowCount() == 2  # one dropped row, one duplicate
    first = panel.findings.item(0, 0)
    assert first is not None
    assert first.text() == "31"
    assert panel.histogram.getPlotItem().listDataItems() or panel.histogram.getPlotItem().items
    with qtbot.waitSignal(panel.dataset_chosen) as chosen:
        panel.use_button.click()
    assert chosen.args == [str(data)]
    panel.shutdown()


def test_parameter_errors_show_beside_the_field_as_the_user_types(
    qtbot: Any, experiments: ExperimentService
) -> None:
    panel = ParametersPanel(experiments, RESOURCES / "recipes")
    qtbot.addWidget(panel)
    panel.set_dataset_path("data.jsonl")
    assert panel.is_valid
    field = panel.field("training.learning_rate")
    editor = field.editor
    assert isinstance(editor, QLineEdit)
    editor.clear()
    qtbot.keyClicks(editor, "-1")
    valid: bool = panel.is_valid
    assert not valid
    assert not field.error_label.isHidden()
    assert "greater than 0" in field.error_label.text()
    editor.clear()
    qtbot.keyClicks(editor, "0.001")
    assert panel.is_valid
    assert field.error_label.isHidden()
    assert panel.recipe is not None
    assert panel.recipe.training.learning_rate == 0.001
    batch = panel.field("training.per_device_train_batch_size")
    assert isinstance(batch.editor, QLineEdit)
    batch.editor.clear()
    qtbot.keyClicks(batch.editor, "eight")
    assert "integer" in batch.error_label.text()


def test_list_fields_take_comma_separated_choices(
    qtbot: Any, experiments: ExperimentService
) -> None:
    panel = ParametersPanel(experiments, RESOURCES / "recipes")
    qtbot.addWidget(panel)
    panel.set_dataset_path("data.jsonl")
    field = panel.field("training.report_to")
    assert isinstance(field.editor, QLineEdit)
    assert field.editor.placeholderText() == "tensorboard"
    assert panel.recipe is not None
    assert panel.recipe.training.report_to == []
    qtbot.keyClicks(field.editor, "tensorboard")
    assert panel.recipe is not None
    assert panel.recipe.training.report_to == ["tensorboard"]
    field.editor.clear()
    qtbot.keyClicks(field.editor, "wandb")
    assert not panel.is_valid
    assert "tensorboard" in field.error_label.text()


def test_the_evaluation_section_travels_through_the_form_unchanged(
    qtbot: Any, experiments: ExperimentService
) -> None:
    from codetune_studio.core.recipe import TrainingRecipe

    panel = ParametersPanel(experiments, RESOURCES / "recipes")
    qtbot.addWidget(panel)
    evaluation = {"tasks": "/data/tasks.jsonl", "samples": 2, "temperature": 0.5}
    panel.set_recipe(
        TrainingRecipe.model_validate({"dataset": {"path": "d.jsonl"}, "evaluation": evaluation})
    )
    # Edited in the recipe file, not the form: no field of it, and Train keeps it.
    assert not any(key.startswith("evaluation") for key in panel._fields)
    panel.field("training.learning_rate").set_value(0.001)
    panel.set_dataset_path("other.jsonl")
    assert panel.recipe is not None
    assert panel.recipe.evaluation is not None
    assert panel.recipe.evaluation.model_dump(include=set(evaluation)) == evaluation
    panel.set_recipe(TrainingRecipe.model_validate({"dataset": {"path": "d.jsonl"}}))
    assert panel.recipe is not None
    assert panel.recipe.evaluation is None


def test_presets_apply_and_keep_the_chosen_dataset(
    qtbot: Any, experiments: ExperimentService
) -> None:
    panel = ParametersPanel(experiments, RESOURCES / "recipes")
    qtbot.addWidget(panel)
    assert "quickstart" in panel.preset_names()
    panel.set_dataset_path("/data/mine.jsonl")
    assert panel.apply_preset("quickstart")
    assert panel.recipe is not None
    assert panel.recipe.dataset.path == "/data/mine.jsonl"
    assert panel.recipe.training.max_steps == 200
    config = panel.save_to_database("quick")
    assert config is not None
    assert experiments.list_training_configs()[0].name == "quick"


def test_memory_estimate_warns_when_over_the_device(
    qtbot: Any, experiments: ExperimentService
) -> None:
    panel = ParametersPanel(experiments, RESOURCES / "recipes")
    qtbot.addWidget(panel)
    panel.set_dataset_path("d.jsonl")
    panel.set_device_memory(10 * 1024**2, on_gpu=False)
    assert panel.memory_over
    assert "More than the device" in panel.memory_label.text()
    panel.set_device_memory(64 * 1024**3, on_gpu=False)
    assert not panel.memory_over


def test_memory_estimate_counts_full_finetuning_above_lora() -> None:
    shape = ModelShape.from_config(
        {
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "vocab_size": 32000,
            "intermediate_size": 11008,
        }
    )
    assert 6.0e9 < shape.parameters < 7.5e9  # a 7B Llama
    lora = estimate_memory(shape, method="lora", batch_size=1, seq_length=512, precision="bf16")
    full = estimate_memory(shape, method="full", batch_size=1, seq_length=512, precision="bf16")
    qlora = estimate_memory(shape, method="qlora", batch_size=1, seq_length=512, precision="bf16")
    assert qlora.total < lora.total < full.total
    assert full.optimizer == shape.parameters * 12


def test_plugins_panel_lists_entries_with_state(qtbot: Any) -> None:
    from codetune_studio.plugins.registry import PluginEntry, PluginState

    entries = [PluginEntry(name="broken", state=PluginState.ERROR, spec=None, error="no module x")]
    panel = PluginsPanel(lambda disabled: entries)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5000)
    state, needs, details = (panel.table.item(0, c) for c in (2, 3, 4))
    assert state is not None
    assert needs is not None
    assert details is not None
    assert state.text() == "error"
    assert needs.text() == "—"
    assert details.text() == "no module x"
    assert "1 with errors" in panel.summary.text()


@pytest.mark.expect_logs(r"error in test_safe_slot_turns_an_exception_into_a_notice")
def test_safe_slot_turns_an_exception_into_a_notice(caplog: Any) -> None:
    calls: list[int] = []

    @safe_slot()
    def slot(value: int) -> None:
        calls.append(value)
        raise ValueError("boom")

    slot(1, True)  # type: ignore[call-arg]  # a signal may pass more arguments than the slot takes
    assert calls == [1]
    assert any("boom" in n.text for n in notify.history())
    assert any(r.levelname == "ERROR" and r.exc_info for r in caplog.records)
