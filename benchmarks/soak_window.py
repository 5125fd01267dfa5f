"""Release soak: the real studio window trains the quickstart recipe for several minutes.

``make soak`` runs this under Xvfb. It starts the studio exactly as ``codetune-studio`` does (the
same command-line entry point, database, worker process and window), then drives the window
through its own controls, as a user would: choose *python-instructions* in Datasets, apply the
*quickstart* preset, and press Train (the window's Train action, Ctrl+Return); when a run
finishes it presses Train again, so the monitor repaints live curves for the whole soak. At the
end it takes a screenshot of the X display, stops the run with the window's Stop action, closes
the window, and exits 0 only if every run trained to its end (or to Stop) and the window
survived.

A window that dies (``Fatal Python error: none_dealloc`` from a broken PySide6, a segfault, an
abort) ends this process with a non-zero status, which is what fails ``make soak``.

Usage::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/soak_window.py \\
        [--minutes 5] [--shots shots/soak] [--data-dir shots/soak/data]

The first run builds the starter model (about 3.5 minutes); the minutes count from the first
training step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from codetune_studio.core.status import RunStatus
from codetune_studio.ui.app import create_application
from codetune_studio.ui.studio_services import resources_dir

if TYPE_CHECKING:
    from codetune_studio.ui.main_window import MainWindow

TICK_MS = 5000
#: How long the worker may take to build the starter model and take its first step.
FIRST_STEP_BUDGET_S = 900


@dataclass
class Soak:
    """The soak's state machine, driven by a timer on the GUI thread."""

    minutes: float
    shots: Path
    started: float = field(default_factory=time.monotonic)
    window: MainWindow | None = None
    run_id: int | None = None
    first_step_at: float | None = None
    outcome: Any = None
    problems: list[str] = field(default_factory=list)
    runs: int = 0
    screenshot: Path | None = None

    def log(self, message: str) -> None:
        """One line on stdout, with the seconds since the start."""
        sys.stdout.write(f"[soak {time.monotonic() - self.started:7.1f}s] {message}\n")
        sys.stdout.flush()

    def tick(self) -> None:
        """Advance: find the window, start the run, watch it, finish."""
        if self.window is None:
            self._find_window()
            return
        if self.run_id is None:
            self._start_run()
            return
        self._watch()

    def _find_window(self) -> None:
        from codetune_studio.ui.main_window import MainWindow

        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.isVisible():
                self.window = widget
                widget.run_ended.connect(self._on_run_ended)
                self.log("window is up")
                return
        if time.monotonic() - self.started > 120:
            self._fail("the studio window did not appear within two minutes")

    def _start_run(self) -> None:
        window = self.window
        assert window is not None
        sample = str(resources_dir() / "datasets" / "python-instructions.jsonl")
        if not window.datasets_panel.select_path(sample):
            window.add_dataset(sample)
            return  # listed at a later tick
        window.datasets_panel.use_button.click()
        params = window.parameters_panel
        if not params.apply_preset("quickstart"):
            self._fail("the quickstart preset is missing")
            return
        params.set_model("starter")
        if not params.is_valid:
            self._fail(f"the quickstart parameters are not valid: {params.errors}")
            return
        self._press_train()

    def _press_train(self) -> None:
        window = self.window
        assert window is not None
        window.train_action.trigger()
        if not window.active_controllers:
            self._fail("pressing Train started no run")
            return
        self.run_id = window.monitor_panel.run_id
        self.runs += 1
        self.log(f"run {self.run_id} started (quickstart preset, python-instructions)")

    def _watch(self) -> None:
        window = self.window
        assert window is not None
        points = window.monitor_panel.point_count("loss")
        if self.outcome is not None:
            if self.outcome.status is not RunStatus.FINISHED or self.first_step_at is None:
                self._fail(
                    f"the run ended early: {self.outcome.status.value} {self.outcome.reason}"
                )
                return
            # The quickstart recipe is short: train it again until the soak is over.
            self.log(f"run {self.run_id} finished; pressing Train again")
            self.outcome = None
            self._press_train()
            return
        now = time.monotonic()
        if self.first_step_at is None:
            if points:
                self.first_step_at = now
                self.log("first training step: the soak clock starts")
            elif now - self.started > FIRST_STEP_BUDGET_S:
                self._fail("no training step within 15 minutes")
            return
        trained = now - self.first_step_at
        self.log(
            f"{trained / 60:4.1f} min trained, {points} loss points, "
            f"{window.monitor_panel.redraw_count} redraws, progress "
            f"'{window.monitor_panel.progress.text()}'"
        )
        if trained >= self.minutes * 60:
            self._finish()

    def _finish(self) -> None:
        window = self.window
        assert window is not None
        self.screenshot = take_screenshot(self.shots, window)
        self.log(f"screenshot: {self.screenshot}")
        self._stop_timer()
        window.ask_close_choice = _stop_on_close
        window.stop_action.trigger()
        QTimer.singleShot(0, self._close_when_stopped)

    def _close_when_stopped(self) -> None:
        window = self.window
        assert window is not None
        if window.active_controllers:
            QTimer.singleShot(500, self._close_when_stopped)
            return
        status = self.outcome.status if self.outcome is not None else None
        self.log(f"run stopped ({status.value if status else 'no outcome'}); closing the window")
        if status not in (RunStatus.CANCELLED, RunStatus.FINISHED):
            self.problems.append(f"the run ended {status} after Stop, not CANCELLED")
        window.close()

    def _on_run_ended(self, outcome: Any) -> None:
        self.outcome = outcome

    def _fail(self, problem: str) -> None:
        self.problems.append(problem)
        self.log(f"FAILED: {problem}")
        if self.window is not None:
            self.screenshot = take_screenshot(self.shots, self.window)
            self.window.ask_close_choice = _stop_on_close
            self._stop_timer()
            self.window.close()
        else:
            self._stop_timer()
            QApplication.exit(1)

    timer: QTimer | None = None

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.stop()


def _stop_on_close() -> str:
    from codetune_studio.ui.main_window import CloseChoice

    return CloseChoice.STOP


def take_screenshot(folder: Path, window: MainWindow) -> Path:
    """The X display as a PNG (``import`` from ImageMagick), else the window's own grab."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.png"
    tool = shutil.which("import")
    if tool and os.environ.get("DISPLAY"):
        QApplication.processEvents()
        done = subprocess.run([tool, "-window", "root", str(path)], check=False, timeout=60)
        if done.returncode == 0 and path.is_file():
            return path
    window.grab().save(str(path))
    return path


def main() -> int:
    """Run the soak; 0 when the window trained for the whole time and closed cleanly."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--shots", type=Path, default=Path("shots/soak"))
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or args.shots / "data"

    create_application()  # the studio's own start-up reuses it
    soak = Soak(minutes=args.minutes, shots=args.shots)
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(soak.tick)
    timer.start()
    soak.timer = timer
    soak.log(f"starting the studio (data in {data_dir}, {args.minutes} minutes of training)")

    from codetune_studio.cli import main as studio_main

    status = studio_main(["--data-dir", str(data_dir), "--offline"])
    timer.stop()
    if status != 0:
        soak.problems.append(f"the studio exited with status {status}")
    if soak.screenshot is None:
        soak.problems.append("no screenshot was taken")
    for problem in soak.problems:
        sys.stderr.write(f"soak failed: {problem}\n")
    if not soak.problems:
        soak.log(
            f"passed: the window trained for {args.minutes} minutes ({soak.runs} runs); "
            f"see {soak.screenshot}"
        )
    return 1 if soak.problems else 0


if __name__ == "__main__":
    sys.exit(main())
