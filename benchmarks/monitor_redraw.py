"""GUI-thread CPU of one monitor redraw while a run trains: new points, curves set, plots painted.

Feeds the real monitor panel (offscreen, 1600x480 like the bottom dock) a noisy run of five
series (loss, learning rate, grad norm, tokens/s, memory), then ``--ticks`` times adds
``--per-tick`` steps, runs the redraw and lets Qt paint, timing each tick with
``time.thread_time`` (the GUI thread's own CPU: a loaded machine barely moves it). Prints the
median, p90 and max per redraw. Compare two trees side by side, e.g. with
``PYTHONPATH=/path/to/other/app``.

Usage::

    .venv/bin/python benchmarks/monitor_redraw.py [--start 5000] [--per-tick 10] [--ticks 100]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=int, default=5000, help="steps shown before timing")
    parser.add_argument("--per-tick", type=int, default=10, help="new steps per redraw")
    parser.add_argument("--ticks", type=int, default=100)
    args = parser.parse_args()

    import codetune_studio
    from codetune_studio.core.events import MetricsLogged, RunStarted
    from codetune_studio.ui.app import create_application
    from codetune_studio.ui.panels.monitor import MonitorPanel

    app = create_application()
    from PySide6.QtWidgets import QMainWindow

    window = QMainWindow()
    panel = MonitorPanel(experiments=None)  # type: ignore[arg-type]  # hosted: no database
    panel.shutdown()  # the ticks below redraw, not the panel's timer
    window.setCentralWidget(panel)
    window.resize(1600, 480)
    window.show()
    panel.ensure_plots()
    panel.attach_run(1, "bench", hosted=True)
    panel.add_events([RunStarted(run_id=1, total_steps=1_000_000, output_dir=Path())])
    noise = random.Random(0)
    step = 0

    def feed(count: int) -> None:
        nonlocal step
        events = []
        for _ in range(count):
            step += 1
            events.append(
                MetricsLogged(
                    step,
                    {
                        "loss": 0.6 + 2.4 * math.exp(-step / 2000) + noise.gauss(0, 0.08),
                        "learning_rate": 2e-4 * min(1.0, step / 100),
                        "grad_norm": 1.0 + 0.4 * abs(noise.gauss(0, 1)),
                        "tokens_per_second": 11_000 + noise.gauss(0, 400),
                        "memory_mb": 820 + step * 0.02 + noise.gauss(0, 2),
                    },
                )
            )
        panel.add_events(events)

    def redraw() -> float:
        started = time.thread_time()
        panel._on_redraw_timer_timeout()  # the timer slot, driven here
        app.processEvents()  # the paint Qt posted
        app.processEvents()
        return (time.thread_time() - started) * 1000

    feed(args.start)
    for _ in range(3):
        redraw()
    costs = []
    for _ in range(args.ticks):
        feed(args.per_tick)
        costs.append(redraw())
    costs.sort()
    print(
        json.dumps(
            {
                "code": str(Path(codetune_studio.__file__).parent),
                "steps_at_end": step,
                "per_tick": args.per_tick,
                "redraw_gui_cpu_median_ms": round(statistics.median(costs), 2),
                "redraw_gui_cpu_p90_ms": round(costs[int(0.9 * (len(costs) - 1))], 2),
                "redraw_gui_cpu_max_ms": round(costs[-1], 2),
                "loadavg_1": round(os.getloadavg()[0], 2),
            },
            indent=2,
        )
    )
    window.close()


if __name__ == "__main__":
    main()
