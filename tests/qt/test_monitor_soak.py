"""Soak test: the real monitor panel, legend and symbols included, repainted thousands of times.

PySide6-Essentials 6.12.0 on Python 3.11 lowers ``None``'s reference count by one on every
``QPainter`` method that returns nothing, so a window that paints through Python (pyqtgraph's
legend, curves with symbols, axes) dies with ``Fatal Python error: none_dealloc`` a few minutes
into a run. Nothing else in the suite paints long enough to notice. This test paints the way a
run does, watches ``sys.getrefcount(None)``, and fails (long before ``None`` could be freed and
the process abort) as soon as the count falls instead of staying level or growing.

On Python 3.12+ ``None`` is immortal and its count constant, so the test passes there whatever
PySide6 does; CI runs Python 3.11, where it bites.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from codetune_studio.core.events import EvalCompleted, MetricsLogged, RunStarted
from codetune_studio.ui.panels.monitor import MonitorPanel

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.services.experiments import ExperimentService

#: Repaints of the loss plot (legend, two curves, eval symbols, grid) in all: about 4 ms each on
#: an idle CI core, so the test costs seconds, not minutes.
REPAINTS = 2000
#: Every this many repaints the whole panel (all five plots) is painted instead.
WHOLE_PANEL_EVERY = 100
#: New data reaches the curves every this many steps, as the 100 ms redraw timer coalesces them.
REDRAW_EVERY = 5
#: How far ``None``'s count may fall below its starting value. A healthy paint leaves it level
#: (give or take the ``None`` held by objects created meanwhile); on 6.12.0 one repaint of the
#: loss plot alone takes hundreds of references, so thousands of repaints lose hundreds of
#: thousands. Failing at this margin stops the test long before ``None`` reaches zero.
ALLOWED_DROP = 5_000


def _metrics(step: int) -> MetricsLogged:
    return MetricsLogged(
        step,
        {
            "loss": 3.0 * math.exp(-step / 800) + 0.05 * math.sin(step / 7),
            "learning_rate": 2e-4 * min(1.0, step / 100),
            "grad_norm": 1.0 + 0.3 * math.cos(step / 11),
            "tokens_per_second": 12_000 + 500 * math.sin(step / 13),
            "memory_mb": 700 + step / 100,
        },
    )


def test_thousands_of_monitor_repaints_keep_none_referenced(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path
) -> None:
    panel = MonitorPanel(experiments)
    qtbot.addWidget(panel)
    panel.resize(640, 400)  # small: the paint calls, not the pixels, are what is tested
    panel.show()
    panel.attach_run(1, "soak", hosted=True)
    panel.add_events([RunStarted(run_id=1, total_steps=REPAINTS, output_dir=tmp_path)])
    loss_plot = panel.plots["loss"]
    legend = loss_plot.getPlotItem().legend
    assert legend is not None
    assert len(legend.items) == 2  # train loss and eval loss (with its symbols)

    start = sys.getrefcount(None)
    lowest = start
    for step in range(1, REPAINTS + 1):
        events: list[Any] = [_metrics(step)]
        if step % 25 == 0:
            eval_loss = 2.0 * math.exp(-step / 900)
            events.append(EvalCompleted(step=step, eval_loss=eval_loss, perplexity=7.0))
        panel.add_events(events)
        if step % REDRAW_EVERY == 0:
            panel._on_redraw_timer_timeout()  # what the redraw timer does during a run
        image = loss_plot.grab() if step % WHOLE_PANEL_EVERY else panel.grab()
        assert not image.isNull()
        lowest = min(lowest, sys.getrefcount(None))
        assert start - lowest <= ALLOWED_DROP, (
            f"None lost {start - lowest} references in {step} repaints of the monitor: a C "
            "extension (PySide6-Essentials 6.12.0 is known to) decrefs None on void calls, and "
            "the window would die with 'none_dealloc'. Install the locked versions (make setup)."
        )
    assert panel.point_count("loss") == REPAINTS
    assert panel.point_count("eval_loss") == REPAINTS // 25
    panel.shutdown()
