"""Code evaluations in a run's detail (with the drill-down into the Eval panel) and in Compare."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus
from codetune_studio.services.evaluation import EvalService
from tests.eval_records import record_evaluation, scripted_sandbox
from tests.qt.compare_tables import shown

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.core.evaluation import ModelEvaluation
    from codetune_studio.ui.studio_services import StudioServices

RECIPE = {"model": "tiny-model", "dataset": {"path": "data.jsonl"}, "training": {"max_steps": 2}}


def _trained(services: StudioServices, folder: Path, eval_loss: float) -> tuple[int, int]:
    experiments = services.experiments
    recipe = {**RECIPE, "training": {"max_steps": 2, "learning_rate": eval_loss * 1e-4}}
    run = experiments.create_run("run", recipe)
    experiments.start_run(run.id, pid=1, total_steps=2)
    experiments.record_metrics(
        run.id, [MetricPoint(2, "loss", 1.5, 0.0), MetricPoint(2, "eval_loss", eval_loss, 0.0)]
    )
    experiments.finish_run(run.id, RunStatus.FINISHED)
    folder.mkdir(parents=True)
    version = experiments.add_model_version(
        "v", path=str(folder), base_model="tiny-model", run_id=run.id
    )
    return run.id, version.id


@pytest.fixture
def evaluated(
    services: StudioServices, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[int, int, ModelEvaluation]:
    """Two finished runs; the first one's model was evaluated against its base (75% vs 25%)."""
    services.evaluations = EvalService(services.experiments.database, sandbox=scripted_sandbox())
    run_id, version_id = _trained(services, tmp_path / "a", eval_loss=1.4)
    other, _ = _trained(services, tmp_path / "b", eval_loss=1.2)
    tuned, _ = record_evaluation(
        monkeypatch, services.experiments.database, version_id=version_id,
        tuned=[True, True, False, True], base=[False, True, False, False],
    )  # fmt: skip
    return run_id, other, tuned


def test_a_runs_detail_shows_its_pass_at_1_and_opens_the_tasks_in_the_eval_panel(
    make_window: Any, qtbot: Any, evaluated: tuple[int, int, ModelEvaluation]
) -> None:
    run_id, other, tuned = evaluated
    window = make_window()
    qtbot.waitUntil(lambda: window.runs_model.rowCount() == 2, timeout=5000)
    detail = window.runs_view.detail

    window.runs_view.select_runs([run_id])
    qtbot.waitUntil(lambda: "pass@1" in detail.eval_label.text(), timeout=5000)
    summary = detail.eval_label.text()
    assert "pass@1 75.0%" in summary
    assert "base 25.0%" in summary
    assert "python-tasks.jsonl" in summary
    table = detail.evals_table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert table.rowCount() == 1
    assert table.item(0, headers.index("pass@1")).text() == "75.0%"
    assert table.item(0, headers.index("base pass@1")).text() == "25.0%"
    assert table.item(0, headers.index("Δ pass@1")).text() == "+50.0"

    table.selectRow(0)
    assert detail.open_eval_button.isEnabled()
    with qtbot.waitSignal(window.eval_panel.result_shown, timeout=5000):
        detail.open_eval_button.click()
    assert window.eval_panel._shown is not None
    assert window.eval_panel._shown.id == tuned.id
    assert window.eval_panel.tree.topLevelItemCount() == 4
    assert window.docks["evaluation"].isVisibleTo(window)

    window.runs_view.select_runs([other])
    qtbot.waitUntil(lambda: "not evaluated yet" in detail.eval_label.text(), timeout=5000)
    assert detail.evals_table.rowCount() == 0


def test_the_compare_table_shows_each_runs_pass_at_1_and_marks_the_best_by_it(
    make_window: Any, qtbot: Any, evaluated: tuple[int, int, ModelEvaluation]
) -> None:
    run_id, other, _ = evaluated
    window = make_window()
    dialog = window.compare_runs([run_id, other], metric="pass@1")
    qtbot.waitUntil(lambda: dialog.comparison is not None, timeout=5000)
    table = shown(dialog.results_table)
    assert table.rows == [f"★ run {run_id}", f"run {other}"]
    assert table.column("Code eval pass@1") == ["75.0%", "-"]
    assert table.row(f"★ run {run_id}")["Base pass@1"] == "25.0%"
    assert table.row(f"★ run {run_id}")["Eval tasks"] == "python-tasks.jsonl"
    assert dialog.comparison.best_run_id == run_id
    dialog.close()
