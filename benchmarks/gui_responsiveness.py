"""How responsive the studio window stays while a run trains, and how fast it appears.

Measures, in one run:

* **Heartbeat lateness**: a 20 ms ``QTimer`` on the GUI thread records how late each tick fires
  while a real worker trains and the monitor holds 100,000 points per curve (p50, p99, max).
* **Time to window**: a fresh process that builds and shows the main window, against a fresh
  process that only runs ``import torch, transformers``.

Usage::

    .venv/bin/python benchmarks/gui_responsiveness.py [--seconds 30] [--points 100000]

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
    app = create_application()
    paths = resolve_paths(sys.argv[1]).ensure()
    opened = open_database(None, sqlite_path=paths.database_file, allow_fallback=False)
    services = StudioServices(ExperimentService(opened.database), paths, MemorySecretStore(), "x")
    window = MainWindow(services, SettingsStore(paths.settings_file))
    window.show()
    app.processEvents()
    print("SHOWN", "torch" in sys.modules, flush=True)
    """
)


def _timed(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, result.stdout


def time_to_window(data_dir: Path) -> dict[str, float | bool]:
    """Seconds until a fresh process shows the window, and until one imports the ML stack."""
    window_s, out = _timed([sys.executable, "-c", _WINDOW_SCRIPT, str(data_dir / "ttw")])
    import_s, _ = _timed([sys.executable, "-c", "import torch, transformers"])
    return {
        "window_s": round(window_s, 2),
        "import_torch_transformers_s": round(import_s, 2),
        "ratio": round(window_s / import_s, 2),
        "torch_imported_by_window": "True" in out,
    }


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
    params = window.parameters_panel
    params.set_dataset_path(str(resources_dir() / "datasets" / "python-instructions.jsonl"))
    params.apply_preset("quickstart")
    for key, value in {
        "training.max_steps": "100000",
        "training.per_device_train_batch_size": "4",
        "training.max_seq_length": "128",
        "training.eval_steps": "",
        "training.save_steps": "",
    }.items():
        params.field(key).set_value(value)
    params._revalidate()
    run_id = window.start_training()
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
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="codetune-bench-"))
    heartbeat = heartbeat_while_training(data_dir, args.seconds, args.points)
    startup = time_to_window(data_dir)
    print(json.dumps({"heartbeat": heartbeat, "startup": startup}, indent=2))


if __name__ == "__main__":
    main()
