"""Reaching the database: clear failures, bounded waiting, and an announced SQLite fallback."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.errors import StorageUnavailableError
from codetune_studio.services.database import DatabaseService, open_database
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.storage.db import SCHEMA_HEAD, Database

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

# Port 1 on localhost: nothing listens, so every attempt is refused at once.
UNREACHABLE = "postgresql+psycopg://postgres:hunter2-secret@127.0.0.1:1/test"


def test_an_unreachable_postgres_keeps_trying_then_fails_naming_host_and_cause() -> None:
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as info:
        Database.connect(UNREACHABLE)
    elapsed = time.monotonic() - started

    message = str(info.value)
    # It kept trying for most of the budget before giving up, rather than failing at once.
    # (No upper bound: on a loaded machine one attempt can overrun; pytest-timeout catches a
    # hang.)
    assert elapsed > 5
    assert message.startswith("Cannot reach PostgreSQL at 127.0.0.1:1/test: connection refused.")
    assert "--fallback-sqlite" in message
    assert "\n" not in message
    assert "hunter2" not in message
    assert "hunter2" not in repr(info.value)


def test_the_connect_budget_is_honoured(caplog: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    with (
        caplog.at_level(logging.INFO, logger="codetune_studio"),
        pytest.raises(StorageUnavailableError),
    ):
        Database.connect(UNREACHABLE, connect_timeout=2)
    # It gave up within the 2 s budget instead of the default 10 s one.
    assert time.monotonic() - started < 10
    assert "retrying" in caplog.text
    assert "hunter2" not in caplog.text


def test_without_fallback_an_unreachable_postgres_is_an_error(tmp_path: Path) -> None:
    local = tmp_path / "studio.db"
    with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1:1"):
        open_database(UNREACHABLE, sqlite_path=local, allow_fallback=False, connect_timeout=1)
    assert not local.exists()


def test_with_fallback_the_local_store_is_used_and_announced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local = tmp_path / "data" / "studio.db"
    with caplog.at_level(logging.INFO):
        opened = open_database(
            UNREACHABLE, sqlite_path=local, allow_fallback=True, connect_timeout=1
        )
    try:
        assert opened.is_fallback
        assert opened.fallback_reason is not None
        assert "127.0.0.1:1/test" in opened.fallback_reason
        assert str(local) in opened.fallback_reason
        assert "hunter2" not in opened.fallback_reason
        # Logged for the record; showing it to the user is the caller's job (CLI note, window notice).
        logged = [
            r.getMessage() for r in caplog.records if r.name == "codetune_studio.services.database"
        ]
        assert opened.fallback_reason in logged

        assert opened.database.dialect == "sqlite"
        assert local.is_file()
        status = DatabaseService(opened.database, is_fallback=True).status()
        assert status.is_fallback
        assert status.is_current
        ExperimentService(opened.database).create_run("offline", {})
    finally:
        opened.close()


def test_no_url_means_the_local_sqlite_store_migrated_to_head(tmp_path: Path) -> None:
    local = tmp_path / "studio.db"
    opened = open_database(None, sqlite_path=local, allow_fallback=False)
    try:
        assert not opened.is_fallback
        status = DatabaseService(opened.database).status()
        assert status.dialect == "sqlite"
        assert status.url_masked == f"sqlite:///{local.resolve()}"
        assert status.is_current
    finally:
        opened.close()


def test_upgrade_can_be_left_to_an_explicit_db_upgrade(tmp_path: Path) -> None:
    opened = open_database(None, sqlite_path=tmp_path / "s.db", allow_fallback=False, upgrade=False)
    try:
        service = DatabaseService(opened.database)
        assert service.status().revision is None
        assert service.upgrade() == (None, SCHEMA_HEAD)
        assert service.status().is_current
    finally:
        opened.close()


def test_an_unwritable_sqlite_folder_is_reported_plainly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageUnavailableError, match="Cannot create the folder") as info:
        Database.connect(f"sqlite:///{blocker}/studio.db")
    assert str(blocker) in str(info.value)


@pytest.mark.postgres
def test_a_reachable_postgres_is_used_and_never_falls_back(
    postgres_url: str, tmp_path: Path
) -> None:
    local = tmp_path / "studio.db"
    # postgres:// is what many hosting providers hand out; it must work as is.
    url = postgres_url.replace("postgresql+psycopg://", "postgres://", 1)
    opened = open_database(url, sqlite_path=local, allow_fallback=True)
    try:
        assert not opened.is_fallback
        assert opened.database.dialect == "postgresql"
        assert not local.exists()
        status = DatabaseService(opened.database).status()
        assert status.url_masked.startswith("postgresql+psycopg://")
        assert status.is_current
    finally:
        opened.close()


@pytest.mark.postgres
def test_a_missing_postgres_database_fails_fast_with_the_reason(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(database="codetune_no_such_db").render_as_string(False)
    with pytest.raises(StorageUnavailableError, match="database does not exist"):
        Database.connect(url)
