from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from codetune_studio.core.events import EvalCompleted, MetricsLogged, RunStarted
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus
from codetune_studio.ui.panels.monitor import MonitorPanel, canonical_metric

if TYPE_CHECKING:
    from codetune_studio.services.experiments import ExperimentService


def _panel(qtbot: Any, experiments: ExperimentService) -> MonitorPanel:
    panel = MonitorPanel(experiments)
    qtbot.addWidget(panel)
    return panel


def test_monitor_receives_points_and_redraws_at_most_ten_times_a_second(
    qtbot: Any, experiments: ExperimentService, tmp_path: Any
) -> None:
    panel = _panel(qtbot, experiments)
    panel.attach_run(1, "demo", hosted=True)
    events: list[Any] = [RunStarted(run_id=1, total_steps=5000, output_dir=tmp_path)]
    events += [
        MetricsLogged(step, {"loss": 1.0 / step, "learning_rate": 1e-3}) for step in range(1, 5001)
    ]
    events.append(EvalCompleted(step=100, eval_loss=0.5, perplexity=1.6))
    before = panel.redraw_count
    for start in range(0, len(events), 500):  # ten batches, delivered at once
        panel.add_events(events[start : start + 500])
    qtbot.waitUntil(lambda: panel.redraw_count > before, timeout=2000)
    assert panel.redraw_count - before <= 2  # coalesced, not one redraw per batch
    assert panel.point_count("loss") == 5000
    assert panel.point_count("eval_loss") == 1
    loss_curve = panel.plots["loss"].getPlotItem().listDataItems()[0]
    assert len(loss_curve.getOriginalDataset()[0]) == 5000
    assert panel.progress.value() == 5000
    assert panel.plots["loss"].objectName() == "lossPlot"
    assert panel.stop_button.objectName() == "stopButton"
    assert panel.progress.objectName() == "runProgress"


def test_stop_and_pause_buttons_emit_requests_for_a_hosted_run(
    qtbot: Any, experiments: ExperimentService
) -> None:
    panel = _panel(qtbot, experiments)
    assert not panel.stop_button.isEnabled()
    panel.attach_run(7, "demo", hosted=True)
    with qtbot.waitSignal(panel.pause_requested) as paused:
        panel.pause_button.click()
    assert paused.args == [7]
    panel.set_paused(True)
    assert panel.pause_button.text() == "Resume"
    with qtbot.waitSignal(panel.resume_requested):
        panel.pause_button.click()
    with qtbot.waitSignal(panel.stop_requested) as stopped:
        panel.stop_button.click()
    assert stopped.args == [7]


def test_monitor_follows_a_run_from_the_database(
    qtbot: Any, experiments: ExperimentService
) -> None:
    run = experiments.create_run("terminal-run", {"training": {"max_steps": 10}})
    experiments.start_run(run.id, pid=1234, host="elsewhere")
    experiments.record_metrics(
        run.id, [MetricPoint(step, "train/loss", 2.0 - step / 10, 0.0) for step in range(1, 4)]
    )
    panel = _panel(qtbot, experiments)
    panel.follow_run(experiments.get_run(run.id))
    qtbot.waitUntil(lambda: panel.point_count("loss") == 3, timeout=5000)
    assert not panel.stop_button.isEnabled()  # someone else's run: no stop from here
    experiments.finish_run(run.id, RunStatus.FINISHED)
    with qtbot.waitSignal(panel.run_status_changed, timeout=5000) as changed:
        panel._on_follow_timer_timeout()
    assert changed.args == [run.id, "FINISHED"]
    panel.shutdown()


def test_metric_names_are_canonicalised() -> None:
    assert canonical_metric("train/loss") == "loss"
    assert canonical_metric("eval/loss") == "eval_loss"
    assert canonical_metric("eval_loss") == "eval_loss"
    assert canonical_metric("lr") == "learning_rate"


def test_plots_follow_a_palette_change(qtbot: Any, experiments: ExperimentService) -> None:
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    panel = _panel(qtbot, experiments)
    axis = panel.plots["loss"].getPlotItem().getAxis("left")
    original = QApplication.palette()
    dark = QPalette(original)
    dark.setColor(QPalette.ColorRole.WindowText, QColor("#e5e7eb"))
    dark.setColor(QPalette.ColorRole.Window, QColor("#111827"))
    try:
        QApplication.setPalette(dark)
        qtbot.waitUntil(lambda: axis.pen().color().name() == "#e5e7eb", timeout=2000)
        assert axis.textPen().color().name() == "#e5e7eb"
    finally:
        QApplication.setPalette(original)


def test_a_nan_loss_stays_visible_as_a_gap_a_cross_and_a_notice(
    qtbot: Any, experiments: ExperimentService, tmp_path: Any
) -> None:
    panel = _panel(qtbot, experiments)
    panel.attach_run(1, "diverging", hosted=True)
    losses = [3.0, 2.5, math.nan, math.inf, 2.0]
    events: list[Any] = [RunStarted(run_id=1, total_steps=5, output_dir=tmp_path)]
    events += [MetricsLogged(step, {"loss": loss}) for step, loss in enumerate(losses, 1)]
    panel.add_events(events)
    assert panel.point_count("loss") == 5  # NaN and inf are kept, not dropped
    curve = panel.plots["loss"].getPlotItem().listDataItems()[0]

    def drawn() -> bool:
        xs = curve.getOriginalDataset()[0]
        return xs is not None and len(xs) == 5

    qtbot.waitUntil(drawn, timeout=5000)
    ys = curve.getOriginalDataset()[1]
    assert math.isnan(ys[2])
    assert ys[3] == math.inf
    assert curve.opts["connect"] == "finite"  # a gap at the non-finite steps
    marks = panel._nonfinite_marks["loss"]
    mark_x, mark_y = marks.getData()
    assert list(mark_x) == [3, 4]
    assert list(mark_y) == [2.5, 2.5]  # drawn at the last finite height
    assert not panel.nonfinite_label.isHidden()
    notice = panel.nonfinite_label.text()
    assert "Train loss is inf at step 4" in notice
    assert "last finite value 2.5 at step 2" in notice
    panel.grab()  # paints with the NaN in the data without raising

    panel.attach_run(2, "next", hosted=True)
    assert panel.nonfinite_label.isHidden()
    assert len(marks.getData()[0]) == 0


def test_pass_at_1_is_a_curve_in_its_own_plot_for_runs_that_measure_it(
    qtbot: Any, experiments: ExperimentService, tmp_path: Any
) -> None:
    from codetune_studio.core.events import CodeEvalCompleted

    panel = _panel(qtbot, experiments)
    panel.attach_run(1, "with evaluation", hosted=True)
    panel.add_events([RunStarted(run_id=1, total_steps=4, output_dir=tmp_path)])
    panel.add_events([MetricsLogged(step, {"loss": 2.0 / step}) for step in range(1, 5)])
    qtbot.waitUntil(lambda: panel.point_count("loss") == 4, timeout=2000)
    panel._on_redraw_timer_timeout()
    pass_plot = panel.plots["pass"]
    assert pass_plot.objectName() == "passPlot"
    assert pass_plot.isHidden()  # a run without an evaluation section: no empty plot
    panel.add_events(
        [
            CodeEvalCompleted(step=2, metrics={"eval_pass@1": 0.0}, tasks=3, seconds=1.5),
            CodeEvalCompleted(step=4, metrics={"eval_pass@1": 2 / 3}, tasks=3, seconds=1.4),
        ]
    )
    qtbot.waitUntil(lambda: not pass_plot.isHidden(), timeout=2000)
    curve = next(
        item for item in pass_plot.getPlotItem().listDataItems() if item.name() == "pass@1"
    )
    steps, values = curve.getOriginalDataset()
    assert list(steps) == [2, 4]
    assert list(values) == [0.0, 2 / 3]
    # A fixed 0..1 scale, so 0.67 reads as two in three tasks, not as a full plot.
    low, high = pass_plot.getPlotItem().getViewBox().viewRange()[1]
    assert low <= 0.0
    assert 1.0 <= high < 1.2
    panel.attach_run(2, "without", hosted=True)
    assert pass_plot.isHidden()


def test_a_followed_run_shows_its_stored_pass_at_1(
    qtbot: Any, experiments: ExperimentService
) -> None:
    run = experiments.create_run("terminal-run", {"training": {"max_steps": 4}})
    experiments.start_run(run.id, pid=1234, host="elsewhere")
    experiments.record_metrics(
        run.id,
        [MetricPoint(step, "loss", 1.0, 0.0) for step in range(1, 5)]
        + [MetricPoint(2, "eval_pass@1", 0.25, 0.0), MetricPoint(4, "eval_pass@1", 0.5, 0.0)],
    )
    panel = _panel(qtbot, experiments)
    panel.follow_run(experiments.get_run(run.id))
    qtbot.waitUntil(lambda: panel.point_count("eval_pass@1") == 2, timeout=5000)
    experiments.finish_run(run.id, RunStatus.FINISHED)
    with qtbot.waitSignal(panel.run_status_changed, timeout=5000):
        panel._on_follow_timer_timeout()
    panel.shutdown()


def test_a_redraw_whose_points_fit_keeps_the_plot_range_and_its_axes_drawn(
    qtbot: Any, experiments: ExperimentService, tmp_path: Any
) -> None:
    """New points that fit the shown range repaint the curve, not the axes of every plot.

    A plot that re-ranges to its data at each redraw lays out and draws both axes again (ticks
    and labels, and the loss plot's grid): that was most of the window's time while a run
    trained. The range moves only once the data leaves it, and then every point is in view.
    """
    panel = _panel(qtbot, experiments)
    panel.resize(900, 400)
    panel.attach_run(1, "live", hosted=True)
    panel.add_events([RunStarted(run_id=1, total_steps=10_000, output_dir=tmp_path)])
    view = panel.plots["loss"].getPlotItem().getViewBox()
    bottom = panel.plots["loss"].getPlotItem().getAxis("bottom")

    def redraw(first: int, last: int) -> None:
        before = panel.redraw_count
        panel.add_events(
            [MetricsLogged(step, {"loss": 3.0 - step / 1000}) for step in range(first, last + 1)]
        )
        qtbot.waitUntil(lambda: panel.redraw_count > before, timeout=2000)
        panel.grab()  # paints: the view ranges to its items, the axes draw their ticks

    redraw(1, 400)
    redraw(401, 410)  # the progress bar now shows a rate and an ETA: the layout settles
    shown = view.viewRange()
    ticks = bottom.picture
    assert ticks is not None

    redraw(411, 430)  # still inside the range shown

    assert view.viewRange() == shown
    assert bottom.picture is ticks  # the axis was not laid out again
    curve = panel.plots["loss"].getPlotItem().listDataItems()[0]
    assert len(curve.getOriginalDataset()[0]) == 430  # the curve itself did get the points

    redraw(431, 2000)  # far past the right edge

    (x_low, x_high), (y_low, y_high) = view.viewRange()
    # Every point in view.
    assert x_low <= 1
    assert x_high >= 2000
    assert y_low <= 3.0 - 2000 / 1000
    assert y_high >= 3.0 - 1 / 1000
    assert bottom.picture is not ticks
    assert x_high > 2100  # room left for the next points

    view.setXRange(100, 200)  # the user zooms in: new points leave the zoom alone
    redraw(2001, 2010)
    (x_low, x_high), _ = view.viewRange()
    assert 90 <= x_low < x_high <= 210
    view.enableAutoRange()  # the plot's "A" button: following the run again
    panel.grab()
    (x_low, x_high), _ = view.viewRange()
    assert x_low <= 1
    assert x_high >= 2010

    panel.run_ended(RunStatus.FINISHED, None)  # nothing more will come: the curve fills the plot
    panel.grab()

    (x_low, x_high), _ = view.viewRange()
    assert x_low <= 1
    assert 2010 <= x_high < 2010 * 1.1  # pyqtgraph's own padding only
