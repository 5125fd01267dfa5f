"""Hosting runs for the window: start, stop, pause, resume and the close protocol.

Taken out of ``MainWindow`` so the window only wires it to its panels: the coordinator owns the
:class:`~codetune_studio.ui.run_host.RunController` of every run this window started, relays their
events and log lines with the run id, and decides what closing the window does to them.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEventLoop, QObject, QTimer, Signal

from codetune_studio.core.errors import ConfigError, TrainingError
from codetune_studio.services.training import RECIPE_SNAPSHOT
from codetune_studio.ui.run_host import RunController, RunHost, RunOutcome
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.core.events import Event
    from codetune_studio.core.models import Run
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.services.training import PlannedRun
    from codetune_studio.ui.studio_services import StudioServices

__all__ = ["CloseChoice", "RunCoordinator"]

logger = logging.getLogger(__name__)


class CloseChoice:
    """What to do with a running run when the window closes."""

    LEAVE = "leave"
    STOP = "stop"
    CANCEL = "cancel"


class RunCoordinator(QObject):
    """Starts runs in worker processes and keeps their controllers.

    Args:
        services: The studio's services (training planner, worker launch, database URL).
        parent: The Qt parent (the window).
        stop_grace_s: How long a stopping worker gets before it is terminated.
    """

    run_started = Signal(int)
    run_ended = Signal(object)  # RunOutcome
    events_received = Signal(int, list)  # run id, list[Event]
    log_received = Signal(int, list)  # run id, list[str]
    active_changed = Signal()

    def __init__(
        self, services: StudioServices, parent: QObject | None = None, *, stop_grace_s: float = 30.0
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.stop_grace_s = stop_grace_s
        self.controllers: dict[int, RunController] = {}
        self._planning = False

    @property
    def active_controllers(self) -> list[RunController]:
        """Hosted runs that have not ended."""
        return [c for c in self.controllers.values() if c.running]

    def is_hosted(self, run_id: int) -> bool:
        """Whether this window hosts the run's worker and it still runs."""
        controller = self.controllers.get(run_id)
        return controller is not None and controller.running

    def start(
        self,
        recipe: TrainingRecipe | None,
        *,
        resume: Run | None = None,
        parent_run_id: int | None = None,
    ) -> Run:
        """Plan a run of ``recipe`` and start its worker.

        Args:
            recipe: What to train (``None``: the form has errors).
            resume: A run whose last checkpoint the new run continues from.
            parent_run_id: The run this one was cloned from, recorded for its lineage.

        Returns:
            The new run.

        Raises:
            ConfigError: If there is no valid recipe.
            TrainingError: If a run is already training, or there is nothing to resume.
        """
        if self.active_controllers or self._planning:
            raise TrainingError("A run is training already; stop it before starting another.")
        if recipe is None:
            raise ConfigError("The parameters have errors; fix the fields marked in red first.")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        name = recipe.name or f"{_slug(Path(recipe.dataset.path).stem)}-{stamp}"
        planned = self._plan_off_gui_thread(
            recipe,
            name=name,
            resume=str(resume.id) if resume is not None else None,
            parent_run_id=parent_run_id,
        )
        run, output_dir = planned.run, planned.output_dir
        launch = self.services.worker_launch(
            recipe_file=output_dir / RECIPE_SNAPSHOT,
            run_id=run.id,
            output_dir=output_dir,
            data_dir=self.services.paths.data_dir,
            database_url=self.services.database_url,
            resume_from=planned.resume_from,
            online=not self.services.offline,
        )
        host = RunHost(
            run.id,
            launch,
            output_dir,
            experiments=self.services.experiments,
            stop_grace_s=self.stop_grace_s,
        )
        controller = RunController(host, self)
        controller.events_received.connect(self._on_controller_events_received)
        controller.log_received.connect(self._on_controller_log_received)
        controller.finished.connect(self._on_controller_finished)
        self.controllers[run.id] = controller
        controller.start()
        self.active_changed.emit()
        self.run_started.emit(run.id)
        logger.info("started run %s (%s) in %s", run.id, name, output_dir)
        return run

    def _plan_off_gui_thread(self, recipe: TrainingRecipe, **options: Any) -> PlannedRun:
        """``training.plan`` on the thread pool while the event loop keeps the window painting.

        Planning writes the PENDING run (a round trip to a shared PostgreSQL, perhaps a slow
        one) and prepares its folder; the caller still gets the planned run back, as before.
        """
        outcome: dict[str, Any] = {}
        loop = QEventLoop()
        self._planning = True
        try:
            run_in_thread(
                self.services.training.plan,
                recipe,
                on_return=lambda planned: outcome.setdefault("planned", planned),
                on_error=lambda exc: outcome.setdefault("error", exc),
                on_finish=loop.quit,
                **options,
            )
            loop.exec()
        finally:
            self._planning = False
        if "error" in outcome:
            raise outcome["error"]
        if "planned" not in outcome:  # the window began closing and cancelled the job
            raise TrainingError("The run was not started: the window is closing.")
        planned: PlannedRun = outcome["planned"]
        return planned

    def target(self, run_id: int | None = None) -> RunController | None:
        """The hosted, running controller of ``run_id``, or the newest one when not given."""
        if run_id is not None:
            controller = self.controllers.get(run_id)
            return controller if controller is not None and controller.running else None
        active = self.active_controllers
        return active[-1] if active else None

    # --- closing ------------------------------------------------------------------------------

    def prepare_close(self, ask: Callable[[], str]) -> bool:
        """Deal with hosted runs before the window closes.

        Args:
            ask: Asks the user what to do (a :class:`CloseChoice` value) when a run is active.

        Returns:
            ``False`` if the user cancelled closing; the runs are left as they were.
        """
        active = self.active_controllers
        if not active:
            return True
        choice = ask()
        if choice == CloseChoice.CANCEL:
            return False
        for controller in active:
            if choice == CloseChoice.STOP:
                controller.stop()
            else:
                controller.detach()
        self._wait_for(active, stop=choice == CloseChoice.STOP)
        return True

    def _wait_for(self, controllers: list[RunController], *, stop: bool) -> None:
        """Process events until the controllers end (a stop escalates to terminate and kill)."""
        budget_ms = int((self.stop_grace_s + 10) * 1000) if stop else 5000
        loop = QEventLoop()
        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)

        def check() -> None:
            if all(not c.running for c in controllers):
                loop.quit()

        for controller in controllers:
            controller.finished.connect(check)
        timer.start(budget_ms)
        check()
        if any(c.running for c in controllers):
            loop.exec()
        for controller in controllers:
            controller.wait(2000)

    # --- relays -------------------------------------------------------------------------------

    def _on_controller_events_received(self, events: list[Event]) -> None:
        controller = self.sender()
        if isinstance(controller, RunController):
            self.events_received.emit(controller.run_id, events)

    def _on_controller_log_received(self, lines: list[str]) -> None:
        controller = self.sender()
        if isinstance(controller, RunController):
            self.log_received.emit(controller.run_id, lines)

    @safe_slot()
    def _on_controller_finished(self, outcome: RunOutcome) -> None:
        self.active_changed.emit()
        self.run_ended.emit(outcome)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "run"
