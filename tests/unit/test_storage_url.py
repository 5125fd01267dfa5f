"""Database URL handling: masking, driver rewriting, the shipped Alembic config."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from codetune_studio.core.errors import StorageError
from codetune_studio.storage.db import (
    MIGRATIONS_DIR,
    Database,
    alembic_config,
    mask_url,
    normalize_url,
    sqlite_url,
)


def test_mask_url_hides_the_password_but_keeps_where_it_points() -> None:
    masked = mask_url("postgresql+psycopg://alice:s3cr%40t@db.example.org:6543/studio")
    assert "s3cr" not in masked
    assert masked == "postgresql+psycopg://alice:***@db.example.org:6543/studio"


def test_mask_url_leaves_a_url_without_password_alone() -> None:
    assert mask_url("postgresql+psycopg://postgres@127.0.0.1:5432/test") == (
        "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    assert mask_url("sqlite:////tmp/studio.db") == "sqlite:////tmp/studio.db"


def test_mask_url_masks_something_that_is_not_quite_a_url() -> None:
    masked = mask_url("not a url://bob:hunter2@host/db")
    assert "hunter2" not in masked
    assert "***" in masked


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u@h:5432/d", "postgresql+psycopg"),
        ("postgresql://u@h:5432/d", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h:5432/d", "postgresql+psycopg"),
        ("sqlite:///studio.db", "sqlite"),
    ],
)
def test_normalize_url_points_bare_postgres_urls_at_psycopg3(given: str, driver: str) -> None:
    url = normalize_url(given)
    assert url.drivername == driver
    assert url.host in {"h", None}


def test_an_invalid_url_is_reported_without_its_password() -> None:
    with pytest.raises(StorageError, match="is not a database URL") as info:
        normalize_url("bob:hunter2@nowhere")
    assert "hunter2" not in str(info.value)


def test_an_unsupported_database_is_refused_with_a_clear_message() -> None:
    with pytest.raises(StorageError, match="Unsupported database") as info:
        Database.connect("mysql://root:topsecret@localhost/studio")
    assert "topsecret" not in str(info.value)


def test_sqlite_url_is_absolute(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "a" / "studio.db")
    assert url.startswith("sqlite:////")
    assert url.endswith("/a/studio.db")


def test_alembic_config_finds_the_shipped_migrations_without_an_ini_file() -> None:
    config = alembic_config()
    assert config.config_file_name is None
    assert Path(config.get_main_option("script_location") or "") == MIGRATIONS_DIR
    script = ScriptDirectory.from_config(config)
    assert script.get_current_head() == "0003"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()


def test_alembic_config_escapes_percent_signs_in_passwords() -> None:
    config = alembic_config("postgresql://u:p%25w@h/d")
    assert config.get_main_option("sqlalchemy.url") == "postgresql+psycopg://u:p%25w@h/d"
