"""A thread-safe stop and pause flag that a training loop polls between steps."""

from __future__ import annotations

import threading

__all__ = ["CancelToken"]


class CancelToken:
    """Lets another thread stop or pause a long-running loop at a safe point.

    The loop calls :meth:`wait_if_paused` between optimizer steps (it returns at once unless
    paused) and then checks :attr:`cancelled`. Cancelling also releases a paused loop, so a
    paused run can always be stopped.

    Example:
        >>> token = CancelToken()
        >>> token.pause(); token.paused
        True
        >>> token.cancel(); token.wait_if_paused(); token.cancelled
        True
    """

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        # Set while running, cleared while paused: the loop waits on it.
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        """Ask the loop to stop at its next check; also ends a pause."""
        self._cancelled.set()
        self._running.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` has been called."""
        return self._cancelled.is_set()

    def pause(self) -> None:
        """Ask the loop to block at its next :meth:`wait_if_paused` until resumed."""
        if not self._cancelled.is_set():
            self._running.clear()

    def resume(self) -> None:
        """Let a paused loop go on."""
        self._running.set()

    @property
    def paused(self) -> bool:
        """Whether the loop is (or will be, at its next check) paused."""
        return not self._running.is_set()

    def wait_if_paused(self, timeout: float | None = None) -> bool:
        """Block while paused, until resumed, cancelled or ``timeout`` seconds have passed.

        Args:
            timeout: The longest to wait in seconds; ``None`` waits as long as the pause lasts.

        Returns:
            ``True`` if the loop may go on (not paused any more), ``False`` on timeout.
        """
        return self._running.wait(timeout)
