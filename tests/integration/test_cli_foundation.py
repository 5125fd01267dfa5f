from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from codetune_studio import __version__
from codetune_studio.cli import main

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

SECRET = "sk-cli-test-9f8e7d6c5b4a"


def run_cli(*argv: str) -> int:
    return main(list(argv))


def test_module_entry_point_prints_the_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codetune_studio", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"codetune-studio {__version__}"
    assert lines[1].startswith("commit: ")
    assert lines[2].startswith("torch: ")
    assert lines[3].startswith("device: ")


def test_paths_lists_every_folder_under_the_data_dir(tmp_path: Path, capsys) -> None:
    root = tmp_path / "portable"
    assert run_cli("paths", "--json", "--data-dir", str(root)) == 0
    folders = json.loads(capsys.readouterr().out)
    assert set(folders) >= {"data", "config", "settings", "database", "runs", "logs", "cache"}
    assert folders["data"] == str(root)
    assert folders["database"] == f"sqlite:///{root / 'studio.db'}"
    assert folders["logs"].startswith(str(root))
    assert (root / "config").is_dir()


def test_global_options_work_before_and_after_the_command(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli("--data-dir", str(first), "paths", "--json") == 0
    assert json.loads(capsys.readouterr().out)["data"] == str(first)
    assert run_cli("paths", "--json", "--data-dir", str(second)) == 0
    assert json.loads(capsys.readouterr().out)["data"] == str(second)


def test_database_url_comes_from_the_environment_with_password_masked(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://team:hunter2@db.example:5432/studio")
    assert run_cli("paths", "--json") == 0
    shown = json.loads(capsys.readouterr().out)["database"]
    assert "db.example" in shown
    assert "hunter2" not in shown


def test_keys_set_list_delete_round_trip_never_prints_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys, isolated_dirs: Path
) -> None:
    monkeypatch.setattr("sys.stdin", _Stdin(SECRET + "\n"))
    assert run_cli("keys", "set", "openai") == 0
    assert run_cli("keys", "list") == 0
    out = capsys.readouterr().out
    assert "openai       set (OS keyring)" in out
    assert "anthropic    not set" in out
    assert SECRET not in out
    assert run_cli("keys", "delete", "openai") == 0
    assert run_cli("keys", "list") == 0
    assert "openai       not set" in capsys.readouterr().out
    for path in isolated_dirs.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_keys_list_shows_environment_fallback(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert run_cli("keys", "list") == 0
    out = capsys.readouterr().out
    assert "huggingface  set (environment: HF_TOKEN)" in out
    assert SECRET not in out


def test_an_error_is_one_line_and_a_non_zero_exit(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", _Stdin("\n"))
    assert run_cli("keys", "set", "anthropic") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: no Anthropic key was given")
    assert "Traceback" not in err


def test_bad_log_level_is_a_config_error(capsys) -> None:
    assert run_cli("--log-level", "chatty", "paths") == 2
    assert "unknown log level 'chatty'" in capsys.readouterr().err


def test_offline_flag_sets_the_hugging_face_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    assert run_cli("--offline", "paths") == 0
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_log_file_flag_receives_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_file = tmp_path / "custom.log"
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    assert run_cli("--log-file", str(log_file), "keys", "list") == 0
    assert log_file.exists()


@pytest.mark.expect_logs("Settings file .* was unreadable")
def test_corrupt_settings_are_reported_in_one_line_and_the_command_still_runs(
    isolated_dirs: Path, capsys
) -> None:
    settings = isolated_dirs / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text("{oops")
    assert run_cli("paths") == 0
    err = capsys.readouterr().err
    assert "note: Settings file" in err
    assert "defaults are in use" in err
    assert len(list(settings.parent.glob("settings.json.corrupt-*"))) == 1


class _Stdin:
    """A piped standard input holding one line."""

    def __init__(self, text: str) -> None:
        self._text = text

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        return self._text


def test_db_status_on_sqlite_shows_dialect_revision_and_counts(isolated_dirs: Path, capsys) -> None:
    assert run_cli("db", "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["dialect"] == "sqlite"
    assert status["revision"] == status["head_revision"]
    assert status["row_counts"]["runs"] == 0
    assert (isolated_dirs / "studio.db").is_file()


@pytest.mark.postgres
def test_db_status_on_postgresql_masks_the_password(postgres_url: str, capsys) -> None:
    import sqlalchemy as sa

    url = sa.make_url(postgres_url).set(password="hunter2").render_as_string(hide_password=False)
    assert run_cli("--database", url, "db", "status") == 0
    out = capsys.readouterr().out
    assert "dialect   postgresql" in out
    assert "hunter2" not in out
    assert "***" in out


def test_db_upgrade_reports_what_it_applied(capsys) -> None:
    assert run_cli("db", "upgrade") == 0
    assert "Schema upgraded from empty to" in capsys.readouterr().out
    assert run_cli("db", "upgrade") == 0
    assert "nothing to do" in capsys.readouterr().out


def test_unreachable_postgres_is_one_line_naming_the_host_and_fallback_is_announced(capsys) -> None:
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test"
    assert run_cli("--database", url, "db", "status") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot reach PostgreSQL at 127.0.0.1:1/test")
    assert err.count("\n") == 1
    assert "hunter2" not in err
    assert run_cli("--database", url, "--fallback-sqlite", "db", "status") == 0
    captured = capsys.readouterr()
    assert "note: PostgreSQL at 127.0.0.1:1/test is unreachable" in captured.err
    assert "dialect   sqlite (fallback)" in captured.out
