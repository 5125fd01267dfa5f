"""Which RUNNING runs count as lost: the heartbeat rule, and the pid check on this host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from codetune_studio.core.models import Run
from codetune_studio.core.status import RunStatus
from codetune_studio.services.runs import STALE_AFTER_S, find_stale_runs, lost_reason, pid_alive

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _run(
    run_id: int, *, silent_s: float, host: str = "here", pid: int | None = 4242, **kw: Any
) -> Run:
    beat = NOW - timedelta(seconds=silent_s)
    fields: dict[str, Any] = {
        "id": run_id,
        "name": f"run-{run_id}",
        "status": RunStatus.RUNNING,
        "owner": "me",
        "host": host,
        "pid": pid,
        "heartbeat_at": beat,
        "started_at": beat,
        "created_at": beat,
        "recipe": {},
    }
    fields.update(kw)
    return Run(**fields)


def test_stale_after_is_three_heartbeats() -> None:
    assert 45 <= STALE_AFTER_S <= 60


@pytest.mark.parametrize(
    ("silent_s", "host", "alive", "lost"),
    [
        (10, "here", False, False),  # recent heartbeat: alive whatever the pid says
        (STALE_AFTER_S - 1, "elsewhere", False, False),
        (STALE_AFTER_S + 1, "elsewhere", False, True),  # another machine: the heartbeat decides
        (STALE_AFTER_S + 1, "elsewhere", True, True),  # a pid elsewhere means nothing here
        (STALE_AFTER_S + 1, "here", True, False),  # our worker still exists: slow, not lost
        (STALE_AFTER_S + 1, "here", False, True),  # our worker is gone
        (3600, "here", False, True),
    ],
)
def test_a_running_run_is_lost_when_silent_and_its_local_worker_is_gone(
    silent_s: float, host: str, alive: bool, lost: bool
) -> None:
    run = _run(1, silent_s=silent_s, host=host)
    found = find_stale_runs([run], NOW, host="here", is_alive=lambda pid: alive)
    assert [s.run.id for s in found] == ([1] if lost else [])


def test_only_running_runs_are_considered_and_naive_times_read_as_utc() -> None:
    runs = [
        _run(1, silent_s=600, status=RunStatus.PENDING),
        _run(2, silent_s=600, status=RunStatus.FAILED),
        _run(3, silent_s=600, heartbeat_at=(NOW - timedelta(seconds=600)).replace(tzinfo=None)),
        _run(4, silent_s=600, heartbeat_at=None, pid=None),  # never beat: its start counts
    ]
    found = find_stale_runs(runs, NOW.replace(tzinfo=None), host="here", is_alive=lambda p: False)
    assert [s.run.id for s in found] == [3, 4]
    assert found[0].last_seen == NOW - timedelta(seconds=600)
    assert found[0].reason == (
        "the worker stopped reporting (last heartbeat at 2026-03-01 11:50:00 UTC)"
    )
    assert found[0].reason == lost_reason(found[0].last_seen)


def test_pid_alive_knows_this_process_and_rejects_nonsense() -> None:
    import os

    assert pid_alive(os.getpid())
    assert not pid_alive(0)
    assert not pid_alive(-5)
