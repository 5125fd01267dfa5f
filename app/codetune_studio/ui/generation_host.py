"""Hosting one generation child from the window, in its own ``QThread`` (like the run host).

:class:`GenerationHost` resolves the model (which may mean building the starter model), starts
the generation child through :class:`~codetune_studio.services.generation.GenerationProcess`,
polls its events on a timer and relays them as signals; Stop sends ``stop`` to the child, which
ends the answer in progress (and the process is killed if it does not). Loading the model and
generating never happen in the window's process: an out-of-memory or a native crash ends the
child, and the host reports it as a readable error while the window stays up.

:class:`GenerationController` is the GUI thread's handle: it owns the thread and forwards the
stop request across it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from codetune_studio.core.errors import CodetuneError
from codetune_studio.services.generation import GenerationProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from codetune_studio.core.generation import GenerationRequest
    from codetune_studio.services.generation import ResolvedModel

__all__ = ["GenerationController", "GenerationHost"]

logger = logging.getLogger(__name__)


class GenerationHost(QObject):
    """Starts one generation child and relays its events; lives in its own thread.

    Args:
        resolve: Returns the model to load (called on the host's thread: it may be slow).
        requests: What to answer.
        poll_ms: How often events are collected.
        device: Forces a device (tests use ``cpu``).
    """

    events_received = Signal(list)  # list[GenerationEvent]
    finished = Signal(object)  # str | None: the error, if it failed

    def __init__(
        self,
        resolve: Callable[[], ResolvedModel],
        requests: Sequence[GenerationRequest],
        *,
        poll_ms: int = 50,
        device: str | None = None,
    ) -> None:
        super().__init__()
        self._resolve = resolve
        self._requests = list(requests)
        self._poll_ms = poll_ms
        self._device = device
        self._process: GenerationProcess | None = None
        self._timer: QTimer | None = None
        self._done = False

    @Slot()
    def start(self) -> None:
        """Resolve the model and start the child."""
        try:
            model = self._resolve()
            self._process = GenerationProcess(model, self._requests, device=self._device)
            self._process.start()
        except CodetuneError as exc:
            self._end(str(exc))
            return
        self._timer = QTimer(self)
        self._timer.setInterval(self._poll_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._timer.start()

    @Slot()
    def request_stop(self) -> None:
        """Ask the child to stop the answer in progress."""
        if self._process is not None and not self._done:
            self._process.stop()

    @Slot()
    def _on_timer_timeout(self) -> None:
        process = self._process
        if process is None or self._done:
            return
        events = process.poll()
        if events:
            self.events_received.emit(events)
        if process.ended:
            try:
                process.finish()
            except CodetuneError as exc:
                self._end(str(exc))
            else:
                self._end(None)

    def _end(self, error: str | None) -> None:
        self._done = True
        if self._timer is not None:
            self._timer.stop()
        if self._process is not None:
            self._process.close()
        if error:
            logger.info("generation ended with an error: %s", error)
        self.finished.emit(error)


class GenerationController(QObject):
    """The GUI thread's handle on one generation: owns the host's thread.

    Args:
        host: The host; it is moved into a new thread and started.
        parent: The Qt parent.
    """

    events_received = Signal(list)
    finished = Signal(object)
    _stop_requested = Signal()

    def __init__(self, host: GenerationHost, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.running = True
        self._thread = QThread()
        self._thread.setObjectName("generation-host")
        host.moveToThread(self._thread)
        self._thread.started.connect(host.start)
        self._stop_requested.connect(host.request_stop)
        host.events_received.connect(self.events_received)
        host.finished.connect(self._on_host_finished)

    def start(self) -> None:
        """Start the host's thread (and with it the child)."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the child to stop; the answer so far stays."""
        if self.running:
            self._stop_requested.emit()

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Stop and wait for the thread (the window is closing)."""
        self.stop()
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait(timeout_ms)
        if self.running and self.host._process is not None:
            self.host._process.close()

    @Slot(object)
    def _on_host_finished(self, error: str | None) -> None:
        self.running = False
        self._thread.quit()
        self._thread.wait(5_000)
        self.finished.emit(error)
