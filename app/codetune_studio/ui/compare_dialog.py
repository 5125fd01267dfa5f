"""Comparing runs: curves overlaid by step, tokens seen or epoch, the recipe diff, the results.

Everything is read in two background calls (the comparison, then every curve of the chosen
metric in one query). The second also builds the plot's arrays for every x axis, thinned to the
plot's width and, past a dozen runs, joined into one item per colour
(:mod:`codetune_studio.ui.compare_plot`): the GUI thread only hands ready arrays to a few plot
items and sets the range once, and switching the axis does the same from memory.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.comparison import AXES
from codetune_studio.ui.plotting import new_plot_widget
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Mapping

    from codetune_studio.core.comparison import Axis, Comparison, Curve, RunResults
    from codetune_studio.ui.compare_plot import ComparePlotData, PlotLayer
    from codetune_studio.ui.studio_services import StudioServices

__all__ = ["CompareDialog"]

#: Longest the GUI thread spends handing arrays to plot items before letting other events through.
_SLICE_S = 0.010
#: Points per curve read for the plot (thinned in the database; a plot shows no more).
_MAX_POINTS = 1000
#: The key of the item that draws the best run over the others when curves share items.
_BEST_KEY = "best"

logger = logging.getLogger(__name__)

_METRICS = (
    "loss",
    "eval_loss",
    "eval_pass@1",
    "learning_rate",
    "grad_norm",
    "tokens_per_second",
    "perplexity",
)
_AXIS_LABELS = {"step": "optimizer step", "tokens": "tokens seen", "epoch": "epoch"}
_PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
_RESULT_ROWS = (
    ("Final loss", "final_loss"),
    ("Best eval loss", "best_eval_loss"),
    # The newest code evaluation of each run's model ("-" when it has none), next to the losses
    # so that it shows without scrolling.
    ("Code eval pass@1", "pass_at_1"),
    ("Code eval pass@k", "pass_at_k"),
    ("Base pass@1", "base_pass_at_1"),
    ("Training pass@1 (last)", "final_pass_at_1"),
    ("Perplexity", "perplexity"),
    ("Tokens/s", "tokens_per_second"),
    ("Tokens seen", "tokens_seen"),
    ("Wall time (s)", "wall_time_s"),
    ("Peak memory (MB)", "peak_memory_mb"),
    ("Steps", "steps"),
    ("Eval tasks", "eval_tasks"),
)


class CompareDialog(QDialog):
    """Two or more runs side by side; non-modal, one per comparison.

    Args:
        services: The studio's services.
        run_ids: The runs to compare.
        metric: The metric that marks the best run.
        known_results: Results the runs view has already read, by run id (those of ended runs
            are not aggregated again).
        parent: The Qt parent.
    """

    def __init__(
        self,
        services: StudioServices,
        run_ids: list[int],
        *,
        metric: str = "eval_loss",
        known_results: Mapping[int, RunResults] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("compareDialog")
        self.setWindowTitle("Compare runs " + ", ".join(str(run_id) for run_id in run_ids))
        self.resize(1100, 720)
        self.services = services
        self.run_ids = list(run_ids)
        self.best_metric = metric
        self._known_results = dict(known_results or {})
        self.comparison: Comparison | None = None
        self.curves: list[Curve] = []
        self._tasks: list[TaskHandle] = []
        self._plot: Any = None
        self._data: ComparePlotData | None = None
        self._items: dict[str, Any] = {}
        self._pending: list[PlotLayer] = []
        self._drawn: list[int] = []
        self._generation = 0
        self._build_ui()
        self.axis_combo.currentTextChanged.connect(self._on_axis_combo_changed)
        self.metric_combo.currentTextChanged.connect(self._on_metric_combo_changed)
        self._load_comparison()
        self._load_curves()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Metric:", self))
        self.metric_combo = QComboBox(self)
        self.metric_combo.setObjectName("compareMetric")
        self.metric_combo.addItems(_METRICS)
        controls.addWidget(self.metric_combo)
        controls.addWidget(QLabel("x axis:", self))
        self.axis_combo = QComboBox(self)
        self.axis_combo.setObjectName("compareAxis")
        self.axis_combo.addItems(AXES)
        controls.addWidget(self.axis_combo)
        self.best_label = QLabel(self)
        self.best_label.setObjectName("compareBest")
        controls.addWidget(self.best_label, 1)
        layout.addLayout(controls)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.plot_holder = QWidget(self)
        self.plot_holder.setMinimumHeight(300)
        QVBoxLayout(self.plot_holder).setContentsMargins(0, 0, 0, 0)
        splitter.addWidget(self.plot_holder)
        tabs = QTabWidget(self)
        self.results_table = QTableWidget(self)
        self.results_table.setObjectName("compareResults")
        self.diff_table = QTableWidget(self)
        self.diff_table.setObjectName("compareDiff")
        for table in (self.results_table, self.diff_table):
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
            # Every run gets an equal column, so the best one does not stand out by width.
            table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        tabs.addTab(self.results_table, "Results")
        tabs.addTab(self.diff_table, "Recipe differences")
        splitter.addWidget(tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([460, 260])
        layout.addWidget(splitter, 1)

    # --- loading ------------------------------------------------------------------------------

    def _load_comparison(self) -> None:
        self._tasks.append(
            run_in_thread(
                self.services.history.compare,
                self.run_ids,
                metric=self.best_metric,
                known=self._known_results,
                on_return=self._on_comparison_returned,
            )
        )

    def _load_curves(self) -> None:
        metric = self.metric_combo.currentText()
        self._tasks.append(
            run_in_thread(
                _fetch_plot_data,
                self.services,
                self.run_ids,
                metric,
                max(self.plot_holder.width(), self.width()),
                len(_PALETTE),
                on_return=self._on_curves_returned,
            )
        )

    @safe_slot()
    def _on_comparison_returned(self, comparison: Comparison) -> None:
        self.comparison = comparison
        runs = comparison.runs
        best = comparison.best_run_id
        headers = [self._run_label(run.id) for run in runs]
        self.results_table.setColumnCount(len(runs))
        self.results_table.setRowCount(len(_RESULT_ROWS))
        self.results_table.setHorizontalHeaderLabels(headers)
        self.results_table.setVerticalHeaderLabels([label for label, _ in _RESULT_ROWS])
        bold = QFont()
        bold.setBold(True)
        for column, run in enumerate(runs):
            results = comparison.results[run.id]
            for row, (_, key) in enumerate(_RESULT_ROWS):
                item = QTableWidgetItem(_result_text(results, key))
                if key == "eval_tasks" and results.eval_tasks:
                    item.setToolTip(results.eval_tasks)
                if run.id == best:
                    item.setFont(bold)
                    item.setBackground(QColor("#dcfce7"))
                self.results_table.setItem(row, column, item)
        names = list(comparison.differences)
        self.diff_table.setColumnCount(len(runs))
        self.diff_table.setRowCount(len(names))
        self.diff_table.setHorizontalHeaderLabels(headers)
        self.diff_table.setVerticalHeaderLabels(names)
        for row, name in enumerate(names):
            for column, run in enumerate(runs):
                value = comparison.differences[name].get(run.id)
                self.diff_table.setItem(row, column, QTableWidgetItem(str(value)))
        self.best_label.setText(
            f"Best by {comparison.metric}: ★ run {best}" if best is not None else "No best run yet"
        )
        if not self._pending:
            self._show_best()  # else the drawing in progress marks it when done

    @safe_slot()
    def _on_curves_returned(self, data: ComparePlotData) -> None:
        if data.metric != self.metric_combo.currentText():
            return  # an older request; the newer one follows
        self.curves = data.curves
        self._data = data
        self._redraw()

    @safe_slot()
    def _on_axis_combo_changed(self, _text: str) -> None:
        self._redraw()

    @safe_slot()
    def _on_metric_combo_changed(self, _text: str) -> None:
        self._load_curves()

    def _run_label(self, run_id: int) -> str:
        star = " ★" if self.comparison and self.comparison.best_run_id == run_id else ""
        return f"run {run_id}{star}"

    # --- drawing ------------------------------------------------------------------------------

    def _ensure_plot(self) -> Any:
        if self._plot is None:
            self._plot = new_plot_widget(self.plot_holder)
            self._plot.setObjectName("comparePlot")
            self._plot.showGrid(x=True, y=True, alpha=0.2)
            holder_layout = self.plot_holder.layout()
            if holder_layout is not None:
                holder_layout.addWidget(self._plot)
        return self._plot

    def _redraw(self) -> None:
        """Hand every layer's ready arrays for the chosen axis to its item, a few per turn.

        Items are created once and then only get new data; autorange stays off while they do
        (else every item's new data re-bounds all the others) and the range is set once, from
        bounds computed off the GUI thread, with one repaint at the end.
        """
        plot = self._ensure_plot()
        axis: Axis = self.axis_combo.currentText()  # type: ignore[assignment]
        plot.setLabel("bottom", _AXIS_LABELS[axis])
        plot.setLabel("left", self.metric_combo.currentText())
        self._generation += 1
        if self._data is None:
            return
        if self._data.per_run and plot.getPlotItem().legend is None:
            plot.addLegend()
        layers = self._data.axes[axis].layers
        wanted = {layer.key for layer in layers}
        # Curves of a metric some runs lack: items left from the previous one are emptied.
        for key, item in self._items.items():
            if key not in wanted and key != _BEST_KEY:
                item.setData([], [])
        self._pending = list(layers)
        self._drawn = []
        plot.disableAutoRange()
        plot.setUpdatesEnabled(False)
        self._draw_some(self._generation)

    def _draw_some(self, generation: int) -> None:
        if generation != self._generation or self._plot is None or self._data is None:
            return  # a newer redraw took over
        started = time.perf_counter()
        while self._pending and time.perf_counter() - started < _SLICE_S:
            layer = self._pending.pop(0)
            item = self._items.get(layer.key)
            if item is None:
                item = self._new_item(layer)
                self._items[layer.key] = item
            item.setData(layer.xs, layer.ys, connect=layer.connect)
        if self._pending:
            QTimer.singleShot(0, self, functools.partial(self._draw_some, generation))
            return
        axis: Axis = self.axis_combo.currentText()  # type: ignore[assignment]
        plotted = self._data.axes[axis]
        self._show_best()
        if plotted.bounds is not None:
            x_min, x_max, y_min, y_max = plotted.bounds
            self._plot.setRange(xRange=(x_min, x_max), yRange=(y_min, y_max))
        self._drawn = plotted.drawn_runs
        self._plot.setUpdatesEnabled(True)
        self._plot.update()

    def _new_item(self, layer: PlotLayer) -> Any:
        import pyqtgraph as pg

        per_run = self._data is not None and self._data.per_run
        run_id = layer.run_ids[0] if per_run and layer.run_ids else None
        item = pg.PlotDataItem(
            pen=pg.mkPen(_PALETTE[layer.colour % len(_PALETTE)], width=1.5 if per_run else 1),
            name=self._run_label(run_id) if run_id is not None else None,
            # Arrays arrive finite and thinned to the plot's width; antialiasing a hundred
            # curves costs more than it shows.
            skipFiniteCheck=True,
            antialias=per_run,
        )
        self._plot.addItem(item)
        return item

    def _show_best(self) -> None:
        """Draw the best run's curve thicker, above the others (and star it in the legend)."""
        if self._plot is None or self._data is None or self.comparison is None:
            return
        import pyqtgraph as pg

        best = self.comparison.best_run_id
        axis: Axis = self.axis_combo.currentText()  # type: ignore[assignment]
        if self._data.per_run:
            self._restyle_per_run_items(best)
            return
        layer = self._data.axes[axis].layer_of(best) if best is not None else None
        overlay = self._items.get(_BEST_KEY)
        if layer is None or best is None:
            if overlay is not None:
                overlay.setData([], [])
            return
        if overlay is None:
            overlay = pg.PlotDataItem(skipFiniteCheck=True, antialias=True)
            overlay.setZValue(1)
            self._plot.addItem(overlay)
            self._items[_BEST_KEY] = overlay
        overlay.setPen(pg.mkPen(_PALETTE[layer.colour % len(_PALETTE)], width=3))
        xs, ys = layer.run_data(best)
        overlay.setData(xs, ys)

    def _restyle_per_run_items(self, best: int | None) -> None:
        import pyqtgraph as pg

        legend = self._plot.getPlotItem().legend
        for run_id in self.run_ids:
            item = self._items.get(f"run:{run_id}")
            if item is None:
                continue
            colour = _PALETTE[self.run_ids.index(run_id) % len(_PALETTE)]
            item.setPen(pg.mkPen(colour, width=3 if run_id == best else 1.5))
            item.setZValue(1 if run_id == best else 0)
            label = legend.getLabel(item) if legend is not None else None
            if label is not None:
                label.setText(self._run_label(run_id))

    def plotted_runs(self) -> list[int]:
        """The runs whose curve is drawn (with at least one point)."""
        return list(self._drawn)

    def plot_items(self) -> dict[str, Any]:
        """The plot's curve items by layer key (``run:ID``, ``colour:N`` or ``best``)."""
        return dict(self._items)

    def done(self, result: int) -> None:
        for task in self._tasks:
            task.cancel()
        super().done(result)


def _fetch_plot_data(
    services: StudioServices, run_ids: list[int], metric: str, plot_width_px: int, colours: int
) -> ComparePlotData:
    """One metric's curves, as ready plot arrays for every x axis (runs on a worker thread)."""
    from codetune_studio.ui.compare_plot import build_plot_data, decimation_buckets

    curves = services.history.curves(run_ids, [metric], max_points=_MAX_POINTS)
    return build_plot_data(
        metric,
        curves,
        run_ids,
        colours=colours,
        buckets=decimation_buckets(plot_width_px, len(run_ids)),
    )


def _result_text(results: RunResults, key: str) -> str:
    """One cell of the results table: shares as percentages, the task file by name."""
    value = getattr(results, key)
    if value is None:
        return "-"
    if key == "eval_tasks":
        return Path(str(value)).name
    if key in ("pass_at_1", "base_pass_at_1", "final_pass_at_1"):
        return f"{value * 100:.1f}%"
    if key == "pass_at_k":
        return f"{value * 100:.1f}% (k={results.eval_k})"
    return _fmt(value)


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.5g}"
