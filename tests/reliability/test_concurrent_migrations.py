"""Eight studio processes starting migrations at once against one fresh database.

Each trial starts eight processes that import everything first and then, on one signal, open
the same empty database and upgrade it. Every one must succeed (the first applies the
migrations; the others wait for it and find the schema at head), the schema must end at
``SCHEMA_HEAD`` with exactly one ``alembic_version`` row and every table, and nobody may see a
duplicate-table error or a deadlock. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from codetune_studio.storage.db import SCHEMA_HEAD, Database
from codetune_studio.storage.orm import Base
from tests.reliability.harness import REPO, TRIALS

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

PROCESSES = 8
#: One trial per database in CI (eight processes each); a quarter of the kill trials under
#: ``make reliability`` (five with the default twenty).
MIGRATION_TRIALS = max(1, TRIALS // 4)
#: Seconds a child may take; far above a real upgrade, so a deadlock fails instead of hanging.
CHILD_TIMEOUT_S = 240


def _start_children(url: str, go_file: Path) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = str(REPO / "tests" / "reliability" / "_migrator.py")
    return [
        subprocess.Popen(
            [sys.executable, script, url, str(go_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(PROCESSES)
    ]


def _race(url: str, go_file: Path) -> list[dict[str, str | None]]:
    """Start the eight upgrades at one instant; return what each found and left."""
    children = _start_children(url, go_file)
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.stderr
        go_file.touch()
        results = []
        for child in children:
            out, err = child.communicate(timeout=CHILD_TIMEOUT_S)
            assert child.returncode == 0, f"a studio failed to start: {err.strip()}"
            assert err.strip() == "", err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    return results


def _check_schema(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert [tuple(row) for row in versions] == [(SCHEMA_HEAD,)]
    assert set(Base.metadata.tables) <= tables


def _assert_one_upgrader(results: list[dict[str, str | None]]) -> None:
    assert [r["after"] for r in results] == [SCHEMA_HEAD] * PROCESSES
    # Exactly one found the database empty; the others waited for it and found head.
    assert sorted(str(r["before"]) for r in results) == sorted(
        ["None"] + [SCHEMA_HEAD] * (PROCESSES - 1)
    )


@pytest.mark.parametrize("trial", range(MIGRATION_TRIALS))
def test_eight_processes_migrate_one_fresh_sqlite_file(
    tmp_path: Path, trial: int, record_property: Callable[[str, object], None]
) -> None:
    database_file = tmp_path / "studio.db"
    url = f"sqlite:///{database_file}"
    results = _race(url, tmp_path / "go")
    _assert_one_upgrader(results)
    _check_schema(url)
    database = Database.connect(url)
    try:
        assert database.integrity_check() == []
    finally:
        database.dispose()
    record_property("upgraded / waited and found head", f"1 / {PROCESSES - 1}")


@pytest.mark.postgres
@pytest.mark.parametrize("trial", range(MIGRATION_TRIALS))
def test_eight_processes_migrate_one_fresh_postgres_database(
    tmp_path: Path, trial: int, postgres_url: str, record_property: Callable[[str, object], None]
) -> None:
    results = _race(postgres_url, tmp_path / "go")
    _assert_one_upgrader(results)
    _check_schema(postgres_url)
    record_property("upgraded / waited and found head", f"1 / {PROCESSES - 1}")
