"""Schema migrations on SQLite and PostgreSQL: head, no drift from the ORM, safe concurrency."""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from codetune_studio.services.database import DatabaseService
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.storage.db import SCHEMA_HEAD, Database
from codetune_studio.storage.orm import Base

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

TABLES = {
    "datasets",
    "training_configs",
    "runs",
    "metrics",
    "model_versions",
    "plugin_results",
    "audit_log",
    "eval_results",
}


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.connect(database_url, connect_timeout=5)
    yield db
    db.dispose()


def _schema_diff(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_reaches_head_and_the_schema_matches_the_orm(database: Database) -> None:
    # Before the upgrade the comparison must see every table missing, or it proves nothing.
    missing = {diff[1].name for diff in _schema_diff(database) if diff[0] == "add_table"}  # type: ignore[index]
    assert missing == TABLES
    assert database.current_revision() is None

    before, after = database.upgrade()

    assert (before, after) == (None, database.head_revision())
    assert database.current_revision() == database.head_revision()
    assert _schema_diff(database) == []


def test_upgrading_twice_changes_nothing(database: Database) -> None:
    database.upgrade()
    assert database.upgrade() == (database.head_revision(), database.head_revision())
    assert _schema_diff(database) == []


def test_status_reports_dialect_revision_and_row_counts(database: Database) -> None:
    status = DatabaseService(database).status()
    assert status.revision is None
    assert not status.is_current

    DatabaseService(database).upgrade()
    ExperimentService(database).create_run("first", {"lr": 1e-4})
    status = DatabaseService(database).status()

    assert status.dialect == database.dialect
    assert status.is_current
    assert status.row_counts["runs"] == 1
    assert set(status.row_counts) == TABLES
    assert sum(status.row_counts.values()) == 1
    assert not status.is_fallback


def test_the_migration_downgrades_cleanly(database: Database) -> None:
    from alembic import command

    from codetune_studio.storage.db import alembic_config

    database.upgrade()
    config = alembic_config()
    with database.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with database.engine.connect() as conn:
        assert TABLES.isdisjoint(sa.inspect(conn).get_table_names())
    assert database.current_revision() is None


@pytest.mark.postgres
def test_two_studios_upgrading_one_fresh_postgres_database_at_once_both_succeed(
    postgres_url: str,
) -> None:
    studios = [Database.connect(postgres_url), Database.connect(postgres_url)]
    barrier = threading.Barrier(len(studios))
    results: list[tuple[str | None, str]] = []
    errors: list[BaseException] = []

    def start(db: Database) -> None:
        barrier.wait()
        try:
            results.append(db.upgrade())
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in studios]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        # One studio migrated from scratch; the other waited on the lock and found it done.
        assert sorted(results, key=lambda r: r[0] or "") == [
            (None, SCHEMA_HEAD),
            (SCHEMA_HEAD, SCHEMA_HEAD),
        ]
        with studios[0].engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(SCHEMA_HEAD,)]
        assert _schema_diff(studios[0]) == []
    finally:
        for db in studios:
            db.dispose()


def test_sqlite_store_uses_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "studio.db"
    db = Database.connect(f"sqlite:///{path}")
    try:
        db.upgrade()
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO metrics (run_id, name, step, value, wall_time) "
                "VALUES (999, 'loss', 1, 0.5, 0)"
            )
    finally:
        db.dispose()
    assert path.is_file()
    # WAL mode is stored in the file itself, so any other reader sees it too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_schema_head_constant_names_the_newest_migration_script() -> None:
    from alembic.script import ScriptDirectory

    from codetune_studio.storage.db import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD


def test_opening_an_up_to_date_database_does_not_load_alembic(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'studio.db'}"
    code = (
        "import sys\n"
        "from codetune_studio.storage.db import Database\n"
        f"db = Database.connect({url!r})\n"
        "db.upgrade()\n"
        "first = 'alembic' in sys.modules\n"
        "for name in [m for m in sys.modules if m.startswith('alembic')]:\n"
        "    del sys.modules[name]\n"
        "db.upgrade()\n"
        "print(first, 'alembic' in sys.modules, db.current_revision())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["True", "False", SCHEMA_HEAD]
