"""Which RUNNING runs count as lost: the heartbeat rule, and the pid check on this host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from codetune_studio.core.models import Run
from codetune_studio.core.status import RunStatus
from codetune_studio.services.runs import (
    PENDING_DEADLINE_S,
    STALE_AFTER_S,
    find_stale_runs,
    lost_reason,
    pid_alive,
)

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
        (10, "here", False, True),  # our worker is gone: lost at once, whatever the heartbeat
        (10, "here", True, False),
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


def test_only_open_runs_are_considered_and_naive_times_read_as_utc() -> None:
    runs = [
        _run(1, silent_s=100, status=RunStatus.PENDING, host="elsewhere"),  # within its deadline
        _run(2, silent_s=600, status=RunStatus.FAILED),
        _run(
            3,
            silent_s=600,
            host="elsewhere",
            heartbeat_at=(NOW - timedelta(seconds=600)).replace(tzinfo=None),
        ),
        _run(4, silent_s=600, heartbeat_at=None, pid=None),  # never beat: its start counts
    ]
    found = find_stale_runs(runs, NOW.replace(tzinfo=None), host="here", is_alive=lambda p: True)
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


def test_a_local_worker_that_is_gone_is_lost_at_once_with_its_pid_and_log() -> None:
    run = _run(1, silent_s=1, pid=4242, log_path="/runs/a/worker.log")
    found = find_stale_runs([run], NOW, host="here", is_alive=lambda pid: pid != 4242)
    assert [s.reason for s in found] == [
        "worker process 4242 ended without finishing: see log /runs/a/worker.log"
    ]
    no_log = _run(2, silent_s=1, pid=4242, output_dir="/runs/b")
    assert find_stale_runs([no_log], NOW, host="here", is_alive=lambda pid: False)[0].reason == (
        "worker process 4242 ended without finishing: see its folder /runs/b"
    )


@pytest.mark.parametrize(
    ("silent_s", "host", "pid", "alive", "reason"),
    [
        (1, "here", 4242, False, "worker process 4242 ended"),  # killed during start-up
        (1, "here", 4242, True, None),  # its launcher or worker still runs
        (3600, "here", 4242, True, None),  # a slow start on this machine is not a death
        (PENDING_DEADLINE_S - 1, "elsewhere", 4242, False, None),
        (PENDING_DEADLINE_S + 1, "elsewhere", 4242, True, "the run never started"),
        (PENDING_DEADLINE_S + 1, "here", None, True, "the run never started"),  # no pid known
        (PENDING_DEADLINE_S - 1, "here", None, True, None),
    ],
)
def test_a_pending_run_is_lost_when_its_process_died_or_past_its_deadline(
    silent_s: float, host: str, pid: int | None, alive: bool, reason: str | None
) -> None:
    run = _run(1, silent_s=silent_s, host=host, pid=pid, status=RunStatus.PENDING)
    found = find_stale_runs([run], NOW, host="here", is_alive=lambda _pid: alive)
    assert [s.reason[: len(reason or "")] for s in found] == ([reason] if reason else [])


def test_a_reused_pid_does_not_keep_a_dead_run_alive() -> None:
    import os

    from codetune_studio.services.runs import process_started_at

    me = process_started_at(os.getpid())
    assert me is not None
    assert me <= datetime.now(UTC)
    # This process is alive, but it started long after the run last reported: not its worker.
    before_us = me - timedelta(hours=1)
    reused = _run(1, silent_s=0, pid=os.getpid(), heartbeat_at=before_us)
    assert [s.run.id for s in find_stale_runs([reused], NOW, host="here")] == [1]
    # The same pid with a heartbeat after this process started: our live worker.
    live = _run(2, silent_s=0, pid=os.getpid(), heartbeat_at=datetime.now(UTC))
    assert find_stale_runs([live], NOW, host="here") == []


def test_a_reaped_or_zombie_process_counts_as_gone() -> None:
    import subprocess
    import sys
    import time

    from codetune_studio.services.runs import process_started_at

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        # Not yet reaped: a zombie, which os.kill(pid, 0) still finds.
        while process_started_at(child.pid) is not None and datetime.now(UTC) < deadline:
            time.sleep(0.05)
        assert process_started_at(child.pid) is None
    finally:
        child.wait()
    assert process_started_at(child.pid) is None
