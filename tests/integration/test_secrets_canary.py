"""Canaries: a key in the keyring, a database password, cloud credentials in the environment.

After a training, a plugin run, keys set and deleted and debug logging, every file the studio
wrote, every row of its database and every child's environment is searched: each canary is found
only where it must be (the keyring; the worker's explicit database URL).
"""

from __future__ import annotations

import io
import json
import stat
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from codetune_studio.cli import main
from codetune_studio.core.child_env import child_environment
from tests.trainer_helpers import save_tiny_model, write_completion_dataset, write_recipe

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

OPENAI_CANARY = "sk-canaryKEY0123456789abcdefXYZ"
DB_PASSWORD = "canary-db-pw-7c1e"
PG_CANARY = "canary-pgpassword-5150"
AWS_CANARY = "canary-aws-secret-8675309"
ENV_CANARIES = {
    "PGPASSWORD": PG_CANARY,
    "AWS_SECRET_ACCESS_KEY": AWS_CANARY,
    "AWS_ACCESS_KEY_ID": "AKIACANARY0000000000",
}
EVERY_CANARY = (OPENAI_CANARY, DB_PASSWORD, PG_CANARY, AWS_CANARY, "AKIACANARY0000000000")


def _write_settings(home: Path, url: str) -> Path:
    path = home / "config" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 2, "database": {"url": url}}))
    return path


def _with_password(url: str, password: str) -> str:
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)


def _files_containing(root: Path, needles: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [n for n in needles if n.encode() in data]
            if hits:
                found[str(path)] = hits
    return found


def _database_text(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            rows = [
                str(row)
                for table in tables
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"'))  # noqa: S608
            ]
    finally:
        engine.dispose()
    return "\n".join(rows)


def test_the_database_password_moves_from_the_settings_file_to_the_keyring(
    isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import keyring

    url = f"postgresql+psycopg://team:{DB_PASSWORD}@db.example:5432/studio"
    settings = _write_settings(isolated_dirs, url)
    assert main(["paths", "--json"]) == 0
    captured = capsys.readouterr()
    assert DB_PASSWORD not in settings.read_text()
    assert json.loads(settings.read_text())["database"]["url"].startswith(
        "postgresql+psycopg://team@db.example"
    )
    assert keyring.get_password("codetune-studio", "database") == DB_PASSWORD
    assert "moved from the settings file to the OS keyring" in captured.err
    assert DB_PASSWORD not in captured.out + captured.err
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600


def test_canaries_appear_only_where_they_must(
    isolated_dirs: Path,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import keyring

    from codetune_studio.ui.studio_services import default_worker_launch

    for name, value in ENV_CANARIES.items():
        monkeypatch.setenv(name, value)
    home = isolated_dirs
    # The team database's password is typed into the settings (an older studio kept it there).
    _write_settings(home, _with_password(postgres_url, DB_PASSWORD))
    monkeypatch.setattr("sys.stdin", io.StringIO(OPENAI_CANARY + "\n"))
    assert main(["keys", "set", "openai", "--stdin"]) == 0
    assert keyring.get_password("codetune-studio", "openai") == OPENAI_CANARY

    assets = tmp_path / "assets"
    model = save_tiny_model(assets / "model")
    data = write_completion_dataset(assets / "data.jsonl")
    recipe = write_recipe(assets / "recipe.json", model, data, max_steps=2, save_steps=1)
    assert main(["--log-level", "DEBUG", "train", str(recipe), "--no-progress"]) == 0
    source = tmp_path / "code" / "sample.py"
    source.parent.mkdir()
    source.write_text(f"KEY = '{OPENAI_CANARY}'\nimport os\n")
    main(["--log-level", "DEBUG", "analyze", str(source)])
    assert main(["--log-level", "DEBUG", "keys", "delete", "openai"]) == 0
    out = capsys.readouterr()

    # Where they must be: the keyring holds the database password...
    assert keyring.get_password("codetune-studio", "database") == DB_PASSWORD
    # ...and the worker is handed the database URL it records to, explicitly.
    launch = default_worker_launch(
        recipe_file=recipe,
        run_id=1,
        output_dir=tmp_path,
        data_dir=home,
        database_url=_with_password(postgres_url, DB_PASSWORD),
    )
    worker_env = child_environment(launch.env)
    assert DB_PASSWORD in worker_env["CODETUNE_DATABASE_URL"]
    leaked_to_worker = [
        c
        for c in EVERY_CANARY
        if c in json.dumps(worker_env).replace(worker_env["CODETUNE_DATABASE_URL"], "")
    ]
    assert leaked_to_worker == []
    plugin_env = child_environment({"PYTHONIOENCODING": "utf-8"})
    assert [c for c in EVERY_CANARY if c in json.dumps(plugin_env)] == []

    # Nowhere else: not a file the studio wrote, not a database row, not the console.
    assert _files_containing(home, EVERY_CANARY) == {}
    assert [c for c in EVERY_CANARY if c in _database_text(postgres_url)] == []
    assert [c for c in EVERY_CANARY if c in out.out + out.err] == []
    # The audit log recorded the key changes by name.
    audit = _database_text(postgres_url)
    assert "key.set" in audit
    assert "key.deleted" in audit
    # Private files and folders.
    log = home / "logs" / "studio.log"
    assert log.is_file()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "logs").stat().st_mode) == 0o700


def test_the_local_database_is_private(isolated_dirs: Path) -> None:
    assert main(["db", "status"]) == 0
    database = isolated_dirs / "studio.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
