"""How responsive the studio window stays while a run trains, and how fast it appears.

Measures, in one run:

* **Heartbeat lateness**: a 20 ms ``QTimer`` on the GUI thread records how late each tick fires
  while a real worker trains and the monitor holds 100,000 points per curve (p50, p99, max).
* **Time to window**: from the start of a fresh process until the main window's first frame is
  painted, against a fresh process that only runs ``import torch, transformers`` (medians of a
  few alternating runs). ``--baseline OTHER_CHECKOUT/app`` measures another checkout alongside,
  for a before/after figure from one run.

Usage::

    .venv/bin/python benchmarks/gui_responsiveness.py [--seconds 30] [--points 100000]
        [--repeats 3] [--baseline /path/to/other/checkout/app] [--startup-only]

The worker trains a tiny starter model (built once into the benchmark's data folder). The window
runs on the offscreen platform unless ``QT_QPA_PLATFORM`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEARTBEAT_MS = 20
ROOT = Path(__file__).resolve().parents[1]

_WINDOW_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from codetune_studio.ui.app import create_application
    from codetune_studio.core.paths import resolve_paths
    from codetune_studio.secrets import MemorySecretStore
    from codetune_studio.services.database import open_database
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.settings import SettingsStore
    from codetune_studio.ui.studio_services import StudioServices
    from codetune_studio.ui.main_window import MainWindow
    from PySide6.QtCore import QEvent, QObject, QTimer
    app = create_application()
    paths = resolve_paths(sys.argv[1]).ensure()
    opened = open_database(None, sqlite_path=paths.database_file, allow_fallback=False)
    services = StudioServices(ExperimentService(opened.database), paths, MemorySecretStore(), "x")
    window = MainWindow(services, SettingsStore(paths.settings_file))

    def ready():
        print("READY", time.time(), "torch" in sys.modules, flush=True)
        app.quit()

    def framed():
        # The first frame is painted; work queued behind it (deferred docks) runs next.
        print("FRAME", time.time(), flush=True)
        QTimer.singleShot(0, lambda: QTimer.singleShot(0, ready))

    class FirstPaint(QObject):
        seen = False
        def eventFilter(self, obj, event):
            if not self.seen and obj is window and event.type() == QEvent.Type.Paint:
                self.seen = True
                QTimer.singleShot(0, framed)  # runs once this paint pass has finished
            return False

    watcher = FirstPaint()
    app.installEventFilter(watcher)
    window.show()
    app.exec()
    """
)


def _window_times(data_dir: Path, app_dir: Path | None) -> tuple[float, float, bool]:
    """Seconds from process start to the first painted frame and to the docks being ready."""
    env = dict(os.environ)
    if app_dir is not None:  # measure another checkout's code (for a before/after comparison)
        env["PYTHONPATH"] = str(app_dir)
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", _WINDOW_SCRIPT, str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    stamps = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line}
    frame = float(stamps["FRAME"][0]) - started
    ready = float(stamps["READY"][0]) - started
    return frame, ready, stamps["READY"][1] == "True"


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def time_to_window(
    data_dir: Path, *, repeats: int = 3, baseline_app_dir: Path | None = None
) -> dict[str, object]:
    """Seconds until a fresh process paints the window, against one that imports the ML stack.

    The window's runs alternate with ``import torch, transformers`` so that both see the same
    machine load; each figure is the median of ``repeats`` fresh processes. The database is
    created by a first, unmeasured start, as after installation.

    Args:
        data_dir: A scratch folder.
        repeats: Fresh processes per figure.
        baseline_app_dir: Another checkout's ``app`` folder to measure alongside (before/after).

    Returns:
        The figures, with the ratio of first frame to the import.
    """
    variants: dict[str, Path | None] = {"current": None}
    if baseline_app_dir is not None:
        variants = {"baseline": baseline_app_dir, "current": None}
    frames: dict[str, list[float]] = {name: [] for name in variants}
    readies: dict[str, list[float]] = {name: [] for name in variants}
    imports: list[float] = []
    torch_seen = False
    for name, app_dir in variants.items():
        _window_times(data_dir / f"ttw-{name}", app_dir)  # creates the database
    for _ in range(repeats):
        for name, app_dir in variants.items():
            frame, ready, torch_loaded = _window_times(data_dir / f"ttw-{name}", app_dir)
            frames[name].append(frame)
            readies[name].append(ready)
            torch_seen = torch_seen or torch_loaded
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, transformers"], check=True)
        imports.append(time.perf_counter() - started)
    import_s = _median(imports)
    result: dict[str, object] = {"import_torch_transformers_s": import_s}
    for name in variants:
        frame_s = _median(frames[name])
        result[name] = {
            "first_frame_s": frame_s,
            "docks_ready_s": _median(readies[name]),
            "ratio": round(frame_s / import_s, 2),
        }
    result["torch_imported_by_window"] = torch_seen
    return result


def _ensure_tiny_starter(data_dir: Path) -> None:
    from codetune_studio.engine.starter import (
        STARTER_NAME,
        build_tiny_model_and_tokenizer,
        is_starter_cached,
    )

    if not is_starter_cached(data_dir):
        build_tiny_model_and_tokenizer(data_dir / "models" / STARTER_NAME, hidden=128, layers=2)


def heartbeat_while_training(data_dir: Path, seconds: float, points: int) -> dict[str, float]:
    """Heartbeat lateness on the GUI thread while a run trains and the monitor is full."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    from codetune_studio.core.events import MetricsLogged
    from codetune_studio.core.paths import resolve_paths
    from codetune_studio.secrets import MemorySecretStore
    from codetune_studio.services.database import open_database
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.settings import SettingsStore
    from codetune_studio.ui.app import create_application
    from codetune_studio.ui.main_window import CloseChoice, MainWindow
    from codetune_studio.ui.studio_services import StudioServices, resources_dir

    app = create_application()
    paths = resolve_paths(data_dir).ensure()
    _ensure_tiny_starter(paths.data_dir)
    opened = open_database(None, sqlite_path=paths.database_file, allow_fallback=False)
    services = StudioServices(
        ExperimentService(opened.database), paths, MemorySecretStore(), "bench", offline=True
    )
    window = MainWindow(services, SettingsStore(paths.settings_file), stop_grace_s=30)
    window.ask_close_choice = lambda: CloseChoice.STOP
    window.show()
    # The recipe comes from the quickstart preset directly, not through the form, so the figure
    # measures the window under load rather than the form's state.
    from codetune_studio.core.recipe import load_recipe

    preset = load_recipe(resources_dir() / "recipes" / "quickstart.yaml")
    recipe = preset.model_copy(
        update={
            "training": preset.training.model_copy(
                update={
                    "max_steps": 100_000,
                    "per_device_train_batch_size": 4,
                    "max_seq_length": 128,
                    "eval_steps": None,
                    "save_steps": None,
                }
            )
        }
    )
    # Measure a started window: the plots are built right after the first frame.
    shown: list[bool] = []
    window.first_frame_shown.connect(lambda: shown.append(True))
    while not shown:
        app.processEvents()
    run_id = window.start_training(recipe)
    monitor = window.monitor_panel
    # Fill the monitor before the worker's own points arrive: 100,000 points per curve.
    batch = [
        MetricsLogged(
            -points + i, {"loss": 5.0 / (1 + i / 1000), "learning_rate": 1e-3, "grad_norm": 1.0}
        )
        for i in range(points)
    ]
    monitor.add_events(batch)

    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def beat() -> None:
        now = clock.nsecsElapsed()
        lateness.append(max(0.0, (now - last[0]) / 1e6 - HEARTBEAT_MS))
        last[0] = now

    timer = QTimer()
    timer.setInterval(HEARTBEAT_MS)
    timer.timeout.connect(beat)
    timer.start()
    QTimer.singleShot(int(seconds * 1000), app.quit)
    app.exec()
    timer.stop()
    real_points = monitor.point_count("loss") - points
    window.close()
    opened.close()
    ordered = sorted(lateness)
    return {
        "run_id": run_id,
        "seconds": seconds,
        "beats": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2),
        "max_ms": round(ordered[-1], 2),
        "monitor_points_per_curve": points + real_points,
        "worker_steps_seen": real_points,
        "redraws": monitor.redraw_count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per start figure")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout's app/ folder whose start is measured alongside (before/after)",
    )
    parser.add_argument("--startup-only", action="store_true", help="skip the heartbeat part")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="codetune-bench-"))
    heartbeat = (
        None if args.startup_only else heartbeat_while_training(data_dir, args.seconds, args.points)
    )
    startup = time_to_window(data_dir, repeats=args.repeats, baseline_app_dir=args.baseline)
    print(json.dumps({"heartbeat": heartbeat, "startup": startup}, indent=2))


if __name__ == "__main__":
    main()
