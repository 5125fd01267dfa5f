"""The Compare dialog's tables stay readable with many runs, and "Best by" re-marks the best run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPoint, Qt

from codetune_studio.core.comparison import RESULT_FIELDS
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus
from codetune_studio.services.history import RunHistoryService
from tests.qt.compare_tables import shown

if TYPE_CHECKING:
    import pytest

    from codetune_studio.ui.studio_services import StudioServices

BEST_EVAL = 57  # the run (by index) with the lowest eval loss
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def _runs(services: StudioServices, count: int) -> list[int]:
    """Ended runs: eval loss lowest at BEST_EVAL, throughput and memory rising with the index."""
    experiments = services.experiments
    ids = []
    for index in range(count):
        recipe = {
            "model": "tiny-model",
            "dataset": {"path": "d.jsonl"},
            "training": {"learning_rate": (index + 1) * 1e-5, "seed": index % 3},
        }
        run = experiments.create_run(f"run-{index}", recipe)
        experiments.start_run(run.id, pid=1, total_steps=2)
        experiments.record_metrics(
            run.id,
            [
                MetricPoint(1, "loss", 3.0, 0.0),
                MetricPoint(2, "loss", 2.0 - index / 200, 0.0),
                MetricPoint(2, "eval_loss", 1.0 + abs(index - BEST_EVAL) / 100, 0.0),
                MetricPoint(2, "tokens_per_second", 1000.0 + 100 * index, 0.0),
                MetricPoint(2, "memory_mb", 900.0 + 20 * index, 0.0),
                # Every fourth run logged no perplexity.
                *([MetricPoint(2, "perplexity", 3.0 + index / 10, 0.0)] if index % 4 else []),
            ],
        )
        experiments.finish_run(run.id, RunStatus.FINISHED)
        ids.append(run.id)
    return ids


def _open(qtbot: Any, services: StudioServices, run_ids: list[int], **kwargs: Any) -> Any:
    from codetune_studio.ui.compare_dialog import CompareDialog

    dialog = CompareDialog(services, run_ids, **kwargs)
    qtbot.addWidget(dialog)
    dialog.resize(1600, 1000)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.comparison is not None, timeout=10_000)
    return dialog


def _visible(view: Any, row: int) -> bool:
    rect = view.visualRect(view.model().index(row, 0))
    return bool(view.viewport().rect().intersects(rect))


def _column(view: Any, header_text: str) -> int:
    model = view.model()
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    return headers.index(header_text)


def _click_header(qtbot: Any, view: Any, header_text: str) -> None:
    header = view.horizontalHeader()
    column = _column(view, header_text)
    view.scrollTo(view.model().index(0, column))
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))


def _sort_values(view: Any, header_text: str) -> list[Any]:
    column = _column(view, header_text)
    model = view.model()
    return [model.index(row, column).data(SORT_ROLE) for row in range(model.rowCount())]


def test_a_hundred_runs_are_a_hundred_rows_under_one_column_per_result(
    qtbot: Any, services: StudioServices
) -> None:
    run_ids = _runs(services, 100)
    dialog = _open(qtbot, services, run_ids)
    table = shown(dialog.results_table)
    # The columns are the results, however many runs: not a hundred columns of runs. Results
    # no run has (code evaluation, pass@1 in training, tokens seen) are left out.
    assert table.columns == [
        "Name",
        "Final loss",
        "Best eval loss",
        "Perplexity",
        "Tokens/s",
        "Wall time",
        "Peak memory",
        "Steps",
    ]
    assert {field.label for field in RESULT_FIELDS} > set(table.columns[1:])
    assert len(table.rows) == 100
    assert sorted(table.rows) == sorted(
        f"★ run {i}" if i == run_ids[BEST_EVAL] else f"run {i}" for i in run_ids
    )
    # The best run (by eval loss, the default) is starred, bold, first and on screen.
    best = f"★ run {run_ids[BEST_EVAL]}"
    assert table.rows[0] == best
    assert table.is_bold(best)
    assert not table.is_bold(table.rows[1])
    assert _visible(dialog.results_table, 0)
    assert dialog.best_label.text() == f"Best by eval_loss: ★ run {run_ids[BEST_EVAL]}"
    # Numbers carry their units.
    cells = table.row(best)
    assert cells["Name"] == f"run-{BEST_EVAL}"
    assert cells["Best eval loss"] == "1"
    assert cells["Tokens/s"] == "6,700 tok/s"
    assert cells["Peak memory"] == "1.99 GB"
    assert table.row(f"run {run_ids[0]}")["Peak memory"] == "900 MB"
    assert cells["Steps"] == "2"
    assert cells["Perplexity"] == "8.7"
    # Each header says what it measures.
    assert "exp(" in table.tooltip("Perplexity")
    assert "throughput" in table.tooltip("Tokens/s")
    # The recipe diff: runs as rows too, the fields by full name.
    diff = shown(dialog.diff_table)
    assert diff.columns == ["training.learning_rate", "training.seed"]
    assert len(diff.rows) == 100
    assert diff.row(best)["training.learning_rate"] == "0.00058"
    assert "training.learning_rate" in diff.tooltip("training.learning_rate")
    dialog.close()


def test_clicking_a_header_sorts_the_runs_by_that_result(
    qtbot: Any, services: StudioServices
) -> None:
    run_ids = _runs(services, 12)
    dialog = _open(qtbot, services, run_ids)
    view = dialog.results_table
    before = shown(view).rows
    _click_header(qtbot, view, "Tokens/s")
    speeds = _sort_values(view, "Tokens/s")
    assert speeds in (sorted(speeds), sorted(speeds, reverse=True))
    assert shown(view).rows != before
    _click_header(qtbot, view, "Tokens/s")
    assert _sort_values(view, "Tokens/s") == list(reversed(speeds))
    # Runs without a value stay at the bottom, whichever way the column is sorted.
    missing = ["-"] * 3  # runs 0, 4 and 8 logged no perplexity
    _click_header(qtbot, view, "Perplexity")
    assert shown(view).column("Perplexity")[-3:] == missing
    _click_header(qtbot, view, "Perplexity")
    assert shown(view).column("Perplexity")[-3:] == missing
    assert "-" not in shown(view).column("Perplexity")[:-3]
    dialog.close()


def test_best_by_re_marks_the_best_run_from_what_was_read_and_is_remembered(
    qtbot: Any, services: StudioServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[str] = []
    compare = RunHistoryService.compare

    def counting(self: RunHistoryService, *args: Any, **kwargs: Any) -> Any:
        compared.append(kwargs.get("metric", ""))
        return compare(self, *args, **kwargs)

    monkeypatch.setattr(RunHistoryService, "compare", counting)
    run_ids = _runs(services, 3)  # few runs: one plot item each, the best one thick
    dialog = _open(qtbot, services, run_ids)
    qtbot.waitUntil(lambda: sorted(dialog.plotted_runs()) == sorted(run_ids), timeout=10_000)
    combo = dialog.best_combo
    names = [combo.itemText(i) for i in range(combo.count())]
    assert {"eval_loss", "loss", "train_loss", "perplexity", "tokens_per_second"} <= set(names)
    assert {"pass@1", "eval_pass@1"} <= set(names)
    assert combo.currentText() == "eval_loss"
    assert dialog.comparison.best_run_id == run_ids[-1]  # index 2 is nearest BEST_EVAL

    # Sorted by another column first: the new best still comes up first and on screen.
    _click_header(qtbot, dialog.results_table, "Name")
    combo.setCurrentText("tokens_per_second")
    combo.setCurrentText("peak_memory_mb")  # lower is better: the first run

    assert compared == ["eval_loss"]  # re-marked from the results already read
    assert dialog.comparison.best_run_id == run_ids[0]
    assert dialog.best_label.text() == f"Best by peak_memory_mb: ★ run {run_ids[0]}"
    table = shown(dialog.results_table)
    assert table.rows[0] == f"★ run {run_ids[0]}"
    assert table.is_bold(f"★ run {run_ids[0]}")
    assert not table.is_bold(f"run {run_ids[-1]}")
    assert _visible(dialog.results_table, 0)
    # The recipe differences follow: the same run marked, first.
    assert shown(dialog.diff_table).rows[0] == f"★ run {run_ids[0]}"
    widths = {
        run_id: dialog.plot_items()[f"run:{run_id}"].opts["pen"].widthF() for run_id in run_ids
    }
    assert widths == {run_ids[0]: 3, run_ids[1]: 1.5, run_ids[2]: 1.5}
    dialog.close()

    # The choice is in the settings file, and a new dialog opens on it.
    ini = services.paths.config_dir / "window.ini"
    assert "best_metric=peak_memory_mb" in ini.read_text(encoding="utf-8")
    again = _open(qtbot, services, run_ids)
    assert again.best_combo.currentText() == "peak_memory_mb"
    assert again.comparison.best_run_id == run_ids[0]
    assert compared[-1] == "peak_memory_mb"
    again.close()
    # A metric given by the caller (a sweep's own) wins over the remembered one.
    sweep = _open(qtbot, services, run_ids, metric="tokens_per_second")
    assert sweep.best_combo.currentText() == "tokens_per_second"
    assert sweep.comparison.best_run_id == run_ids[-1]
    sweep.close()
