"""Where training events go: the :class:`EventSink` protocol and the sinks every run needs.

A sink is to the engine what a logger is to Lightning's ``Trainer``: the loop calls ``emit`` for
each event and ``close`` once at the end, and knows nothing else about it. The worker prints
events with :class:`JsonLinesSink`; the database recorder (rank 0) is another sink, combined with
the printer through :class:`CompositeSink`.
"""

from __future__ import annotations

import logging
import threading
from typing import IO, TYPE_CHECKING, Protocol, runtime_checkable

from codetune_studio.core.events import Event, encode_event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["CallbackSink", "CompositeSink", "EventSink", "JsonLinesSink", "ListSink", "NullSink"]

logger = logging.getLogger(__name__)


@runtime_checkable
class EventSink(Protocol):
    """Receives a run's events in order; the last one is always ``RunFinished``."""

    def emit(self, event: Event) -> None:
        """Handle one event. Must be quick: the training loop waits for it."""

    def close(self) -> None:
        """Flush and release whatever the sink holds; called once, after the last event."""


class NullSink:
    """Drops every event (non-zero ranks of a multi-process run use it)."""

    def emit(self, event: Event) -> None:
        """Ignore the event."""

    def close(self) -> None:
        """Nothing to release."""


class JsonLinesSink:
    """Writes each event as one JSON line and flushes, so a reading process sees it at once.

    Args:
        stream: A text stream such as ``sys.stdout`` or an open file.
        close_stream: Whether :meth:`close` closes ``stream`` too (not for ``sys.stdout``).
    """

    def __init__(self, stream: IO[str], *, close_stream: bool = False) -> None:
        self._stream = stream
        self._close_stream = close_stream
        # The worker's command thread and signal handlers may log while the loop emits.
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        """Write the event and flush."""
        line = encode_event(event) + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    def close(self) -> None:
        """Flush, and close the stream if this sink owns it."""
        with self._lock:
            self._stream.flush()
            if self._close_stream:
                self._stream.close()


class CallbackSink:
    """Calls a function for each event (tests, the CLI's progress bar).

    Args:
        callback: Called with every event.
        on_close: Called once by :meth:`close`, if given.
    """

    def __init__(
        self, callback: Callable[[Event], None], on_close: Callable[[], None] | None = None
    ) -> None:
        self._callback = callback
        self._on_close = on_close

    def emit(self, event: Event) -> None:
        """Pass the event to the callback."""
        self._callback(event)

    def close(self) -> None:
        """Call ``on_close`` if there is one."""
        if self._on_close is not None:
            self._on_close()


class ListSink:
    """Keeps every event in :attr:`events` (tests and benchmarks)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False

    def emit(self, event: Event) -> None:
        """Append the event."""
        self.events.append(event)

    def close(self) -> None:
        """Mark the sink closed."""
        self.closed = True


class CompositeSink:
    """Fans each event out to several sinks.

    A sink that raises is logged and skipped for that event, so a full disk or a lost database
    connection in one recorder does not kill a training run that others are still following.

    Args:
        sinks: The sinks to forward to, in order.
    """

    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self._sinks = list(sinks)

    def emit(self, event: Event) -> None:
        """Forward the event to every sink."""
        for sink in self._sinks:
            try:
                sink.emit(event)
            except Exception:
                logger.exception(
                    "event sink %s failed on %s", type(sink).__name__, type(event).__name__
                )

    def close(self) -> None:
        """Close every sink, even if one of them fails."""
        for sink in self._sinks:
            try:
                sink.close()
            except Exception:
                logger.exception("event sink %s failed to close", type(sink).__name__)
