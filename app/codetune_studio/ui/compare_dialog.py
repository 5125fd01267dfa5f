"""Comparing runs: curves overlaid by step, tokens seen or epoch, the recipe diff, the results.

Everything is read in two background calls (the comparison, then every curve of the chosen
metric in one query); switching the axis redraws from memory without touching the database.
"""

from __future__ import annotations

import logging
import math
import time
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

from codetune_studio.core.comparison import AXES, x_values
from codetune_studio.ui.plotting import new_plot_widget
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from codetune_studio.core.comparison import Axis, Comparison, Curve
    from codetune_studio.ui.studio_services import StudioServices

__all__ = ["CompareDialog"]

#: x and y arrays of one run's curve, per x axis.
_Series = dict[str, tuple[Any, Any]]
_EMPTY: tuple[float, ...] = ()
#: Longest the GUI thread spends drawing curves before letting other events through.
_SLICE_S = 0.015
#: Points per curve read for the plot (thinned in the database; a plot shows no more).
_MAX_POINTS = 1000
#: A legend beyond this many runs hides the plot; the results table names them instead.
_LEGEND_MAX_RUNS = 12

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
    ("Perplexity", "perplexity"),
    ("Final pass@1", "final_pass_at_1"),
    ("Tokens/s", "tokens_per_second"),
    ("Tokens seen", "tokens_seen"),
    ("Wall time (s)", "wall_time_s"),
    ("Peak memory (MB)", "peak_memory_mb"),
    ("Steps", "steps"),
)


class CompareDialog(QDialog):
    """Two or more runs side by side; non-modal, one per comparison.

    Args:
        services: The studio's services.
        run_ids: The runs to compare.
        metric: The metric that marks the best run.
        parent: The Qt parent.
    """

    def __init__(
        self,
        services: StudioServices,
        run_ids: list[int],
        *,
        metric: str = "eval_loss",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("compareDialog")
        self.setWindowTitle("Compare runs " + ", ".join(str(run_id) for run_id in run_ids))
        self.resize(1100, 720)
        self.services = services
        self.run_ids = list(run_ids)
        self.best_metric = metric
        self.comparison: Comparison | None = None
        self.curves: list[Curve] = []
        self._tasks: list[TaskHandle] = []
        self._plot: Any = None
        self._series: dict[int, _Series] = {}
        self._items: dict[int, Any] = {}
        self._pending: list[int] = []
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
                on_return=self._on_comparison_returned,
            )
        )

    def _load_curves(self) -> None:
        metric = self.metric_combo.currentText()
        self._tasks.append(
            run_in_thread(
                _fetch_series,
                self.services,
                self.run_ids,
                metric,
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
                item = QTableWidgetItem(_fmt(getattr(results, key)))
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
        self._redraw()

    @safe_slot()
    def _on_curves_returned(self, result: tuple[str, list[Curve], dict[int, _Series]]) -> None:
        metric, curves, series = result
        if metric != self.metric_combo.currentText():
            return  # an older request; the newer one follows
        self.curves = curves
        self._series = series
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
        """Point every run's curve at the chosen axis, a few runs per event-loop turn.

        Curves are created once and then only get new data, and the work is sliced so that a
        comparison of a hundred long runs never holds the GUI thread for long.
        """
        plot = self._ensure_plot()
        axis: Axis = self.axis_combo.currentText()  # type: ignore[assignment]
        plot.setLabel("bottom", _AXIS_LABELS[axis])
        plot.setLabel("left", self.metric_combo.currentText())
        if plot.getPlotItem().legend is None and 0 < len(self.run_ids) <= _LEGEND_MAX_RUNS:
            plot.addLegend()
        self._pending = [curve.run_id for curve in self.curves]
        self._generation += 1
        # One repaint once every curve has its data, not one per slice: with a hundred runs a
        # repaint is the expensive part.
        plot.setUpdatesEnabled(False)
        self._draw_some(self._generation)

    def _draw_some(self, generation: int) -> None:
        if generation != self._generation or self._plot is None:
            return  # a newer redraw took over
        import pyqtgraph as pg

        axis = self.axis_combo.currentText()
        started = time.perf_counter()
        while self._pending and time.perf_counter() - started < _SLICE_S:
            run_id = self._pending.pop(0)
            xs, ys = self._series.get(run_id, {}).get(axis, (_EMPTY, _EMPTY))
            item = self._items.get(run_id)
            if item is None:
                index = self.run_ids.index(run_id)
                best = self.comparison is not None and self.comparison.best_run_id == run_id
                pen = pg.mkPen(_PALETTE[index % len(_PALETTE)], width=3 if best else 1.5)
                # Antialiasing a hundred curves costs more than it shows.
                smooth = len(self.run_ids) <= _LEGEND_MAX_RUNS
                item = self._plot.plot(name=self._run_label(run_id), pen=pen, antialias=smooth)
                item.setClipToView(True)
                item.setDownsampling(auto=True, method="peak")
                self._items[run_id] = item
            item.setData(xs, ys)
        if self._pending:
            QTimer.singleShot(0, lambda: self._draw_some(generation))
        else:
            self._plot.setUpdatesEnabled(True)
            self._plot.update()

    def plotted_runs(self) -> list[int]:
        """The runs whose curve is drawn (with at least one point)."""
        return [
            run_id
            for run_id, item in self._items.items()
            if item.xData is not None and len(item.xData)
        ]

    def done(self, result: int) -> None:
        for task in self._tasks:
            task.cancel()
        super().done(result)


def _fetch_series(
    services: StudioServices, run_ids: list[int], metric: str
) -> tuple[str, list[Curve], dict[int, _Series]]:
    """Curves of one metric, as finite NumPy arrays per x axis (runs on a worker thread)."""
    import numpy as np

    curves = services.history.curves(run_ids, [metric], max_points=_MAX_POINTS)
    series: dict[int, _Series] = {}
    for curve in curves:
        ys = np.asarray(curve.values, dtype=float)
        per_axis: _Series = {}
        for axis in AXES:
            xs = np.asarray(x_values(curve, axis), dtype=float)
            keep = np.isfinite(xs) & np.isfinite(ys)
            per_axis[axis] = (xs[keep], ys[keep])
        series[curve.run_id] = per_axis
    return metric, curves, series


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.5g}"
