"""Recording a training run in the database while it trains.

The worker (rank 0) and a headless ``codetune-studio train`` hand a :class:`RunRecorder` to the
engine as one of its event sinks. It turns the engine's events into run status changes and
batched metric inserts, and keeps a heartbeat so other studios can tell a live run from a dead one.
A database hiccup never stops training: failed writes are kept and retried with the next batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from codetune_studio.core.errors import StorageError
from codetune_studio.core.events import (
    CodeEvalCompleted,
    EvalCompleted,
    Event,
    MetricsLogged,
    RunFinished,
    RunStarted,
)
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.services.experiments import ExperimentService

__all__ = ["HEARTBEAT_INTERVAL_S", "RunRecorder"]

logger = logging.getLogger(__name__)

#: How often a recording worker marks its run alive; a run silent for a few of these is lost.
HEARTBEAT_INTERVAL_S = 15.0

#: Points kept in memory while the database is unreachable, so a long outage cannot exhaust RAM.
_MAX_PENDING_POINTS = 200_000
#: Attempts at the last flush (0.5 + 1 + 2 + 4 s apart) before the points count as lost.
_FINAL_FLUSH_TRIES = 5


class RunRecorder:
    """An event sink that records one run's status, metrics and heartbeat.

    Args:
        experiments: The service to write through.
        run_id: The run, created PENDING beforehand (``ExperimentService.create_run``).
        batch_size: Write metrics once this many points are waiting.
        flush_interval_s: ...or once the oldest waiting point is this old.
        heartbeat_interval_s: How often a background thread marks the run alive.
        clock: Monotonic time source, replaceable in tests.
    """

    def __init__(
        self,
        experiments: ExperimentService,
        run_id: int,
        *,
        batch_size: int = 200,
        flush_interval_s: float = 2.0,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._experiments = experiments
        self.run_id = run_id
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._clock = clock
        self._pending: list[MetricPoint] = []
        self._last_flush = clock()
        self._finished = False
        self._lock = threading.Lock()
        self._stop_heartbeat = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._dropped = 0
        self._last_error: str | None = None
        #: Why the run's record is incomplete (metrics or its end not stored), else ``None``.
        self.storage_problem: str | None = None

    def emit(self, event: Event) -> None:
        """Record one engine event."""
        if isinstance(event, RunStarted):
            self._on_started(event.total_steps)
        elif isinstance(event, MetricsLogged):
            self._queue(event.step, event.metrics)
        elif isinstance(event, EvalCompleted):
            self._queue(event.step, {"eval_loss": event.eval_loss, "perplexity": event.perplexity})
        elif isinstance(event, CodeEvalCompleted):
            self._queue(event.step, event.metrics)
        elif isinstance(event, RunFinished):
            self._on_finished(event.status, event.error)

    def close(self) -> None:
        """Flush what is waiting; a run that never reported its end is recorded as FAILED."""
        if not self._finished:
            self._on_finished(
                RunStatus.FAILED,
                "The training process ended without reporting how the run finished.",
            )
        self._stop_heartbeat_thread()

    # Lifecycle ------------------------------------------------------------------------------

    def _on_started(self, total_steps: int | None = None) -> None:
        try:
            self._experiments.start_run(self.run_id, pid=os.getpid(), total_steps=total_steps)
        except StorageError as exc:
            logger.warning("could not mark run %s as running: %s", self.run_id, exc)
        self.start_heartbeat()

    def start_heartbeat(self) -> None:
        """Start marking the run alive; starting twice is harmless.

        Called from the run's start-up on, so loading a big model is not mistaken for silence.
        """
        if self._heartbeat is None and not self._finished:
            self._heartbeat = threading.Thread(
                target=self._beat, name=f"run-{self.run_id}-heartbeat", daemon=True
            )
            self._heartbeat.start()

    def _on_finished(self, status: RunStatus, error: str | None) -> None:
        self._flush_final()
        self._stop_heartbeat_thread()
        unstored = len(self._pending) + self._dropped
        if unstored:
            # The training may be fine, but its record is not: never a clean success.
            self.storage_problem = (
                f"{unstored} metric points of run {self.run_id} could not be stored in the "
                f"database ({self._last_error or 'unreachable'}); the run's record is "
                "incomplete: check the database (`codetune-studio db status --check`)"
            )
            if status is RunStatus.FINISHED:
                status, error = RunStatus.FAILED, self.storage_problem
        try:
            self._experiments.finish_run(self.run_id, status, error=error)
        except StorageError as exc:
            logger.exception("could not record that run %s ended as %s", self.run_id, status.value)
            self.storage_problem = self.storage_problem or (
                f"could not record that run {self.run_id} ended as {status.value}: {exc}"
            )
            return
        self._finished = True

    def _flush_final(self) -> None:
        """Write what is waiting, retrying a dropped connection a few times before giving up."""
        for attempt in range(_FINAL_FLUSH_TRIES):
            self._flush(force=True)
            if not self._pending or attempt == _FINAL_FLUSH_TRIES - 1:
                return
            time.sleep(min(0.5 * 2**attempt, 4.0))

    def _beat(self) -> None:
        while not self._stop_heartbeat.wait(self._heartbeat_interval_s):
            try:
                self._experiments.heartbeat(self.run_id)
            except StorageError as exc:
                logger.warning("heartbeat for run %s failed: %s", self.run_id, exc)

    def _stop_heartbeat_thread(self) -> None:
        self._stop_heartbeat.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join(timeout=5)

    # Metrics --------------------------------------------------------------------------------

    def _queue(self, step: int, metrics: dict[str, float]) -> None:
        now = time.time()
        # NaN and infinities are stored too: a diverging loss must show in every studio's
        # curves, not vanish from them.
        points = [
            MetricPoint(step=step, name=name, value=float(value), wall_time=now)
            for name, value in metrics.items()
        ]
        with self._lock:
            self._pending.extend(points)
            overflow = len(self._pending) - _MAX_PENDING_POINTS
            if overflow > 0:
                logger.warning(
                    "database unreachable: dropping the %d oldest metric points", overflow
                )
                del self._pending[:overflow]
                self._dropped += overflow
        self._flush(force=False)

    def _flush(self, *, force: bool) -> None:
        with self._lock:
            due = len(self._pending) >= self._batch_size or (
                self._clock() - self._last_flush >= self._flush_interval_s
            )
            if not self._pending or not (force or due):
                return
            batch, self._pending = self._pending, []
            self._last_flush = self._clock()
        try:
            self._experiments.record_metrics(self.run_id, batch)
        except StorageError as exc:
            logger.warning("could not store %d metric points (will retry): %s", len(batch), exc)
            self._last_error = str(exc)
            with self._lock:
                self._pending[:0] = batch
