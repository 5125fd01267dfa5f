"""Comparing runs: curves overlaid by step, tokens seen or epoch, the recipe diff, the results.

Everything is read in two background calls (the comparison, then every curve of the chosen
metric in one query); switching the axis redraws from memory without touching the database.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
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

logger = logging.getLogger(__name__)

_METRICS = ("loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second", "perplexity")
_AXIS_LABELS = {"step": "optimizer step", "tokens": "tokens seen", "epoch": "epoch"}
_PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
_RESULT_ROWS = (
    ("Final loss", "final_loss"),
    ("Best eval loss", "best_eval_loss"),
    ("Perplexity", "perplexity"),
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
                self.services.history.curves,
                self.run_ids,
                [metric],
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
    def _on_curves_returned(self, curves: list[Curve]) -> None:
        if curves and curves[0].name != self.metric_combo.currentText():
            return  # an older request; the newer one follows
        self.curves = curves
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
            self._plot.addLegend()
            self._plot.showGrid(x=True, y=True, alpha=0.2)
            holder_layout = self.plot_holder.layout()
            if holder_layout is not None:
                holder_layout.addWidget(self._plot)
        return self._plot

    def _redraw(self) -> None:
        plot = self._ensure_plot()
        plot.clear()
        axis: Axis = self.axis_combo.currentText()  # type: ignore[assignment]
        plot.setLabel("bottom", _AXIS_LABELS[axis])
        plot.setLabel("left", self.metric_combo.currentText())
        for index, curve in enumerate(self.curves):
            xs = x_values(curve, axis)
            points = [(x, y) for x, y in zip(xs, curve.values, strict=True) if math.isfinite(x + y)]
            if not points:
                continue
            best = self.comparison is not None and self.comparison.best_run_id == curve.run_id
            import pyqtgraph as pg

            pen = pg.mkPen(_PALETTE[index % len(_PALETTE)], width=3 if best else 1.5)
            item = plot.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                pen=pen,
                name=self._run_label(curve.run_id),
            )
            item.setClipToView(True)
            item.setDownsampling(auto=True)

    def plotted_runs(self) -> list[int]:
        """The runs with a curve on the plot (for tests)."""
        return [curve.run_id for curve in self.curves if curve.steps]

    def done(self, result: int) -> None:
        for task in self._tasks:
            task.cancel()
        super().done(result)


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.5g}"
