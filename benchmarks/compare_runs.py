"""Comparing many long runs while one trains, and what following a run costs per poll.

Measures, in one process:

* **Comparison under load**: 100 recorded runs of 5,000 steps each (loss, tokens and epoch per
  step) are compared in the window while a real worker trains; a 20 ms ``QTimer`` on the GUI
  thread records how late each tick fires while the comparison loads and redraws by step, tokens
  seen and epoch (p50, p99, max), and how long until every curve is drawn. Those wall-clock
  figures move with whatever else the machine runs, so it also reports figures a loaded machine
  barely moves: the GUI thread's CPU time between two beats (``time.thread_time``), the GUI
  thread's total CPU, the longest single handler or plot paint of the comparison dialog itself
  (``dialog_gui_cpu``), and the load average at the start and the end.
* **Following a run, per poll**: the database statements and rows one poll of a followed run
  costs, the way the monitor polled before (every whole curve again) and now (only the points
  after the last step shown), at the end of a 5,000-step run with 10 new steps per poll.

Usage::

    .venv/bin/python benchmarks/compare_runs.py [--runs 100] [--points 5000] [--seconds 20]
        [--database URL] [--no-training] [--data-dir DIR --reuse]

The worker trains a tiny starter model (built once into the benchmark's data folder).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEARTBEAT_MS = 20
_ROWS_PER_BATCH = 20_000


def _populate(experiments: Any, runs: int, points: int) -> list[int]:
    from codetune_studio.core.models import MetricPoint
    from codetune_studio.core.status import RunStatus

    ids = []
    for index in range(runs):
        recipe = {
            "model": "starter",
            "dataset": {"path": "bench.jsonl"},
            "training": {"learning_rate": 1e-4 * (1 + index % 5), "seed": index},
        }
        run = experiments.create_run(f"bench-{index}", recipe)
        experiments.start_run(run.id, pid=1, total_steps=points)
        batch: list[MetricPoint] = []
        for step in range(1, points + 1):
            loss = 0.5 + 2.0 / (1 + step * (1 + index % 5) / 500)
            batch += [
                MetricPoint(step, "loss", loss, 0.0),
                MetricPoint(step, "tokens", 512.0 * (1 + index % 3), 0.0),
                MetricPoint(step, "epoch", step / 1000, 0.0),
            ]
            if len(batch) >= _ROWS_PER_BATCH:
                experiments.record_metrics(run.id, batch)
                batch = []
        experiments.record_metrics(run.id, batch)
        experiments.finish_run(run.id, RunStatus.FINISHED)
        ids.append(run.id)
    return ids


def _old_poll(experiments: Any, run_id: int, since: dict[str, float | None]) -> int:
    """The monitor's poll before: status, metric names, then every whole curve; rows read."""
    rows = 1
    experiments.get_run(run_id)
    names = experiments.metric_names(run_id)
    rows += len(names)
    for name in names:
        curve = experiments.metric_curve(run_id, name)
        rows += len(curve)
        last = since.get(name)
        _ = [p for p in curve if last is None or p.step > last]
    return rows


def _new_poll(experiments: Any, run_id: int, since: dict[str, float | None]) -> int:
    """The monitor's poll now (``ui.panels.monitor._fetch_new_points``); rows read."""
    experiments.get_run(run_id)
    shown = [step for step in since.values() if step is not None]
    after = int(max(shown)) - 1 if shown else -1
    return 1 + len(experiments.metric_points_after(run_id, after))


def follow_cost(database: Any, experiments: Any, points: int) -> dict[str, Any]:
    """Statements and rows of one poll of a followed 5,000-step run, before and after."""
    from sqlalchemy import event

    from codetune_studio.core.models import MetricPoint
    from codetune_studio.core.status import RunStatus

    run = experiments.create_run("followed", {"model": "starter", "dataset": {"path": "x"}})
    experiments.start_run(run.id, pid=1, total_steps=points)
    names = ("loss", "learning_rate", "grad_norm", "tokens_per_second", "eval_loss")
    experiments.record_metrics(
        run.id, [MetricPoint(s, n, 1.0, 0.0) for s in range(1, points - 9) for n in names]
    )
    since: dict[str, float | None] = dict.fromkeys(names, float(points - 10))
    experiments.record_metrics(
        run.id, [MetricPoint(s, n, 1.0, 0.0) for s in range(points - 9, points + 1) for n in names]
    )
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    result: dict[str, Any] = {}
    for label, poll in (("before", _old_poll), ("after", _new_poll)):
        statements.clear()
        event.listen(database.engine, "before_cursor_execute", count)
        started = time.perf_counter()
        rows = poll(experiments, run.id, since)
        elapsed = time.perf_counter() - started
        event.remove(database.engine, "before_cursor_execute", count)
        result[label] = {
            "queries": sum(1 for s in statements if s.lstrip().upper().startswith("SELECT")),
            "rows": rows,
            "ms": round(elapsed * 1000, 1),
        }
    result["run_steps"] = points
    result["metrics"] = len(names)
    result["new_steps_per_poll"] = 10
    # Ended, or the window would follow it as a live run and plot it while the comparison runs.
    experiments.finish_run(run.id, RunStatus.FINISHED)
    return result


def compare_under_load(
    services: Any, run_ids: list[int], seconds: float, *, train: bool
) -> dict[str, Any]:
    """Heartbeat lateness and GUI-thread CPU while a comparison of ``run_ids`` loads and redraws.

    Wall-clock lateness depends on everything else the machine runs; the GUI thread's own CPU
    time (``time.thread_time``) between two beats does not, so the longest such slice says how
    long the window's own work held the event loop, however loaded the machine is.
    """
    from PySide6.QtCore import QElapsedTimer, QTimer

    from codetune_studio.settings import SettingsStore
    from codetune_studio.ui.app import create_application
    from codetune_studio.ui.main_window import CloseChoice, MainWindow

    app = create_application()
    window = MainWindow(services, SettingsStore(services.paths.settings_file), stop_grace_s=30)
    window.ask_close_choice = lambda: CloseChoice.STOP
    window.show()
    shown: list[bool] = []
    window.first_frame_shown.connect(lambda: shown.append(True))
    _wait_until(app, lambda: bool(shown))
    if train:
        window.start_training(_training_recipe())
        _wait(app, 8.0)  # past the worker's imports, into training
    else:
        _wait(app, 3.0)  # past the deferred start-up work (the monitor's plots)
    lateness: list[float] = []
    slices: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed(), time.thread_time()]

    def beat() -> None:
        now, cpu = clock.nsecsElapsed(), time.thread_time()
        lateness.append(max(0.0, (now - last[0]) / 1e6 - HEARTBEAT_MS))
        slices.append((cpu - last[1]) * 1000)
        last[0], last[1] = now, cpu

    timer = QTimer()
    timer.setInterval(HEARTBEAT_MS)
    timer.timeout.connect(beat)
    timer.start()
    meter = _DialogSlices()
    meter.install()
    gui_cpu_start, process_cpu_start = time.thread_time(), time.process_time()
    started = time.perf_counter()
    dialog = window.compare_runs(run_ids)
    _wait_until(app, lambda: dialog.comparison is not None and bool(dialog.curves))
    loaded_s = time.perf_counter() - started
    _wait_until(app, lambda: len(dialog.plotted_runs()) == len(run_ids))
    drawn_s = time.perf_counter() - started
    gui_cpu_drawn = time.thread_time() - gui_cpu_start
    for axis in ("tokens", "epoch", "step"):
        dialog.axis_combo.setCurrentText(axis)
        _wait(app, 1.0)
    plotted = len(dialog.plotted_runs())
    gui_cpu_axes = time.thread_time() - gui_cpu_start - gui_cpu_drawn
    QTimer.singleShot(int(seconds * 1000), app.quit)
    app.exec()
    timer.stop()
    meter.uninstall()
    gui_cpu = time.thread_time() - gui_cpu_start
    process_cpu = time.process_time() - process_cpu_start
    window.close()
    ordered = sorted(lateness)
    ordered_slices = sorted(slices)
    return {
        "runs": len(run_ids),
        "plotted_runs": plotted,
        "training": train,
        "loaded_s": round(loaded_s, 2),
        "loaded_and_drawn_s": round(drawn_s, 2),
        "beats": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(_percentile(ordered, 0.99), 2),
        "max_ms": round(ordered[-1], 2),
        # Load-insensitive: the GUI thread's own CPU time.
        "gui_cpu_between_beats_p99_ms": round(_percentile(ordered_slices, 0.99), 2),
        "gui_cpu_between_beats_max_ms": round(ordered_slices[-1], 2),
        "gui_cpu_until_drawn_s": round(gui_cpu_drawn, 3),
        "gui_cpu_three_axis_switches_s": round(gui_cpu_axes, 3),
        "gui_cpu_total_s": round(gui_cpu, 3),
        "process_cpu_total_s": round(process_cpu, 3),
        # Load-insensitive and the comparison's own: each handler or plot paint of the dialog.
        "dialog_gui_cpu": meter.summary(),
    }


class _DialogSlices:
    """GUI-thread CPU of the comparison dialog's own work, one figure per handler call or paint.

    Wraps, for the measurement only, the dialog's slots (``_on_*``), its drawing steps and its
    window's repaints (tables and plot: Qt's ``UpdateRequest``), timing each outermost call with
    ``time.thread_time``: the rest of the window (the monitor following the training run) does not
    count, and neither does time spent waiting for a CPU or for the GIL.
    """

    def __init__(self) -> None:
        self.slices: dict[str, list[float]] = {}
        self._depth = 0
        self._undo: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        from PySide6.QtCore import QEvent
        from PySide6.QtWidgets import QDialog

        from codetune_studio.ui.compare_dialog import CompareDialog

        for name in vars(CompareDialog):
            if name.startswith("_on_") or name in ("_redraw", "_draw_some"):
                self._wrap(CompareDialog, name, name, lambda *_args: True)
        repaint = QEvent.Type.UpdateRequest
        # The dialog inherits event(); give it its own, so the wrapper can be set and removed.
        self._undo.append((CompareDialog, "event", CompareDialog.__dict__.get("event")))
        setattr(CompareDialog, "event", QDialog.event)  # noqa: B010
        self._wrap(CompareDialog, "event", "repaint", lambda _self, ev: ev.type() == repaint)

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    def _wrap(self, owner: Any, name: str, label: str, counts: Any) -> None:
        original = getattr(owner, name)
        meter = self

        def timed(this: Any, *args: Any, **kwargs: Any) -> Any:
            if meter._depth or not counts(this, *args):
                return original(this, *args, **kwargs)
            meter._depth += 1
            started = time.thread_time()
            try:
                return original(this, *args, **kwargs)
            finally:
                meter._depth -= 1
                meter.slices.setdefault(label, []).append(time.thread_time() - started)

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def summary(self) -> dict[str, Any]:
        every = [value for values in self.slices.values() for value in values]
        return {
            "longest_slice_ms": round(max(every, default=0.0) * 1000, 1),
            "total_cpu_s": round(sum(every), 3),
            "calls": len(every),
            "by_kind": {
                label: {
                    "calls": len(values),
                    "max_ms": round(max(values) * 1000, 1),
                    "total_ms": round(sum(values) * 1000, 1),
                }
                for label, values in sorted(self.slices.items())
            },
        }


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[int(fraction * (len(ordered) - 1))]


def _end_leftover_runs(experiments: Any, runs: list[Any]) -> None:
    """End runs earlier calls left RUNNING (a killed call's training, an old follow run).

    The window follows the newest RUNNING run at start-up; a leftover one would be plotted by
    the monitor during the measurement and count against the comparison.
    """
    from codetune_studio.core.status import RunStatus

    for run in runs:
        if run.status == RunStatus.RUNNING:
            experiments.finish_run(run.id, RunStatus.FAILED, error="left over by a benchmark")


def _ensure_tiny_starter(data_dir: Path) -> None:
    # As in gui_responsiveness.py: a small starter model, so the worker trains at once.
    from codetune_studio.engine.starter import (
        STARTER_NAME,
        build_tiny_model_and_tokenizer,
        is_starter_cached,
    )

    if not is_starter_cached(data_dir):
        build_tiny_model_and_tokenizer(data_dir / "models" / STARTER_NAME, hidden=128, layers=2)


def _wait(app: Any, seconds: float) -> None:
    end = time.perf_counter() + seconds
    _wait_until(app, lambda: time.perf_counter() >= end)


def _wait_until(app: Any, done: Any) -> None:
    # Sleeping between turns, so the waiting itself adds no GUI-thread CPU to the figures.
    while not done():
        app.processEvents()
        time.sleep(0.005)


def _training_recipe() -> Any:
    from codetune_studio.core.recipe import load_recipe
    from codetune_studio.ui.studio_services import resources_dir

    preset = load_recipe(resources_dir() / "recipes" / "quickstart.yaml")
    training = preset.training.model_copy(
        update={
            "max_steps": 100_000,
            "per_device_train_batch_size": 4,
            "max_seq_length": 128,
            "eval_steps": None,
            "save_steps": None,
        }
    )
    return preset.model_copy(update={"training": training})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0, help="heartbeat after loading")
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--no-training", action="store_true", help="compare with no run training")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the runs a previous call left in --data-dir"
    )
    args = parser.parse_args()

    from codetune_studio.core.paths import resolve_paths
    from codetune_studio.secrets import MemorySecretStore
    from codetune_studio.services.database import open_database
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.ui.studio_services import StudioServices

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="codetune-compare-bench-"))
    paths = resolve_paths(data_dir).ensure()
    if not args.no_training:
        _ensure_tiny_starter(paths.data_dir)
    opened = open_database(args.database, sqlite_path=paths.database_file, allow_fallback=False)
    experiments = ExperimentService(opened.database)
    started = time.perf_counter()
    stored = experiments.list_runs(limit=None)
    existing = [r.id for r in stored if r.name.startswith("bench-")]
    _end_leftover_runs(experiments, stored)
    if args.reuse and len(existing) >= args.runs:
        run_ids = sorted(existing)[: args.runs]
    else:
        run_ids = _populate(experiments, args.runs, args.points)
    populate_s = round(time.perf_counter() - started, 1)
    follow = follow_cost(opened.database, experiments, args.points)
    services = StudioServices(
        experiments,
        paths,
        MemorySecretStore(),
        "bench",
        database_url=opened.database.connection_url if args.database else None,
        offline=True,
    )
    load_start = os.getloadavg()
    compare = compare_under_load(services, run_ids, args.seconds, train=not args.no_training)
    load_end = os.getloadavg()
    opened.close()
    print(
        json.dumps(
            {
                "dialect": opened.database.dialect,
                "cpus": os.cpu_count(),
                "loadavg_1_5_15_start": [round(x, 2) for x in load_start],
                "loadavg_1_5_15_end": [round(x, 2) for x in load_end],
                "populate_s": populate_s,
                "compare": compare,
                "follow_poll": follow,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
