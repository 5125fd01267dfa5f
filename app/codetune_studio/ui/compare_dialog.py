"""Comparing runs: curves overlaid by step, tokens seen or epoch, the recipe diff, the results.

The results and the recipe differences are tables with one row per run (the run's label is the
row header, so it stays in view while a wide table scrolls sideways), whatever the number of
runs; a click on a column header sorts by it. "Best by" picks the metric that marks the best run
among the results already read, so changing it touches no database; the choice is remembered.

Everything is read in two background calls (the comparison, then every curve of the chosen
metric in one query). The second also builds the plot's arrays for every x axis, thinned to the
plot's width and, past a dozen runs, joined into one item per colour
(:mod:`codetune_studio.ui.compare_plot`): the GUI thread only hands ready arrays to a few plot
items and sets the range once, and switching the axis does the same from memory.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QSettings,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QBrush, QColor, QFont, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.comparison import (
    AXES,
    METRIC_NAMES,
    RESULT_FIELDS,
    best_run,
    higher_is_better,
    metric_field,
)
from codetune_studio.core.units import format_duration
from codetune_studio.ui.plotting import new_plot_widget
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

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
#: Where the chosen "Best by" metric is remembered (in the window's settings file).
_BEST_METRIC_KEY = "compare/best_metric"
_DEFAULT_METRIC = "eval_loss"
#: The value a column sorts by (a number, or text), apart from the text it shows.
_SORT_ROLE = Qt.ItemDataRole.UserRole + 1
_BEST_BACKGROUND = QColor("#dcfce7")
#: The results table's columns: the run's name, then every result.
_NAME_COLUMN = ("name", "Name", "The run's name.")
_RESULT_COLUMNS = (_NAME_COLUMN, *((f.key, f.label, f.description) for f in RESULT_FIELDS))


class CompareDialog(QDialog):
    """Two or more runs side by side; non-modal, one per comparison.

    Args:
        services: The studio's services.
        run_ids: The runs to compare.
        metric: The metric that marks the best run (a sweep's own); ``None``: the one chosen
            last time in "Best by", else ``eval_loss``.
        known_results: Results the runs view has already read, by run id (those of ended runs
            are not aggregated again).
        parent: The Qt parent.
    """

    def __init__(
        self,
        services: StudioServices,
        run_ids: list[int],
        *,
        metric: str | None = None,
        known_results: Mapping[int, RunResults] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("compareDialog")
        self.setWindowTitle("Compare runs " + ", ".join(str(run_id) for run_id in run_ids))
        self.resize(1100, 720)
        self.services = services
        self.run_ids = list(run_ids)
        self._settings = QSettings(
            str(services.paths.config_dir / "window.ini"), QSettings.Format.IniFormat
        )
        self.best_metric = metric if metric in METRIC_NAMES else self._saved_metric()
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
        self._marked: int | None = None  # the run whose rows carry the best run's mark
        self._build_ui()
        self.axis_combo.currentTextChanged.connect(self._on_axis_combo_changed)
        self.metric_combo.currentTextChanged.connect(self._on_metric_combo_changed)
        self.best_combo.currentTextChanged.connect(self._on_best_combo_changed)
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
        controls.addWidget(QLabel("Best by:", self))
        self.best_combo = QComboBox(self)
        self.best_combo.setObjectName("compareBestBy")
        self.best_combo.setToolTip("The metric that marks the best run (★, bold, thick curve)")
        descriptions = {f.key: f.description for f in RESULT_FIELDS}
        for index, name in enumerate(METRIC_NAMES):
            self.best_combo.addItem(name)
            direction = "higher" if higher_is_better(name) else "lower"
            self.best_combo.setItemData(
                index,
                f"{descriptions.get(metric_field(name), name)} The {direction} the better.",
                Qt.ItemDataRole.ToolTipRole,
            )
        self.best_combo.setCurrentText(self.best_metric)
        controls.addWidget(self.best_combo)
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
        self.results_model = QStandardItemModel(0, len(_RESULT_COLUMNS), self)
        self.results_table, self.results_proxy = _run_table(
            self, "compareResults", self.results_model
        )
        self.diff_model = QStandardItemModel(self)
        self.diff_table, self.diff_proxy = _run_table(self, "compareDiff", self.diff_model)
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
        if comparison.metric != self.best_metric:
            # "Best by" changed while the comparison was read: mark by what it says now.
            comparison = _marked_by(comparison, self.best_metric)
        self.comparison = comparison
        self._marked = None  # the tables are filled afresh, every row unmarked
        self._fill_results(comparison)
        self._fill_differences(comparison)
        self._mark_best()

    def _fill_results(self, comparison: Comparison) -> None:
        """One row per run, one column per result; each cell keeps its number for sorting."""
        model = self.results_model
        model.clear()
        model.setColumnCount(len(_RESULT_COLUMNS))
        for column, (_, label, description) in enumerate(_RESULT_COLUMNS):
            header = QStandardItem(label)
            header.setToolTip(description)
            model.setHorizontalHeaderItem(column, header)
        for run in comparison.runs:
            results = comparison.results[run.id]
            cells = [_cell(run.name, run.name.lower(), run.name)]
            for key, _, _ in _RESULT_COLUMNS[1:]:
                value = getattr(results, key)
                tip = str(value) if key == "eval_tasks" and value else None
                sort_value = value if key != "eval_tasks" or value is None else str(value)
                cells.append(_cell(_result_text(results, key), sort_value, tip))
            model.appendRow(cells)
            model.setVerticalHeaderItem(model.rowCount() - 1, QStandardItem(f"run {run.id}"))
        # A result no run has (no code evaluation, no perplexity logged) would be a column of
        # dashes pushing the others out of view: it is left out.
        for column, (key, _, _) in enumerate(_RESULT_COLUMNS[1:], start=1):
            empty = all(getattr(comparison.results[run.id], key) is None for run in comparison.runs)
            self.results_table.setColumnHidden(column, empty)

    def _fill_differences(self, comparison: Comparison) -> None:
        """One row per run, one column per differing recipe field, headed by its full name."""
        model = self.diff_model
        model.clear()
        names = list(comparison.differences)
        if not names:
            return
        # A hidden first column holds each run's value of the "Best by" metric, so these rows
        # sort like the results' (the best first) and follow a change of the metric.
        model.setColumnCount(len(names) + 1)
        model.setHorizontalHeaderItem(0, QStandardItem("Best by"))
        for column, name in enumerate(names, start=1):
            header = QStandardItem(name)
            header.setToolTip(name)
            model.setHorizontalHeaderItem(column, header)
        for run in comparison.runs:
            cells = [_cell("", None)]
            for name in names:
                value = comparison.differences[name].get(run.id)
                text = _diff_text(value)
                cells.append(_cell(text, value if _is_number(value) else text, text))
            model.appendRow(cells)
            model.setVerticalHeaderItem(model.rowCount() - 1, QStandardItem(f"run {run.id}"))
        self.diff_table.setColumnHidden(0, True)

    def _mark_best(self) -> None:
        """Mark the best run: starred, bold, shaded rows, sorted first; its curve thick."""
        comparison = self.comparison
        if comparison is None:
            return
        best = comparison.best_run_id
        self._move_mark(comparison, best)
        self._sort_by_metric(comparison)
        if best is not None:
            row = next(r for r, run in enumerate(comparison.runs) if run.id == best)
            for table, proxy, model in (
                (self.results_table, self.results_proxy, self.results_model),
                (self.diff_table, self.diff_proxy, self.diff_model),
            ):
                if row < model.rowCount() and model.columnCount():
                    table.scrollTo(proxy.mapFromSource(model.index(row, 0)))
        # Widths fit the rows in view (Qt measures from the top one), once the best run's bold
        # row is among them.
        self.results_table.resizeColumnsToContents()
        self.diff_table.resizeColumnsToContents()
        self.best_label.setText(
            f"Best by {comparison.metric}: ★ run {best}"
            if best is not None
            else f"No run has {comparison.metric} yet"
        )
        if not self._pending:
            self._show_best()  # else the drawing in progress marks it when done

    def _move_mark(self, comparison: Comparison, best: int | None) -> None:
        """Take the mark off the previous best run's rows and put it on ``best``'s.

        Only those rows are touched: a hundred runs' cells stay as they are.
        """
        rows = {run.id: row for row, run in enumerate(comparison.runs)}
        for run_id, is_best in ((self._marked, False), (best, True)):
            if run_id is not None and run_id in rows:
                for model in (self.results_model, self.diff_model):
                    _mark_row(model, rows[run_id], run_id, best=is_best)
        self._marked = best

    def _sort_by_metric(self, comparison: Comparison) -> None:
        """Sort both tables by the "Best by" metric, the best run first."""
        key = metric_field(comparison.metric)
        column = next(i for i, (k, _, _) in enumerate(_RESULT_COLUMNS) if k == key)
        order = (
            Qt.SortOrder.DescendingOrder
            if higher_is_better(comparison.metric)
            else Qt.SortOrder.AscendingOrder
        )
        self.results_table.sortByColumn(column, order)
        if self.diff_model.columnCount():
            for row, run in enumerate(comparison.runs):
                value = comparison.results[run.id].metric(comparison.metric)
                self.diff_model.item(row, 0).setData(value, _SORT_ROLE)
            self.diff_table.sortByColumn(0, order)

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

    @safe_slot()
    def _on_best_combo_changed(self, metric: str) -> None:
        """Re-mark the best run by ``metric`` from the results already read (no query)."""
        self.best_metric = metric
        self._settings.setValue(_BEST_METRIC_KEY, metric)
        self._settings.sync()  # on disk now: the next start reads it even after a crash
        if self.comparison is not None:
            self.comparison = _marked_by(self.comparison, metric)
            self._mark_best()

    def _saved_metric(self) -> str:
        saved = self._settings.value(_BEST_METRIC_KEY, _DEFAULT_METRIC)
        return saved if isinstance(saved, str) and saved in METRIC_NAMES else _DEFAULT_METRIC

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
            # A fixed margin: pyqtgraph's default grows to 10% when the plot is still small
            # (the window not yet laid out), leaving wide empty bands once it is.
            self._plot.setRange(xRange=(x_min, x_max), yRange=(y_min, y_max), padding=0.02)
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


class _RunRowsSortProxy(QSortFilterProxyModel):
    """Sorts by each cell's number (or text); an empty cell stays last either way."""

    def lessThan(
        self,
        source_left: QModelIndex | QPersistentModelIndex,
        source_right: QModelIndex | QPersistentModelIndex,
    ) -> bool:
        left, right = source_left.data(_SORT_ROLE), source_right.data(_SORT_ROLE)
        if left is None or right is None:
            descending = self.sortOrder() == Qt.SortOrder.DescendingOrder
            return left is not right and (left is None) == descending
        if _is_number(left) and _is_number(right):
            return bool(left < right)
        return str(left) < str(right)


def _run_table(
    parent: QWidget, name: str, model: QStandardItemModel
) -> tuple[QTableView, _RunRowsSortProxy]:
    """A read-only, sortable table of one row per run, the run's label frozen at the left."""
    proxy = _RunRowsSortProxy(parent)
    # Sorted when asked (a header click, a new best metric), not again on every cell's change.
    proxy.setDynamicSortFilter(False)
    proxy.setSourceModel(model)
    table = QTableView(parent)
    table.setObjectName(name)
    table.setModel(proxy)
    table.setSortingEnabled(True)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    # No stretched last column: a number would sit far right of its narrow header.
    table.horizontalHeader().setStretchLastSection(False)
    # Column widths fit the first rows' contents, not every run's: filling stays quick for many.
    table.horizontalHeader().setResizeContentsPrecision(50)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
    return table, proxy


def _cell(text: str, sort_value: Any, tooltip: str | None = None) -> QStandardItem:
    item = QStandardItem(text)
    item.setData(sort_value, _SORT_ROLE)
    if _is_number(sort_value):
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tooltip:
        item.setToolTip(tooltip)
    return item


def _mark_row(model: QStandardItemModel, row: int, run_id: int, *, best: bool) -> None:
    """Star a run's row header and set its cells bold on green, or take that off again."""
    if row >= model.rowCount():
        return
    bold = QFont()
    bold.setBold(True)
    font, background = (bold, QBrush(_BEST_BACKGROUND)) if best else (None, None)
    header = model.verticalHeaderItem(row)
    if header is not None:
        header.setText(f"★ run {run_id}" if best else f"run {run_id}")
        header.setData(font, Qt.ItemDataRole.FontRole)
    for column in range(model.columnCount()):
        item = model.item(row, column)
        item.setData(font, Qt.ItemDataRole.FontRole)
        item.setData(background, Qt.ItemDataRole.BackgroundRole)


def _marked_by(comparison: Comparison, metric: str) -> Comparison:
    """The comparison with its best run picked by ``metric`` among the results it holds."""
    return comparison.model_copy(
        update={"metric": metric, "best_run_id": best_run(comparison.results, metric)}
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _result_text(results: RunResults, key: str) -> str:
    """One cell of the results table, with its unit.

    Shares as percentages, memory in MB or GB, throughput in tokens/s, wall time as 1h02m,
    the task file by name.
    """
    value = getattr(results, key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if key == "eval_tasks":
        return Path(str(value)).name
    if key in ("pass_at_1", "base_pass_at_1", "final_pass_at_1"):
        return f"{value * 100:.1f}%"
    if key == "pass_at_k":
        return f"{value * 100:.1f}% (k={results.eval_k})"
    formatters: dict[str, Callable[[float], str]] = {
        "tokens_per_second": lambda v: f"{_count(v)} tok/s",
        "tokens_seen": _count,
        "wall_time_s": format_duration,
        "peak_memory_mb": _memory,
        "steps": lambda v: f"{int(v):,}",
    }
    formatter = formatters.get(key)
    return formatter(value) if formatter is not None else f"{value:.4g}"


def _count(value: float) -> str:
    """1,234 / 12.3k / 4.56M: how many, as a person reads it."""
    for threshold, divisor, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / divisor:.3g}{suffix}"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.3g}"


def _memory(megabytes: float) -> str:
    return f"{megabytes / 1024:.3g} GB" if megabytes >= 1024 else f"{megabytes:.4g} MB"


def _diff_text(value: Any) -> str:
    """A recipe value as the recipe writes it (lists and objects as JSON)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value)
