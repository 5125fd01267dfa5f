from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.errors import ConfigError
from codetune_studio.settings import AppSettings, DatabaseSettings, SettingsStore
from codetune_studio.settings.model import SCHEMA_VERSION

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def store(tmp_path: Path) -> SettingsStore:
    return SettingsStore(tmp_path / "settings.json")


def test_missing_file_gives_defaults_without_notices(store: SettingsStore) -> None:
    settings = store.load()
    assert settings == AppSettings()
    assert settings.database.url is None
    assert store.notices == []


def test_update_persists_across_a_restart(store: SettingsStore) -> None:
    store.update(offline=True, database=DatabaseSettings(url="postgresql://db.example/team"))
    reloaded = SettingsStore(store.path).load()
    assert reloaded.offline is True
    assert reloaded.database.url == "postgresql://db.example/team"
    assert json.loads(store.path.read_text())["schema_version"] == SCHEMA_VERSION


def test_environment_overrides_the_file_but_is_never_written_back(
    store: SettingsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.update(log_level="INFO")
    monkeypatch.setenv("CODETUNE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("CODETUNE_DATABASE__FALLBACK_TO_SQLITE", "true")
    settings = store.load()
    assert settings.log_level == "DEBUG"
    assert settings.database.fallback_to_sqlite is True
    store.update(offline=True)
    on_disk = json.loads(store.path.read_text())
    assert on_disk["log_level"] == "INFO"
    assert on_disk["database"]["fallback_to_sqlite"] is False


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2, 3]",
        '{"schema_version": 2, "offline": "sometimes"}',
        '{"schema_version": 2, "colour": "blue"}',
        '{"schema_version": 99}',
    ],
    ids=["bad-json", "not-an-object", "wrong-type", "unknown-key", "from-the-future"],
)
@pytest.mark.expect_logs(r"Settings file .* was unreadable")
def test_corrupt_file_is_backed_up_reported_and_replaced_by_defaults(
    store: SettingsStore, content: str
) -> None:
    store.path.write_text(content)
    settings = store.load()
    assert settings == AppSettings()
    backups = list(store.path.parent.glob("settings.json.corrupt-*"))
    assert len(backups) == 1
    assert backups[0].read_text() == content
    assert len(store.notices) == 1
    assert backups[0].name in store.notices[0]
    assert "\n" not in store.notices[0]


def test_version_1_file_is_migrated_keeping_the_database_url(store: SettingsStore) -> None:
    store.path.write_text(
        json.dumps({"database_url": "postgresql://h/db", "sqlite_fallback": True})
    )
    settings = store.load()
    assert settings.database.url == "postgresql://h/db"
    assert settings.database.fallback_to_sqlite is True
    on_disk = json.loads(store.path.read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert "database_url" not in on_disk
    assert any("upgraded from version 1" in notice for notice in store.notices)


def test_invalid_update_is_rejected_and_leaves_the_file_alone(store: SettingsStore) -> None:
    store.update(offline=True)
    before = store.path.read_text()
    with pytest.raises(ConfigError, match="connect_timeout_s"):
        store.update(database={"connect_timeout_s": -1})
    assert store.path.read_text() == before


def test_invalid_environment_value_names_the_problem(
    store: SettingsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODETUNE_OFFLINE", "perhaps")
    with pytest.raises(ConfigError, match="offline"):
        store.load()
