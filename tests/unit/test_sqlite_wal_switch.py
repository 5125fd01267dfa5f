"""Opening a fresh SQLite file from several processes: the WAL switch that loses a race."""

from __future__ import annotations

import sqlite3

import pytest

from codetune_studio.storage import db


class _Cursor:
    """Answers ``PRAGMA journal_mode=WAL`` with "database is locked" a given number of times."""

    def __init__(self, failures: int, message: str = "database is locked") -> None:
        self.failures = failures
        self.message = message
        self.calls = 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode=WAL"
        self.calls += 1
        if self.calls <= self.failures:
            raise sqlite3.OperationalError(self.message)


def test_a_lost_race_to_switch_to_wal_is_asked_again() -> None:
    cursor = _Cursor(failures=1)
    db._switch_to_wal(cursor)
    assert cursor.calls == 2


def test_a_file_that_stays_locked_is_still_reported() -> None:
    cursor = _Cursor(failures=10)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db._switch_to_wal(cursor)
    assert cursor.calls == db._WAL_SWITCH_TRIES


def test_other_errors_are_not_retried() -> None:
    cursor = _Cursor(failures=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        db._switch_to_wal(cursor)
    assert cursor.calls == 1
