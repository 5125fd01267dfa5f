"""The runs view (results, search, filters, tags and note), compare, clone, queue and models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QDockWidget

from codetune_studio.core.models import MetricPoint
from codetune_studio.core.recipe import TrainingRecipe
from codetune_studio.core.status import RunStatus
from tests.qt.compare_tables import shown
from tests.qt.conftest import fake_worker_launch

if TYPE_CHECKING:
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.ui.studio_services import StudioServices

FAKE_WORKER = Path(__file__).resolve().parents[1] / "fixtures" / "fake_worker.py"


def _recipe(**training: Any) -> dict[str, Any]:
    data = {"model": "tiny-model", "dataset": {"path": "data.jsonl"}, "training": training}
    return TrainingRecipe.model_validate(data).model_dump(mode="json")


def _finished(
    experiments: ExperimentService, name: str, recipe: dict[str, Any], eval_loss: float
) -> int:
    run = experiments.create_run(name, recipe)
    experiments.start_run(run.id, pid=1, total_steps=2)
    experiments.record_metrics(
        run.id,
        [
            MetricPoint(1, "loss", 3.0, 0.0),
            MetricPoint(2, "loss", eval_loss + 0.5, 0.0),
            MetricPoint(1, "tokens", 100.0, 0.0),
            MetricPoint(2, "tokens", 100.0, 0.0),
            MetricPoint(2, "eval_loss", eval_loss, 0.0),
        ],
    )
    experiments.finish_run(run.id, RunStatus.FINISHED)
    return run.id


def _cell(window: Any, run_id: int, column: str) -> str:
    model = window.runs_model
    headers = [model.headerData(c, _horizontal()) for c in range(model.columnCount())]
    row = model.row_of(run_id)
    assert row is not None
    return str(model.data(model.index(row, headers.index(column))))


def _horizontal() -> Any:
    from PySide6.QtCore import Qt

    return Qt.Orientation.Horizontal


def test_runs_view_shows_results_and_filters_by_text_and_tag(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    experiments = services.experiments
    base = _finished(experiments, "baseline", _recipe(learning_rate=1e-4), 2.0)
    wide = _finished(experiments, "wider", _recipe(learning_rate=3e-4), 1.5)
    services.history.add_tags(base, ["keep"])
    window = make_window()
    view = window.runs_view
    qtbot.waitUntil(lambda: window.runs_model.rowCount() == 2, timeout=5000)
    assert _cell(window, wide, "Steps") == "2/2"
    assert _cell(window, wide, "Final loss") == "2.0000"
    assert _cell(window, wide, "Best eval") == "1.5000"
    assert _cell(window, base, "Tags") == "keep"
    assert _cell(window, base, "Method") == "lora"

    view.search_edit.setText("wider")
    assert [window.runs_model.run_at(r).id for r in range(window.runs_model.rowCount())] == [wide]
    view.search_edit.clear()
    view.tag_filter.setCurrentText("keep")
    assert [window.runs_model.run_at(r).id for r in range(window.runs_model.rowCount())] == [base]


def test_tags_and_note_are_saved_from_the_run_detail(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    run_id = _finished(services.experiments, "labelled", _recipe(), 1.0)
    window = make_window()
    qtbot.waitUntil(lambda: window.runs_model.row_of(run_id) is not None, timeout=5000)
    window.runs_view.select_runs([run_id])
    detail = window.runs_view.detail
    qtbot.waitUntil(lambda: detail.run is not None and detail.run.id == run_id, timeout=5000)
    qtbot.waitUntil(lambda: "final loss 1.5" in detail.results_label.text(), timeout=5000)
    detail.tags_edit.setText("baseline, keep")
    detail.note_edit.setPlainText("the one to beat")
    detail.save_button.click()
    qtbot.waitUntil(
        lambda: services.history.get_summary(run_id).run.note == "the one to beat", timeout=5000
    )
    assert services.history.get_summary(run_id).run.tags == ["baseline", "keep"]
    qtbot.waitUntil(lambda: _cell(window, run_id, "Tags") == "baseline, keep", timeout=5000)


def test_the_log_of_a_past_run_shows_in_its_detail(
    make_window: Any, qtbot: Any, services: StudioServices, tmp_path: Path
) -> None:
    folder = tmp_path / "run-7"
    folder.mkdir()
    record = {"time": "2026-12-01T10:00:00", "level": "INFO", "message": "training started"}
    (folder / "worker.log").write_text(json.dumps(record) + "\nplain line\n")
    run = services.experiments.create_run("past", _recipe(), output_dir=str(folder))
    services.experiments.finish_run(run.id, RunStatus.FAILED, error="boom")
    window = make_window()
    qtbot.waitUntil(lambda: window.runs_model.row_of(run.id) is not None, timeout=5000)
    window.runs_view.select_runs([run.id])
    log = window.runs_view.detail.log_view
    qtbot.waitUntil(lambda: "training started" in log.toPlainText(), timeout=5000)
    assert "INFO training started" in log.toPlainText()
    assert "plain line" in log.toPlainText()


def test_a_finished_runs_last_log_line_shows_without_its_newline(
    make_window: Any, qtbot: Any, services: StudioServices, tmp_path: Path
) -> None:
    import os

    past_folder, live_folder = tmp_path / "past", tmp_path / "live"
    past_folder.mkdir()
    live_folder.mkdir()
    (past_folder / "worker.log").write_bytes(b"training started\nsaved the adapter")
    live_log = live_folder / "worker.log"
    live_log.write_bytes(b"training started\nstep 1 of")
    past = services.experiments.create_run("past", _recipe(), output_dir=str(past_folder))
    services.experiments.finish_run(past.id, RunStatus.FINISHED)
    live = services.experiments.create_run("live", _recipe(), output_dir=str(live_folder))
    services.experiments.start_run(live.id, pid=os.getpid(), total_steps=2)
    window = make_window()
    qtbot.waitUntil(lambda: window.runs_model.row_of(live.id) is not None, timeout=5000)
    log = window.runs_view.detail.log_view

    window.runs_view.select_runs([past.id])
    qtbot.waitUntil(lambda: "saved the adapter" in log.toPlainText(), timeout=5000)
    assert log.toPlainText().splitlines() == ["training started", "saved the adapter"]

    # While the run goes on, its unfinished line waits for the rest...
    window.runs_view.select_runs([live.id])
    qtbot.waitUntil(lambda: log.toPlainText() == "training started", timeout=5000)
    with live_log.open("ab") as handle:
        handle.write(b" 2\nsaved the adap")
    qtbot.waitUntil(lambda: "step 1 of 2" in log.toPlainText(), timeout=5000)
    assert "saved the adap" not in log.toPlainText()
    # ...and once it has ended, that last line shows whole, without a newline ever coming.
    with live_log.open("ab") as handle:
        handle.write(b"ter")
    services.experiments.finish_run(live.id, RunStatus.FINISHED)
    window.runs_view.refresh()
    qtbot.waitUntil(lambda: "saved the adapter" in log.toPlainText(), timeout=5000)
    assert log.toPlainText().splitlines() == [
        "training started",
        "step 1 of 2",
        "saved the adapter",
    ]


def test_comparing_two_runs_shows_the_differing_field_and_marks_the_best(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    slow = _finished(services.experiments, "slow", _recipe(learning_rate=1e-4), 2.0)
    fast = _finished(services.experiments, "fast", _recipe(learning_rate=3e-4), 1.0)
    window = make_window()
    dialog = window.compare_runs([slow, fast])
    qtbot.waitUntil(lambda: dialog.comparison is not None and bool(dialog.curves), timeout=5000)
    diff = shown(dialog.diff_table)
    assert diff.columns == ["training.learning_rate"]
    # Runs are rows, the best first (the results are sorted by the metric, best on top).
    assert diff.rows == [f"★ run {fast}", f"run {slow}"]
    assert diff.column("training.learning_rate") == ["0.0003", "0.0001"]
    assert dialog.comparison.best_run_id == fast
    assert f"run {fast}" in dialog.best_label.text()
    results = shown(dialog.results_table)
    assert results.rows == [f"★ run {fast}", f"run {slow}"]
    assert results.is_bold(f"★ run {fast}")
    assert not results.is_bold(f"run {slow}")
    # Curves are drawn in slices after the data arrives.
    qtbot.waitUntil(lambda: sorted(dialog.plotted_runs()) == [slow, fast], timeout=5000)
    dialog.axis_combo.setCurrentText("tokens")
    assert dialog._plot.getPlotItem().getAxis("bottom").labelText == "tokens seen"
    dialog.close()


def test_pass_at_1_measured_in_training_is_a_compare_metric_and_result(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    experiments = services.experiments
    weak = _finished(experiments, "weak", _recipe(learning_rate=1e-4), 1.0)
    strong = _finished(experiments, "strong", _recipe(learning_rate=3e-4), 2.0)
    for run_id, scores in ((weak, (0.1, 0.2)), (strong, (0.3, 0.6))):
        experiments.record_metrics(
            run_id,
            [
                MetricPoint(step, "eval_pass@1", v, 0.0)
                for step, v in zip((1, 2), scores, strict=True)
            ],
        )
    window = make_window()
    dialog = window.compare_runs([weak, strong], metric="eval_pass@1")
    qtbot.waitUntil(lambda: dialog.comparison is not None, timeout=5000)
    assert dialog.comparison.best_run_id == strong  # higher pass@1 is better
    table = shown(dialog.results_table)
    assert table.row(f"★ run {strong}")["Training pass@1"] == "60.0%"
    assert table.column("Training pass@1") == ["60.0%", "20.0%"]  # best (highest) first
    dialog.metric_combo.setCurrentText("eval_pass@1")
    assert dialog.metric_combo.currentText() == "eval_pass@1"
    qtbot.waitUntil(
        lambda: bool(dialog.curves) and dialog.curves[0].name == "eval_pass@1", timeout=5000
    )
    qtbot.waitUntil(lambda: sorted(dialog.plotted_runs()) == sorted([weak, strong]), timeout=5000)
    assert [c.values for c in dialog.curves if c.run_id == strong] == [[0.3, 0.6]]
    dialog.close()


def test_a_run_started_from_a_clone_records_its_parent(
    make_window: Any, qtbot: Any, services: StudioServices, tmp_path: Path
) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    source = _finished(
        services.experiments,
        "source",
        _recipe(learning_rate=1e-4) | {"dataset": {"path": str(data)}},
        1.0,
    )
    services.worker_launch = fake_worker_launch(FAKE_WORKER, "--mode", "finish", "--steps", "3")
    window = make_window()
    window.clone_run(services.experiments.get_run(source))
    assert window.parameters_panel.recipe is not None
    assert window.parameters_panel.recipe.training.learning_rate == 1e-4
    with qtbot.waitSignal(window.run_ended, timeout=30_000) as ended:
        window.start_training()
    clone = services.experiments.get_run(ended.args[0].run_id)
    assert clone.parent_run_id == source
    lineage = services.history.run_lineage(clone.id)
    assert [(step.run_id, step.relation) for step in lineage] == [
        (clone.id, ""),
        (source, "cloned from"),
    ]


def test_the_queue_panel_lists_queued_runs_and_reorders_them(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    recipe = TrainingRecipe.model_validate(_recipe())
    first = services.queue.add(recipe, name="first")
    second = services.queue.add(recipe, name="second")
    window = make_window()
    panel = window.queue_panel
    assert window.findChild(QDockWidget, "queueDock") is not None
    qtbot.waitUntil(lambda: [r.id for r in panel.queued] == [first.id, second.id], timeout=5000)
    assert _cell(window, first.id, "Status") == "Queued"
    panel.table.selectRow(1)
    panel.up_button.click()
    qtbot.waitUntil(lambda: [r.id for r in panel.queued] == [second.id, first.id], timeout=5000)
    panel.table.selectRow(1)
    panel.remove_button.click()
    qtbot.waitUntil(lambda: [r.id for r in panel.queued] == [second.id], timeout=5000)


def test_the_models_view_shows_a_version_and_its_lineage_as_a_chain(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    experiments = services.experiments
    first = _finished(experiments, "first", _recipe(), 1.0)
    parent = experiments.add_model_version("v1", path="/a", base_model="tiny-model", run_id=first)
    resumed = experiments.create_run("again", _recipe(), resumed_from_id=first)
    child = experiments.add_model_version(
        "v2", path="/b", base_model="tiny-model", run_id=resumed.id, parent_id=parent.id
    )
    window = make_window()
    panel = window.models_panel
    panel.refresh()
    qtbot.waitUntil(lambda: len(panel.versions) == 2, timeout=5000)
    panel.select_version(child.id)
    qtbot.waitUntil(lambda: "model v2" in panel.lineage_label.text(), timeout=5000)
    text = panel.lineage_label.text()
    assert text.index("model v2") < text.index("resumed from") < text.index("model v1")
    assert "tiny-model" in text


def test_run_queue_here_starts_a_queue_runner_that_drains_and_ends(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    window = make_window()
    panel = window.queue_panel
    panel.start_runner()  # an empty queue: the runner starts, finds nothing, and exits
    assert panel.run_button.text() == "Stop queue"
    qtbot.waitUntil(lambda: not panel.running, timeout=60_000)
    qtbot.waitUntil(lambda: "exit status 0" in panel.status_label.text(), timeout=5000)
    assert panel.run_button.text() == "Run queue here"


def test_following_a_run_from_the_database_shows_its_log_too(
    make_window: Any, qtbot: Any, services: StudioServices, tmp_path: Path
) -> None:
    folder = tmp_path / "elsewhere-run"
    folder.mkdir()
    record = {"time": "2026-12-01T10:00:00", "level": "INFO", "message": "step 3 of 3"}
    # Its last line never got a newline: the run has ended, so it is complete all the same.
    (folder / "worker.log").write_text(json.dumps(record) + "\nsaved the adapter")
    run_id = _finished(services.experiments, "followed", _recipe(), 1.0)
    services.history.record_progress_info(run_id, log_path=str(folder / "worker.log"))
    window = make_window()
    window.follow(services.experiments.get_run(run_id))
    log = window.monitor_panel.log_view
    qtbot.waitUntil(lambda: "INFO step 3 of 3" in log.toPlainText(), timeout=5000)
    qtbot.waitUntil(lambda: window.monitor_panel.point_count("loss") == 2, timeout=5000)
    qtbot.waitUntil(lambda: "saved the adapter" in log.toPlainText(), timeout=5000)
    assert log.toPlainText().splitlines()[-1] == "saved the adapter"


def test_the_sweep_dialogs_name_names_the_queued_runs(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    from PySide6.QtWidgets import QDialogButtonBox

    from codetune_studio.ui.panels.queue import SweepDialog

    window = make_window()
    window.parameters_panel.set_recipe(TrainingRecipe.model_validate(_recipe()))
    assert window.parameters_panel.recipe is not None
    panel = window.queue_panel
    panel.sweep_button.click()
    dialog = panel.findChild(SweepDialog, "sweepDialog")
    assert dialog is not None
    dialog.grid_edit.setPlainText("training.learning_rate=1e-4,3e-4\n")
    dialog.name_edit.setText("lr-scan")
    dialog.metric_combo.setCurrentText("loss")
    ok = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)
    with qtbot.waitSignal(panel.sweep_queued, timeout=10_000) as queued:
        ok.click()
    assert queued.args[2] == "loss"

    expected = ["lr-scan [learning_rate=1e-4]", "lr-scan [learning_rate=3e-4]"]
    runs = services.queue.list_queued()
    assert [run.id for run in runs] == queued.args[1]
    assert [run.name for run in runs] == expected
    assert {run.recipe["name"] for run in runs} == {"lr-scan"}
    # The queue panel and the runs view show those names once they reload.
    qtbot.waitUntil(
        lambda: (
            [panel.table.item(row, 1).text() for row in range(panel.table.rowCount())] == expected
        ),
        timeout=10_000,
    )
    assert _cell(window, runs[0].id, "Name") == expected[0]
    # The sweep's comparison opens from any of its runs, marked by the metric chosen for it.
    from PySide6.QtGui import QAction

    menu = window.runs_view.build_run_menu(runs[1])
    action = menu.findChild(QAction, "compareSweepAction")
    assert action.isEnabled()
    assert action.text() == "Compare sweep (2 runs)"
    action.trigger()
    compare = window._compare_dialogs[-1]
    assert compare.run_ids == [run.id for run in runs]
    assert compare.best_combo.currentText() == "loss"
    qtbot.waitUntil(lambda: compare.comparison is not None, timeout=5000)
    assert compare.comparison.metric == "loss"
    compare.close()


def test_a_refresh_keeps_the_selected_runs_selected_and_their_detail_loaded_once(
    make_window: Any, qtbot: Any, services: StudioServices
) -> None:
    experiments = services.experiments
    first = _finished(experiments, "first", _recipe(), 2.0)
    second = _finished(experiments, "second", _recipe(), 1.0)
    live = experiments.create_run("live", _recipe())
    experiments.start_run(live.id, pid=1, total_steps=10)
    window = make_window()
    view = window.runs_view
    qtbot.waitUntil(lambda: window.runs_model.rowCount() == 3, timeout=5000)
    view.select_runs([first, second])
    loads: list[int] = []
    view.detail.show_run = lambda run: loads.append(run.id)
    experiments.record_metrics(live.id, [MetricPoint(1, "loss", 3.0, 0.0)])
    loaded = window.runs_model.results_of(live.id)

    view.refresh()
    qtbot.waitUntil(lambda: window.runs_model.results_of(live.id) != loaded, timeout=5000)

    assert _cell(window, live.id, "Steps") == "1/10"
    assert {run.id for run in view.selected_runs()} == {first, second}
    assert loads == []
