"""Short background jobs for the window, over superqt's ``create_worker``.

Write the work as a generator that yields often: superqt checks its abort flag before resuming the
generator, so each ``yield`` is a cancellation point. A plain function runs to its end; cancelling
it only drops its result. Callbacks run on the GUI thread (the worker's signals live there), so
they may touch widgets; the work function never may.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QThreadPool
from superqt.utils import FunctionWorker, GeneratorWorker, create_worker

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

__all__ = ["TaskHandle", "active_tasks", "run_in_thread", "wait_for_tasks"]

logger = logging.getLogger(__name__)

# Workers are QRunnables owned by the pool; their signal objects must stay referenced until done.
_ACTIVE: set[TaskHandle] = set()


class TaskHandle:
    """A running background job: cancel it, or ask whether it is still running.

    Args:
        worker: The superqt worker it wraps.
    """

    def __init__(self, worker: FunctionWorker[Any] | GeneratorWorker[Any, Any, Any]) -> None:
        self._worker = worker
        self._cancelled = False
        self._done = False

    @property
    def worker(self) -> FunctionWorker[Any] | GeneratorWorker[Any, Any, Any]:
        """The superqt worker, for tests that wait on its ``finished`` signal."""
        return self._worker

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    @property
    def done(self) -> bool:
        """Whether the job has finished (returned, failed or been aborted)."""
        return self._done

    def cancel(self) -> None:
        """Stop the job at its next ``yield`` and drop whatever it still delivers."""
        if self._cancelled or self._done:
            return
        self._cancelled = True
        self._worker.quit()

    def _mark_done(self) -> None:
        self._done = True
        _ACTIVE.discard(self)


def run_in_thread(
    func: Callable[..., Any],
    *args: Any,
    on_yield: Callable[[Any], None] | None = None,
    on_return: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finish: Callable[[], None] | None = None,
    **kwargs: Any,
) -> TaskHandle:
    """Run ``func(*args, **kwargs)`` on the thread pool and deliver its results on the GUI thread.

    Args:
        func: The work: a generator function (cancellable at each ``yield``) or a plain function.
        *args: Positional arguments for ``func``.
        on_yield: Called with each value a generator yields.
        on_return: Called with the return value.
        on_error: Called with the exception the work raised; by default it becomes an error
            notice.
        on_finish: Called last, whatever happened (also after a cancel).
        **kwargs: Keyword arguments for ``func``.

    Returns:
        A handle to cancel the job.
    """
    # Errors always go to on_error (or a notice), never re-raised in the event loop.
    worker = create_worker(func, *args, _start_thread=False, _ignore_errors=True, **kwargs)
    handle = TaskHandle(worker)

    def _guarded(callback: Callable[[Any], None]) -> Callable[[Any], None]:
        def deliver(value: Any) -> None:
            if not handle.cancelled:
                callback(value)

        return deliver

    if on_yield is not None and isinstance(worker, GeneratorWorker):
        worker.yielded.connect(_guarded(on_yield))
    if on_return is not None:
        worker.returned.connect(_guarded(on_return))
    worker.errored.connect(_guarded(on_error or _default_error))

    def finished() -> None:
        handle._mark_done()
        if on_finish is not None:
            on_finish()

    worker.finished.connect(finished)
    _ACTIVE.add(handle)
    worker.start()
    return handle


def active_tasks() -> list[TaskHandle]:
    """The jobs that have not finished yet."""
    return list(_ACTIVE)


def wait_for_tasks(timeout_ms: int = 3000) -> bool:
    """Cancel every running job and wait for the pool to drain.

    Args:
        timeout_ms: How long to wait.

    Returns:
        Whether every job finished in time.
    """
    for handle in list(_ACTIVE):
        handle.cancel()
    return bool(QThreadPool.globalInstance().waitForDone(timeout_ms))


def _default_error(exc: BaseException) -> None:
    from codetune_studio.ui import notify

    notify.error(exc)


def drain(generator: Generator[Any, None, Any]) -> Any:
    """Run a generator to its end on the current thread and return its return value.

    Args:
        generator: A work generator, as passed to :func:`run_in_thread`.

    Returns:
        What the generator returned.
    """
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value
