"""Live training curves, progress, the worker's log, and Stop / Pause for the followed run."""

from __future__ import annotations

import logging
import time
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.events import (
    CheckpointSaved,
    CodeEvalCompleted,
    EvalCompleted,
    Event,
    LogRecorded,
    MetricsLogged,
    RunFinished,
    RunStarted,
)
from codetune_studio.core.status import RunStatus
from codetune_studio.core.units import format_duration
from codetune_studio.services.history import LOG_FILE_NAME, read_log_increment
from codetune_studio.ui import plotting
from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pyqtgraph as pg

    from codetune_studio.core.models import MetricPoint, Run
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.ui.live_range import Bounds, RangeAnchor

__all__ = ["SERIES", "MetricBuffer", "MonitorPanel", "canonical_metric"]

logger = logging.getLogger(__name__)

#: The series the monitor draws: key -> (plot, label, colour).
SERIES: dict[str, tuple[str, str, str]] = {
    "loss": ("loss", "train loss", "#3b82f6"),
    "eval_loss": ("loss", "eval loss", "#f97316"),
    "learning_rate": ("lr", "learning rate", "#10b981"),
    "grad_norm": ("grad", "grad norm", "#a855f7"),
    "tokens_per_second": ("speed", "tokens/s", "#0ea5e9"),
    "memory_mb": ("memory", "memory (MB)", "#ef4444"),
    # The recipe's evaluation section: pass@1 on code tasks, in [0, 1].
    "eval_pass@1": ("pass", "pass@1", "#16a34a"),
}
#: Series drawn as points joined by lines: measured now and then, not every step.
_SPARSE = frozenset({"eval_loss", "eval_pass@1"})
_PLOTS: dict[str, tuple[str, str]] = {
    "loss": ("lossPlot", "Loss"),
    "lr": ("lrPlot", "Learning rate"),
    "grad": ("gradPlot", "Grad norm"),
    "speed": ("speedPlot", "Tokens / s"),
    "memory": ("memoryPlot", "Memory (MB)"),
    "pass": ("passPlot", "Pass@1 on code tasks"),
}
_ALIASES = {
    "train_loss": "loss",
    "lr": "learning_rate",
    "tokens_per_sec": "tokens_per_second",
    "throughput": "tokens_per_second",
    "peak_memory_mb": "memory_mb",
    "memory": "memory_mb",
}
_REDRAW_MS = 250  # at most four redraws a second, however fast events arrive
_SLOW_REDRAW_MS = 1000
_MANY_POINTS = 20_000
_FOLLOW_MS = 2000
_NONFINITE_COLOUR = "#dc2626"
_LOG_LINES = 5000


def canonical_metric(name: str) -> str:
    """Map a stored or logged metric name (``train/loss``, ``eval/loss``, ``lr``) to a series key.

    Args:
        name: The metric name as logged.

    Returns:
        The series key (unknown names come back unchanged, without a ``train/`` prefix).
    """
    if name.startswith(("eval/", "eval_")):
        rest = name.split("/", 1)[-1] if "/" in name else name[5:]
        return "eval_loss" if rest == "loss" else f"eval_{rest}"
    base = name.removeprefix("train/")
    return _ALIASES.get(base, base)


class MetricBuffer:
    """Every point of every series of one run, in compact arrays, marked dirty when it grows."""

    def __init__(self) -> None:
        self._steps: dict[str, array[float]] = {}
        self._values: dict[str, array[float]] = {}
        self.dirty: set[str] = set()

    def clear(self) -> None:
        """Forget every point."""
        self._steps.clear()
        self._values.clear()
        self.dirty.clear()

    def add(self, key: str, step: float, value: float) -> None:
        """Append one point to a series."""
        if key not in self._steps:
            self._steps[key] = array("d")
            self._values[key] = array("d")
        self._steps[key].append(step)
        self._values[key].append(value)
        self.dirty.add(key)

    def series(self, key: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """A series' steps and values as new arrays.

        Copies, on purpose: a NumPy view would pin the growing ``array`` buffer and make the
        next append fail.
        """
        import numpy as np

        steps = self._steps.get(key)
        if steps is None:
            empty = np.zeros(0)
            return empty, empty
        return np.array(steps, dtype=float), np.array(self._values[key], dtype=float)

    def last_step(self, key: str) -> float | None:
        """The newest step of a series, if it has any."""
        steps = self._steps.get(key)
        return steps[-1] if steps else None

    def count(self, key: str | None = None) -> int:
        """Points in one series, or in all of them."""
        if key is not None:
            return len(self._steps.get(key, ()))
        return sum(len(steps) for steps in self._steps.values())


class MonitorPanel(Panel):
    """Follows one run: live curves, progress with ETA, log lines, Stop and Pause/Resume.

    A run the window hosts feeds it through :meth:`add_events`; any other run in the database
    (started from a terminal or by a teammate) is followed by polling its metrics.

    Args:
        experiments: Reads metrics and status of followed runs.
        parent: The Qt parent.
    """

    panel_id = "monitor"
    title = "Monitor"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    stop_requested = Signal(int)
    pause_requested = Signal(int)
    resume_requested = Signal(int)
    run_status_changed = Signal(int, str)

    def __init__(self, experiments: ExperimentService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._experiments = experiments
        self.buffer = MetricBuffer()
        self.redraw_count = 0
        self.run_id: int | None = None
        self._hosted = False
        self._paused = False
        self._total_steps = 0
        self._step = 0
        self._rate_start: tuple[float, int] | None = None
        self._rate_last: tuple[float, int] | None = None
        self._poll: TaskHandle | None = None
        #: A followed run's worker log, when it is on this machine, and how far it was read.
        self._log_path: Path | None = None
        self._log_offset = 0
        self._curves: dict[str, pg.PlotDataItem] = {}
        # Per series, a cross at each step whose value is NaN or infinite (the curve has a gap).
        self._nonfinite_marks: dict[str, pg.ScatterPlotItem] = {}
        self._plots: dict[str, pg.PlotWidget] = {}
        # Per plot, the item its auto range follows (see ui/live_range.py), and per series the
        # bounds of its finite points as last drawn.
        self._anchors: dict[str, RangeAnchor] = {}
        self._series_bounds: dict[str, Bounds | None] = {}
        #: Whether the run shown may still log points (its plots then leave room to grow).
        self._live = True
        self._build_ui()
        self._connect_signals()
        self._set_controls(active=False)

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        header = QHBoxLayout()
        self.run_label = QLabel("No run selected", self)
        self.run_label.setToolTip("Press Train, or double-click a run in the table to follow it.")
        self.run_label.setObjectName("monitorRunLabel")
        bold = self.run_label.font()
        bold.setBold(True)
        self.run_label.setFont(bold)
        self.run_label.setWordWrap(True)
        self.run_label.setMinimumWidth(120)
        header.addWidget(self.run_label, 1)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("runProgress")
        self.progress.setMinimumWidth(200)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        header.addWidget(self.progress, 2)
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setObjectName("pauseButton")
        header.addWidget(self.pause_button)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopButton")
        header.addWidget(self.stop_button)
        layout.addLayout(header)
        # Says which value stopped being finite: the curve only shows a gap and a cross there.
        self.nonfinite_label = QLabel(self)
        self.nonfinite_label.setObjectName("nonfiniteNotice")
        self.nonfinite_label.setStyleSheet(f"color: {_NONFINITE_COLOUR};")
        self.nonfinite_label.setWordWrap(True)
        self.nonfinite_label.hide()
        layout.addWidget(self.nonfinite_label)

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        # The plots themselves come later (ensure_plots): pyqtgraph stays off the start-up path.
        self._plot_area = QWidget(splitter)
        self._plot_grid = QGridLayout(self._plot_area)
        self._plot_grid.setContentsMargins(0, 0, 0, 0)
        self._plot_grid.setSpacing(4)
        splitter.addWidget(self._plot_area)
        self.log_view = QPlainTextEdit(splitter)
        self.log_view.setObjectName("runLog")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(_LOG_LINES)
        self.log_view.setPlaceholderText("The worker's log appears here.")
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.log_view.setFont(mono)
        splitter.addWidget(self.log_view)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([400, 110])
        layout.addWidget(splitter, 1)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setInterval(_REDRAW_MS)
        self._follow_timer = QTimer(self)
        self._follow_timer.setInterval(_FOLLOW_MS)

    @property
    def plots(self) -> dict[str, pg.PlotWidget]:
        """The plot widgets by key (``loss``, ``lr``, ``grad``, ``speed``, ``memory``)."""
        self.ensure_plots()
        return self._plots

    def ensure_plots(self) -> None:
        """Create the plot widgets if they do not exist yet (imports pyqtgraph the first time)."""
        if self._plots:
            return
        small = QFont()
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.8))
        for key, (object_name, title) in _PLOTS.items():
            plot = plotting.new_plot_widget(self._plot_area)
            plot.setObjectName(object_name)
            item = plot.getPlotItem()
            item.setTitle(title, size="9pt")
            if key == "loss":
                # Grid lines cost as much to paint as a 100,000-point curve: the loss plot only.
                item.showGrid(x=False, y=True, alpha=0.15)
            item.setClipToView(True)
            item.setDownsampling(auto=True, mode="peak")
            for axis in ("bottom", "left"):
                item.getAxis(axis).setStyle(tickFont=small, tickTextOffset=2)
                # Kept as a pixmap between range changes: a redraw of the curves then copies
                # the axis (and the loss plot's grid) instead of drawing its text again.
                item.getAxis(axis).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            if key == "loss":
                item.getAxis("bottom").setLabel("step")
            plot.setMinimumSize(120, 90)
            self._plots[key] = plot
        grid = self._plot_grid
        # The loss spans a third row too, which is empty (and takes no room) until a run
        # measures pass@1.
        grid.addWidget(self._plots["loss"], 0, 0, 3, 1)
        grid.addWidget(self._plots["lr"], 0, 1)
        grid.addWidget(self._plots["grad"], 0, 2)
        grid.addWidget(self._plots["speed"], 1, 1)
        grid.addWidget(self._plots["memory"], 1, 2)
        # Only runs whose recipe has an evaluation section measure pass@1: the plot appears
        # with its first point (see _show_pass_plot), under the small plots, as wide as they
        # are together, so the monitor grows no wider.
        grid.addWidget(self._plots["pass"], 2, 1, 1, 2)
        self._plots["pass"].hide()
        self._plots["pass"].getPlotItem().setYRange(0.0, 1.0, padding=0.05)
        self._plots["pass"].getPlotItem().enableAutoRange(y=False)
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        self._plots["loss"].getPlotItem().addLegend(offset=(-10, 10))
        # Top left: a model is usually weakest early, so the curve is low there.
        self._plots["pass"].getPlotItem().addLegend(offset=(10, 5))
        # Three ticks: a plot a third of the loss plot's height has no room for six labels.
        self._plots["pass"].getPlotItem().getAxis("left").setTicks(
            [[(0.0, "0"), (0.5, "0.5"), (1.0, "1")]]
        )
        import pyqtgraph as pg

        from codetune_studio.ui.live_range import RangeAnchor

        for plot_key, plot in self._plots.items():
            anchor = RangeAnchor()
            plot.getPlotItem().addItem(anchor)
            self._anchors[plot_key] = anchor
        for key, (plot_key, label, colour) in SERIES.items():
            # A line wider than one pixel goes through Qt's stroker, which cost the GUI thread
            # ten times as much per redraw on a noisy 5,000-step curve; the sparse series
            # (a few points with symbols) keep their thicker line.
            pen = pg.mkPen(colour, width=2 if key in _SPARSE else 1)
            symbol = "o" if key in _SPARSE else None
            curve = pg.PlotDataItem(
                [], [], pen=pen, name=label, symbol=symbol, symbolSize=5, symbolBrush=colour
            )
            # The plot's range follows its anchor, not every new point (ui/live_range.py).
            self._plots[plot_key].getPlotItem().addItem(curve, ignoreBounds=True)
            self._curves[key] = curve
        for key, (plot_key, label, _colour) in SERIES.items():
            marks = pg.ScatterPlotItem(
                symbol="x", size=11, pen=pg.mkPen(_NONFINITE_COLOUR, width=2), brush=None
            )
            marks.setToolTip(f"{label}: NaN or infinite at these steps")
            # Drawn within the curve's own bounds, which its plot's anchor already covers.
            self._plots[plot_key].getPlotItem().addItem(marks, ignoreBounds=True)
            self._nonfinite_marks[key] = marks
        # Whatever arrived before the plots existed is drawn at the next redraw.
        self.buffer.dirty.update(key for key in SERIES if self.buffer.count(key))

    def apply_palette(self) -> None:
        """Re-colour the plots after the system switched between light and dark."""
        for plot in self._plots.values():
            plotting.tint_plot(plot)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.apply_palette()

    def _connect_signals(self) -> None:
        self.stop_button.clicked.connect(self._on_stop_button_clicked)
        self.pause_button.clicked.connect(self._on_pause_button_clicked)
        self._redraw_timer.timeout.connect(self._on_redraw_timer_timeout)
        self._follow_timer.timeout.connect(self._on_follow_timer_timeout)
        self._redraw_timer.start()

    # --- public API ---------------------------------------------------------------------------

    def attach_run(self, run_id: int, name: str, *, hosted: bool) -> None:
        """Start showing a run, clearing what was shown before.

        Args:
            run_id: The run.
            name: Its display name.
            hosted: Whether the window hosts its worker (then Stop and Pause work and events
                arrive through :meth:`add_events`); otherwise its metrics are polled.
        """
        self._stop_following()
        self.run_id = run_id
        self._hosted = hosted
        self._live = True
        self._paused = False
        self._total_steps = 0
        self._step = 0
        self._rate_start = self._rate_last = None
        self.buffer.clear()
        for curve in self._curves.values():
            curve.setData([], [])
        for marks in self._nonfinite_marks.values():
            marks.setData([], [])
        self._series_bounds.clear()
        for anchor in self._anchors.values():
            anchor.set_bounds(None)
        self._show_pass_plot(visible=False)
        self.nonfinite_label.hide()
        self.log_view.clear()
        self.run_label.setText(f"Run {run_id} · {name}")
        self.progress.setRange(0, 0 if hosted else 1)
        self.progress.setValue(0)
        self.progress.setFormat("starting…" if hosted else "following…")
        self._set_controls(active=hosted)

    def follow_run(self, run: Run) -> None:
        """Follow a run from the database, polling its metrics until it ends.

        Args:
            run: The run, as listed by the experiment service.
        """
        self.attach_run(run.id, run.name, hosted=False)
        self._log_path = _local_log(run)
        self._log_offset = 0
        if self._log_path is None and run.output_dir:
            self.log_view.setPlainText(
                f"The worker's log is on {run.host} ({run.log_path or run.output_dir})."
            )
        self._total_steps = int(
            run.total_steps or run.recipe.get("training", {}).get("max_steps") or 0
        )
        self._update_progress(status=run.status)
        self._on_follow_timer_timeout()
        if not run.status.is_terminal:
            self._follow_timer.start()

    def add_events(self, events: Sequence[Event]) -> None:
        """Take a batch of events from the hosted run; the plots catch up at the next redraw."""
        for event in events:
            self._add_event(event)
        self._update_progress()

    def add_log_lines(self, lines: list[str]) -> None:
        """Append the worker's log lines."""
        self.log_view.appendPlainText("\n".join(lines))

    def run_ended(self, status: RunStatus, reason: str | None) -> None:
        """Show that the followed run ended."""
        self._set_controls(active=False)
        self._stop_following()
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        text = status.value.capitalize() if not reason else f"{status.value.capitalize()}: {reason}"
        self.progress.setFormat(_elide(text, 120))
        if status is RunStatus.FINISHED:
            self.progress.setValue(self.progress.maximum())
        self._stop_growing()

    def set_paused(self, paused: bool) -> None:
        """Reflect the run's pause state on the Pause/Resume button."""
        self._paused = paused
        self.pause_button.setText("Resume" if paused else "Pause")
        self._update_progress()

    @property
    def hosted(self) -> bool:
        """Whether the followed run is hosted by this window."""
        return self._hosted

    def point_count(self, key: str | None = None) -> int:
        """How many points the monitor holds (for one series, or all)."""
        return self.buffer.count(key)

    def shutdown(self) -> None:
        self._redraw_timer.stop()
        self._stop_following()

    # --- events and drawing -------------------------------------------------------------------

    def _add_event(self, event: Event) -> None:
        if isinstance(event, MetricsLogged):
            self._add_metrics(event)
        elif isinstance(event, EvalCompleted):
            self.buffer.add("eval_loss", event.step, event.eval_loss)
            self.add_log_lines(
                [
                    f"eval at step {event.step}: loss {event.eval_loss:.4f}, ppl {event.perplexity:.2f}"
                ]
            )
        elif isinstance(event, CodeEvalCompleted):
            # The engine logs the score with its timing; the curve is what is added here.
            value = event.metrics.get("eval_pass@1")
            if value is not None:
                self.buffer.add("eval_pass@1", event.step, value)
        elif isinstance(event, RunStarted):
            self._total_steps = event.total_steps
            self._step = max(self._step, event.resumed_from_step)
            self.progress.setRange(0, max(1, event.total_steps))
        elif isinstance(event, CheckpointSaved):
            self.add_log_lines([f"checkpoint saved at step {event.step}: {event.path}"])
        elif isinstance(event, LogRecorded):
            self.add_log_lines([f"{event.level} {event.message}"])
        elif isinstance(event, RunFinished):
            self._step = max(self._step, event.final_step)

    def _add_metrics(self, event: MetricsLogged) -> None:
        self._step = max(self._step, event.step)
        now = time.monotonic()
        if self._rate_start is None:
            self._rate_start = (now, event.step)
        self._rate_last = (now, event.step)
        for name, value in event.metrics.items():
            key = canonical_metric(name)
            if key in SERIES:
                self.buffer.add(key, event.step, value)

    def _on_redraw_timer_timeout(self) -> None:
        if not self.buffer.dirty:
            return
        self.ensure_plots()
        from codetune_studio.ui.live_range import finite_bounds

        if "eval_pass@1" in self.buffer.dirty:
            self._show_pass_plot(visible=True)
        for key in list(self.buffer.dirty):
            steps, values = self.buffer.series(key)
            # "finite" leaves a gap at a NaN or infinite value instead of dropping the point.
            self._curves[key].setData(steps, values, connect="finite")
            self._mark_nonfinite(key, steps, values)
            self._series_bounds[key] = finite_bounds(steps, values)
        self._update_ranges({SERIES[key][0] for key in self.buffer.dirty})
        self.buffer.dirty.clear()
        self.redraw_count += 1
        # Long runs redraw less often: a 100,000-point curve costs milliseconds per redraw. Four
        # redraws a second look live; each one repaints every plot and its axes (text), which was
        # most of the GUI thread's time while a fast run trained (benchmarks/compare_runs.py).
        interval = _REDRAW_MS if self.buffer.count("loss") < _MANY_POINTS else _SLOW_REDRAW_MS
        if self._redraw_timer.interval() != interval:
            self._redraw_timer.setInterval(interval)

    def _update_ranges(self, plot_keys: set[str]) -> None:
        """Move a plot's range only when its data no longer fits it (ui/live_range.py).

        An unchanged range keeps the axes' tick layout and labels: a redraw then repaints the
        curves alone, not the axes of every plot.
        """
        from codetune_studio.ui.live_range import X_HEADROOM, stable_bounds, union

        for plot_key in plot_keys & self._anchors.keys():
            anchor = self._anchors[plot_key]
            data = union(
                [
                    self._series_bounds.get(key)
                    for key, (series_plot, _label, _colour) in SERIES.items()
                    if series_plot == plot_key
                ]
            )
            if self._live:
                anchor.set_bounds(stable_bounds(anchor.bounds, data, x_headroom=X_HEADROOM))
            else:  # an ended run's curves fill their plots
                anchor.set_bounds(stable_bounds(None, data, x_headroom=0.0))

    def _stop_growing(self) -> None:
        """The run has ended: fit every plot to its data, without room to grow."""
        if self._live:
            self._live = False
            self._update_ranges(set(self._anchors))

    def _show_pass_plot(self, *, visible: bool) -> None:
        """Show the pass@1 plot for a run that measures it, else hide it."""
        plot = self._plots.get("pass")
        # isHidden, not isVisible: the panel itself may not be on screen yet.
        if plot is not None and plot.isHidden() == visible:
            plot.setVisible(visible)

    def _mark_nonfinite(
        self, key: str, steps: np.ndarray[Any, Any], values: np.ndarray[Any, Any]
    ) -> None:
        """Put a cross where a series is not finite, at the height of its last finite value."""
        import numpy as np

        finite = np.isfinite(values)
        if finite.all():
            self._nonfinite_marks[key].setData([], [])
            return
        # The height of the newest finite value at or before each point (the first finite
        # value for a series that starts non-finite; 0 for one that never was finite).
        seen = np.maximum.accumulate(np.where(finite, np.arange(len(values)), -1))
        fallback = values[finite][0] if finite.any() else 0.0
        heights = np.where(seen >= 0, values[np.maximum(seen, 0)], fallback)
        bad = ~finite
        self._nonfinite_marks[key].setData(steps[bad], heights[bad])
        step, value = steps[bad][-1], values[bad][-1]
        label = SERIES[key][1]
        text = f"{label[0].upper()}{label[1:]} is {value} at step {step:g}"
        if finite[: int(np.flatnonzero(bad)[-1])].any():
            last = int(np.flatnonzero(finite[: int(np.flatnonzero(bad)[-1])])[-1])
            text += f" (last finite value {values[last]:.4g} at step {steps[last]:g})"
        if key == "loss" or self.nonfinite_label.isHidden():
            self.nonfinite_label.setText(text + ".")
            self.nonfinite_label.show()

    def _update_progress(self, status: RunStatus | None = None) -> None:
        total = self._total_steps
        if total <= 0:
            if status is not None:
                self.progress.setRange(0, 1)
                self.progress.setFormat(f"{status.value.capitalize()} · step {self._step}")
            return
        self.progress.setRange(0, total)
        self.progress.setValue(min(self._step, total))
        parts = [f"Step {self._step} / {total}"]
        if self._paused:
            parts.append("paused")
        elif self._rate_start and self._rate_last and self._rate_last[1] > self._rate_start[1]:
            seconds = self._rate_last[0] - self._rate_start[0]
            rate = (self._rate_last[1] - self._rate_start[1]) / max(seconds, 1e-6)
            parts.append(f"{rate:.2f} steps/s")
            parts.append(f"ETA {format_duration((total - self._step) / rate)}")
        if status is not None and status.is_terminal:
            parts.append(status.value.capitalize())
        self.progress.setFormat(" · ".join(parts))

    def _set_controls(self, *, active: bool) -> None:
        self.stop_button.setEnabled(active)
        self.pause_button.setEnabled(active)
        if not active:
            self.pause_button.setText("Pause")

    # --- following a run from the database ----------------------------------------------------

    def _stop_following(self) -> None:
        self._follow_timer.stop()
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

    def _on_follow_timer_timeout(self) -> None:
        if self.run_id is None or self._hosted or (self._poll and not self._poll.done):
            return
        since = {key: self.buffer.last_step(key) for key in SERIES}
        self._poll = run_in_thread(
            _fetch_new_points,
            self._experiments,
            self.run_id,
            since,
            (self._log_path, self._log_offset),
            on_return=self._on_poll_returned,
        )

    @safe_slot()
    def _on_poll_returned(
        self,
        result: tuple[int, RunStatus, dict[str, list[MetricPoint]], tuple[int, list[str]]],
    ) -> None:
        run_id, status, points, (log_offset, log_lines) = result
        if run_id != self.run_id or self._hosted:
            return
        self._log_offset = log_offset
        if log_lines:
            self.log_view.appendPlainText("\n".join(log_lines))
        for key, series in points.items():
            for point in series:
                self.buffer.add(key, point.step, point.value)
                self._step = max(self._step, point.step)
        self._update_progress(status=status)
        if status.is_terminal:
            self._stop_growing()
            self._follow_timer.stop()
            self.run_status_changed.emit(run_id, status.value)

    # --- buttons ------------------------------------------------------------------------------

    def _on_stop_button_clicked(self) -> None:
        if self.run_id is not None and self._hosted:
            self.stop_button.setEnabled(False)
            self.progress.setFormat("stopping…")
            self.stop_requested.emit(self.run_id)

    def _on_pause_button_clicked(self) -> None:
        if self.run_id is None or not self._hosted:
            return
        if self._paused:
            self.resume_requested.emit(self.run_id)
        else:
            self.pause_requested.emit(self.run_id)


def _fetch_new_points(
    experiments: ExperimentService,
    run_id: int,
    since: dict[str, float | None],
    log: tuple[Path | None, int] = (None, 0),
) -> tuple[int, RunStatus, dict[str, list[MetricPoint]], tuple[int, list[str]]]:
    """Read a followed run's status and the metric points newer than what is shown.

    Two queries per poll whatever the run's length: its status, and the rows from the last step
    shown on. That step is read again because a batch may have stored its training loss before
    its evaluation; points already shown are skipped here.
    """
    status = experiments.get_run(run_id).status
    shown = [step for step in since.values() if step is not None]
    after = int(max(shown)) - 1 if shown else -1
    result: dict[str, list[MetricPoint]] = {}
    for point in experiments.metric_points_after(run_id, after):
        key = canonical_metric(point.name)
        if key not in SERIES:
            continue
        last = since.get(key)
        if last is None or point.step > last:
            result.setdefault(key, []).append(point)
    log_path, log_offset = log
    # The status was read first: a run that had ended by then has written its whole log, so
    # a last line without its newline is complete and shows.
    new_log = (
        read_log_increment(log_path, log_offset, final=status.is_terminal)
        if log_path
        else (log_offset, [])
    )
    return run_id, status, result, new_log


def _local_log(run: Run) -> Path | None:
    """A run's worker log, if it is readable on this machine."""
    candidates = [run.log_path] if run.log_path else []
    if run.output_dir:
        candidates.append(str(Path(run.output_dir) / LOG_FILE_NAME))
    return next((Path(c) for c in candidates if Path(c).is_file()), None)


def _elide(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
