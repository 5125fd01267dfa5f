"""Telling live runs from lost ones: a run whose worker died or stopped reporting.

A recording worker marks its run alive every :data:`~codetune_studio.services.recording.
HEARTBEAT_INTERVAL_S` seconds. When it dies without a word (power cut, ``kill -9``, a crashed
machine) the run would stay RUNNING (or, killed during start-up, PENDING) forever;
:func:`find_stale_runs` spots such runs and :func:`sweep_lost_runs` records them FAILED. A run on
this machine whose recorded process is gone is lost at once; elsewhere the heartbeat decides.
Qt-free, so the rule is unit-tested.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from codetune_studio.core.status import RunStatus
from codetune_studio.services.experiments import current_host
from codetune_studio.services.recording import HEARTBEAT_INTERVAL_S

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from codetune_studio.core.models import Run
    from codetune_studio.services.experiments import ExperimentService

__all__ = [
    "PENDING_DEADLINE_S",
    "STALE_AFTER_S",
    "StaleRun",
    "find_stale_runs",
    "lost_reason",
    "mark_lost_run_failed",
    "never_started_reason",
    "pid_alive",
    "process_started_at",
    "sweep_lost_runs",
    "worker_ended_reason",
]

logger = logging.getLogger(__name__)

#: Silence after which a RUNNING run counts as lost: three missed heartbeats.
STALE_AFTER_S = 3 * HEARTBEAT_INTERVAL_S
#: Silence after which a PENDING run (created, its worker never reporting) counts as lost. Longer
#: than the heartbeat rule: a worker on another machine may take a while to import and connect.
PENDING_DEADLINE_S = 300.0
#: A process that started this much after its run last heard from it cannot be the run's worker
#: (its pid was reused); the slack covers the coarse start times the OS reports.
_PID_REUSE_SLACK_S = 2.0


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


def process_started_at(pid: int) -> datetime | None:
    """When the process with this id started (UTC), or ``None`` if it is gone or unknowable.

    A zombie (ended, not yet reaped by its parent) counts as gone.
    """
    # psutil comes with accelerate; imported by name because it ships no type stubs.
    psutil = importlib.import_module("psutil")
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return datetime.fromtimestamp(process.create_time(), UTC)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except (psutil.Error, OSError, ValueError):  # access denied and the like: assume it lives
        return datetime.fromtimestamp(0, UTC)


def _worker_exists(pid: int, known_since: datetime) -> bool:
    """Whether the run's recorded process still runs: the pid exists and is not a newer process.

    Args:
        pid: The recorded process id.
        known_since: A moment the worker was known to exist (its last heartbeat or start): a
            process that started after it reuses the pid and is not the worker.
    """
    if not pid_alive(pid):
        return False
    started = process_started_at(pid)
    if started is None:
        return False
    return started <= known_since + timedelta(seconds=_PID_REUSE_SLACK_S)


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


def worker_ended_reason(run: Run) -> str:
    """The reason a run whose local worker process is gone is recorded as FAILED with.

    Returns:
        ``"worker process 4242 ended without finishing: see log /runs/x/worker.log"``.
    """
    if run.log_path:
        where = f"log {run.log_path}"
    elif run.output_dir:
        where = f"its folder {run.output_dir}"
    else:
        where = "the studio log"
    return f"worker process {run.pid} ended without finishing: see {where}"


def never_started_reason(last_seen: datetime) -> str:
    """The reason a PENDING run no worker ever reported for is recorded as FAILED with."""
    return (
        "the run never started: no worker reported for it "
        f"since {_utc(last_seen).strftime('%Y-%m-%d %H:%M:%S')} UTC"
    )


def find_stale_runs(
    runs: Iterable[Run],
    now: datetime,
    *,
    stale_after_s: float = STALE_AFTER_S,
    pending_deadline_s: float = PENDING_DEADLINE_S,
    host: str | None = None,
    is_alive: Callable[[int], bool] | None = None,
) -> list[StaleRun]:
    """Find the RUNNING and PENDING runs whose worker died or stopped reporting.

    A run on this host whose recorded process (the worker, or for a PENDING run the process
    that launched it) no longer exists is lost at once, whatever its heartbeat says; a pid now
    held by a process that started after the run last reported counts as gone (pid reuse).
    Otherwise a RUNNING run is lost when its last heartbeat (its start, if it never beat) is more
    than ``stale_after_s`` old and a PENDING run when nothing reported for ``pending_deadline_s``,
    unless it runs on this host and its process still exists (a live worker that cannot reach a
    busy database is slow, not lost).

    Args:
        runs: Runs as listed by the experiment service; RUNNING and PENDING ones are considered.
        now: The current time (UTC; a naive value is read as UTC).
        stale_after_s: Seconds of heartbeat silence after which a RUNNING run is lost.
        pending_deadline_s: Seconds after which a silent PENDING run is lost.
        host: This machine's host name; found out when not given.
        is_alive: Says whether a process id exists on this machine; by default the pid must
            exist and belong to a process older than the run's last sign of life.

    Returns:
        The lost runs, in the order given.
    """
    this_host = host if host is not None else current_host()
    now = _utc(now)
    lost: list[StaleRun] = []
    for run in runs:
        if run.status not in (RunStatus.RUNNING, RunStatus.PENDING):
            continue
        seen = run.heartbeat_at or run.started_at or run.created_at
        last_seen = _utc(seen)
        if run.host == this_host and run.pid is not None:
            exists = (
                is_alive(run.pid) if is_alive is not None else _worker_exists(run.pid, last_seen)
            )
            if not exists:
                lost.append(StaleRun(run, last_seen, worker_ended_reason(run)))
            continue  # a live local worker that cannot reach a busy database is slow, not lost
        silence = (now - last_seen).total_seconds()
        if run.status is RunStatus.RUNNING and silence > stale_after_s:
            lost.append(StaleRun(run, last_seen, lost_reason(last_seen)))
        elif run.status is RunStatus.PENDING and silence > pending_deadline_s:
            lost.append(StaleRun(run, last_seen, never_started_reason(last_seen)))
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
    """Mark every lost RUNNING or PENDING run as FAILED; any studio process (the CLI too) may.

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
        running += experiments.list_runs(status=RunStatus.PENDING, limit=None)
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
