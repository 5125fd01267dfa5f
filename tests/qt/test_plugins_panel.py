"""The Plugins panel: run the local analyzer on a dataset, sort, export, enable and disable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt

from codetune_studio.plugins.registry import BUILTIN_ENTRY_POINTS, discover
from codetune_studio.secrets import MemorySecretStore
from codetune_studio.services.analysis import AnalysisService
from codetune_studio.settings import SettingsStore
from codetune_studio.ui.panels.plugins import PluginsPanel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from codetune_studio.plugins.registry import PluginEntry
    from codetune_studio.services.experiments import ExperimentService

ONE_BROKEN = Path(__file__).resolve().parents[1] / "fixtures" / "datasets" / "code-one-broken.jsonl"


def _builtins(disabled: Sequence[str]) -> list[PluginEntry]:
    return discover(disabled, entry_points=BUILTIN_ENTRY_POINTS)


def _panel(qtbot: Any, experiments: ExperimentService, store: SettingsStore) -> PluginsPanel:
    panel = PluginsPanel(
        _builtins,
        analysis=AnalysisService(MemorySecretStore(), experiments, offline=True),
        settings_store=store,
        selected_dataset=lambda: str(ONE_BROKEN),
    )
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 3, timeout=5000)
    assert panel.select_plugin("code_analyzer")
    return panel


def _severities(panel: PluginsPanel) -> list[str]:
    proxy = panel.findings_proxy
    return [str(proxy.index(row, 0).data()) for row in range(proxy.rowCount())]


def test_analyzer_runs_on_the_selected_dataset_sorts_and_exports(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path
) -> None:
    panel = _panel(qtbot, experiments, SettingsStore(tmp_path / "settings.json"))
    panel.set_source("dataset")
    assert "code-one-broken.jsonl" in panel.dataset_label.text()

    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.outcome is not None and not panel.running, timeout=15_000)

    outcome = panel.outcome
    assert outcome is not None
    assert outcome.status == "ok"
    assert len(outcome.results) == 6
    assert "parse rate 83.3% (5 of 6); failing rows: 4" in panel.status.text()
    findings = panel.visible_findings()
    syntax = [f for f in findings if f.rule == "syntax-error"]
    assert [(f.row, f.line, f.severity) for f in syntax] == [(4, 1, "error")]
    assert any(f.rule == "unused-import" and f.row == 5 for f in findings)
    assert panel.findings_label.text() == f"{len(findings)} findings"

    panel.findings_view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    shown = _severities(panel)
    assert shown[0] == "error"
    assert shown == sorted(shown, key=["error", "warning", "info"].index)
    panel.findings_view.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    assert _severities(panel)[-1] == "error"

    target = tmp_path / "out" / "findings.json"
    panel.export_findings(target, "json")
    exported = json.loads(target.read_text(encoding="utf-8"))
    assert [row["severity"] for row in exported] == _severities(panel)
    assert exported == [f.to_dict() for f in panel.visible_findings()]
    panel.export_findings(tmp_path / "findings.csv", "csv")
    csv_lines = (tmp_path / "findings.csv").read_text(encoding="utf-8").splitlines()
    assert csv_lines[0] == "severity,path,row,line,column,rule,message,plugin"
    assert len(csv_lines) == len(exported) + 1

    [stored] = experiments.list_plugin_results(target=str(ONE_BROKEN))
    assert stored.plugin == "code_analyzer"
    assert stored.status == "ok"
    assert len(stored.findings) == len(findings)
    assert outcome.record_id == stored.id


def test_pasted_code_with_a_syntax_error_shows_one_finding(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path
) -> None:
    panel = _panel(qtbot, experiments, SettingsStore(tmp_path / "settings.json"))
    panel.set_source("code", "def f(:\n    pass\n")

    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.outcome is not None and not panel.running, timeout=15_000)

    [finding] = panel.visible_findings()
    assert (finding.severity, finding.line, finding.rule) == ("error", 1, "syntax-error")
    assert experiments.list_plugin_results(target="<pasted>")[0].status == "ok"


def test_disabling_a_plugin_survives_a_new_settings_store(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path
) -> None:
    path = tmp_path / "settings.json"
    panel = _panel(qtbot, experiments, SettingsStore(path))
    row = next(i for i, e in enumerate(panel.entries) if e.name == "code_analyzer")
    item = panel.table.item(row, 0)
    assert item is not None
    assert item.checkState() == Qt.CheckState.Checked

    item.setCheckState(Qt.CheckState.Unchecked)

    qtbot.waitUntil(
        lambda: any(
            e.name == "code_analyzer" and e.state.value == "disabled" for e in panel.entries
        ),
        timeout=5000,
    )
    assert SettingsStore(path).load().plugins.disabled == ("code_analyzer",)
    qtbot.waitUntil(lambda: panel.selected_entry() is not None, timeout=5000)
    # The details (and the Run button) follow the refreshed list once it is re-selected.
    qtbot.waitUntil(lambda: not panel.run_button.isEnabled(), timeout=5000)

    again = _panel(qtbot, experiments, SettingsStore(path))
    assert next(e for e in again.entries if e.name == "code_analyzer").state.value == "disabled"
    row = next(i for i, e in enumerate(again.entries) if e.name == "code_analyzer")
    item = again.table.item(row, 0)
    assert item is not None
    item.setCheckState(Qt.CheckState.Checked)
    qtbot.waitUntil(lambda: SettingsStore(path).load().plugins.disabled == (), timeout=5000)


def test_network_plugin_settings_are_saved_per_plugin(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path
) -> None:
    path = tmp_path / "settings.json"
    panel = _panel(qtbot, experiments, SettingsStore(path))
    assert not panel.model_edit.isEnabled()  # the local analyzer has no model
    assert panel.select_plugin("openai_code_analyzer")
    qtbot.waitUntil(panel.model_edit.isEnabled, timeout=5000)
    panel.model_edit.setText("qwen2.5-coder")
    panel.base_url_edit.setText("http://127.0.0.1:8080/v1")

    qtbot.mouseClick(panel.save_options_button, Qt.MouseButton.LeftButton)

    options = SettingsStore(path).load().plugins.options
    assert options == {
        "openai_code_analyzer": {"model": "qwen2.5-coder", "base_url": "http://127.0.0.1:8080/v1"}
    }
