"""Telling live runs from lost ones: a RUNNING run whose worker stopped reporting.

A recording worker marks its run alive every :data:`~codetune_studio.services.recording.
HEARTBEAT_INTERVAL_S` seconds. When it dies without a word (power cut, ``kill -9``, a crashed
machine) the run would stay RUNNING forever; :func:`find_stale_runs` spots such runs so the window
can show them as lost and offer :func:`mark_lost_run_failed`. Qt-free, so the rule is unit-tested.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from codetune_studio.core.status import RunStatus
from codetune_studio.services.experiments import current_host
from codetune_studio.services.recording import HEARTBEAT_INTERVAL_S

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from codetune_studio.core.models import Run
    from codetune_studio.services.experiments import ExperimentService

__all__ = [
    "STALE_AFTER_S",
    "StaleRun",
    "find_stale_runs",
    "lost_reason",
    "mark_lost_run_failed",
    "pid_alive",
    "sweep_lost_runs",
]

logger = logging.getLogger(__name__)

#: Silence after which a RUNNING run counts as lost: three missed heartbeats.
STALE_AFTER_S = 3 * HEARTBEAT_INTERVAL_S


@dataclass(frozen=True, slots=True)
class StaleRun:
    """A RUNNING run whose worker stopped reporting.

    Attributes:
        run: The run as listed.
        last_seen: Its last heartbeat (or start) in UTC.
        reason: What the window shows, and what marking it failed records.
    """

    run: Run
    last_seen: datetime
    reason: str


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine.

    Args:
        pid: The process id.

    Returns:
        ``True`` if it exists (or exists but belongs to another user).
    """
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows CI only
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFO
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _utc(stamp: datetime) -> datetime:
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def lost_reason(last_seen: datetime) -> str:
    """The reason a lost run is recorded as FAILED with.

    Args:
        last_seen: Its last heartbeat (UTC).

    Returns:
        ``"the worker stopped reporting (last heartbeat at 2026-01-02 10:11:12 UTC)"``.
    """
    return (
        "the worker stopped reporting "
        f"(last heartbeat at {_utc(last_seen).strftime('%Y-%m-%d %H:%M:%S')} UTC)"
    )


def find_stale_runs(
    runs: Iterable[Run],
    now: datetime,
    *,
    stale_after_s: float = STALE_AFTER_S,
    host: str | None = None,
    is_alive: Callable[[int], bool] = pid_alive,
) -> list[StaleRun]:
    """Find the RUNNING runs whose worker has stopped reporting.

    A run is lost when its last heartbeat (its start, if it never beat) is more than
    ``stale_after_s`` old, unless it runs on this host and its worker process still exists (a
    live worker that cannot reach a busy database is slow, not lost).

    Args:
        runs: Runs as listed by the experiment service; only RUNNING ones are considered.
        now: The current time (UTC; a naive value is read as UTC).
        stale_after_s: Seconds of silence after which a run is lost.
        host: This machine's host name; found out when not given.
        is_alive: Says whether a process id exists on this machine.

    Returns:
        The lost runs, in the order given.
    """
    this_host = host if host is not None else current_host()
    now = _utc(now)
    lost: list[StaleRun] = []
    for run in runs:
        if run.status is not RunStatus.RUNNING:
            continue
        seen = run.heartbeat_at or run.started_at or run.created_at
        last_seen = _utc(seen)
        if (now - last_seen).total_seconds() <= stale_after_s:
            continue
        if run.host == this_host and run.pid is not None and is_alive(run.pid):
            continue
        lost.append(StaleRun(run, last_seen, lost_reason(last_seen)))
    return lost


def mark_lost_run_failed(experiments: ExperimentService, stale: StaleRun) -> Run:
    """Record a lost run as FAILED, saying when its worker last reported.

    Args:
        experiments: The experiment record.
        stale: The lost run, from :func:`find_stale_runs`.

    Returns:
        The failed run.

    Raises:
        NotFoundError: If the run was deleted meanwhile.
        ConflictError: If it ended meanwhile (its worker came back and finished, for example).
    """
    run = experiments.finish_run(stale.run.id, RunStatus.FAILED, error=stale.reason)
    logger.info("Marked lost run %s as failed: %s", run.id, stale.reason)
    return run


def sweep_lost_runs(experiments: ExperimentService, *, now: datetime | None = None) -> list[Run]:
    """Mark every lost RUNNING run as FAILED; any studio process (the CLI too) may call it.

    Args:
        experiments: The experiment record.
        now: The current time (UTC), for tests.

    Returns:
        The runs it marked failed. A run that ended or vanished meanwhile is skipped quietly:
        another studio got there first.
    """
    from codetune_studio.core.errors import ConflictError, NotFoundError, StorageError

    try:
        running = experiments.list_runs(status=RunStatus.RUNNING, limit=None)
    except StorageError as exc:
        logger.info("could not look for lost runs: %s", exc)
        return []
    marked: list[Run] = []
    for stale in find_stale_runs(running, now or datetime.now(UTC)):
        try:
            marked.append(mark_lost_run_failed(experiments, stale))
        except (ConflictError, NotFoundError):
            continue
        except StorageError as exc:
            logger.info("could not mark run %s as lost: %s", stale.run.id, exc)
    return marked
