"""The Export dialog runs ``codetune-studio export`` in a child process, shows progress and verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codetune_studio.ui.dialogs.export import ExportDialog
from tests import export_fixtures

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.ui.studio_services import StudioServices

tiny_model_dir = export_fixtures.tiny_model_dir
lora_adapter_dir = export_fixtures.lora_adapter_dir


def _dialog(qtbot: Any, services: StudioServices, model: str, out: Path) -> ExportDialog:
    dialog = ExportDialog(services, model, "tiny adapter", out)
    qtbot.addWidget(dialog)
    return dialog


def test_format_choice_enables_only_its_options(
    qtbot: Any, services: StudioServices, tmp_path: Path
) -> None:
    dialog = _dialog(qtbot, services, "1", tmp_path / "out")
    assert not dialog.gguf_combo.isEnabled()
    dialog.format_combo.setCurrentIndex(2)  # GGUF
    assert dialog.gguf_combo.isEnabled()
    assert dialog.ollama_check.isEnabled()
    assert not dialog.dtype_combo.isEnabled()
    dialog.ollama_check.setChecked(True)
    dialog.push_edit.setText("me/tiny")
    options = dialog.options()
    assert (options.format, options.ollama, options.push) == ("gguf", True, "me/tiny")


def test_export_runs_in_a_child_and_shows_the_verdict(
    qtbot: Any, services: StudioServices, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exported"
    dialog = _dialog(qtbot, services, str(lora_adapter_dir), out)
    dialog.verify_check.setChecked(False)  # the verdict path is covered by the CLI tests
    dialog.start()
    assert dialog.running
    assert not dialog.export_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running, timeout=120_000)
    assert dialog.status_label.text() == "Export finished."
    assert dialog.verdict == "Exported (not verified)."
    assert dialog.progress_bar.value() == 100
    assert (out / "adapter_model.safetensors").is_file()
    assert "Exported adapter" in dialog.log_view.toPlainText()


def test_cancel_stops_the_child_and_leaves_nothing(
    qtbot: Any, services: StudioServices, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exported"
    dialog = _dialog(qtbot, services, str(lora_adapter_dir), out)
    dialog.start()
    dialog.cancel()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert dialog.status_label.text() == "Export cancelled; nothing was left behind."
    assert not out.exists()
    assert dialog.export_button.isEnabled()


def test_a_failing_export_shows_the_error(
    qtbot: Any, services: StudioServices, tmp_path: Path
) -> None:
    dialog = _dialog(qtbot, services, str(tmp_path / "missing"), tmp_path / "out")
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert dialog.verdict is not None
    assert dialog.verdict.startswith("Failed: ")
    assert "not a run id, v:VERSION or an existing folder" in dialog.verdict
    assert dialog.status_label.text() == "Export failed (2)."


def test_run_menu_and_run_context_menu_offer_export(
    qtbot: Any, make_window: Any, services: StudioServices
) -> None:
    window = make_window()
    run = services.experiments.create_run("quick", {"model": "starter"})
    assert window.export_model_action.text() == "Export model…"
    menu = window.build_run_menu(run)
    export_action = next(a for a in menu.actions() if a.objectName() == "exportRunAction")
    assert export_action.isEnabled()
    version = services.experiments.add_model_version(
        "quick (run 1)", path="/nowhere", base_model="starter", run_id=run.id
    )
    dialog = window.open_export_dialog(run)
    assert dialog.windowTitle() == f"Export quick (run {run.id}, newest version)"
    qtbot.waitUntil(lambda: dialog.source_combo.count() == 2)  # versions load off the GUI thread
    dialog.source_combo.setCurrentIndex(1)
    assert dialog.source_combo.currentData() == f"v:{version.id}"
    assert dialog.out_edit.text().endswith(f"exports/run-{run.id}")
    dialog.close()
