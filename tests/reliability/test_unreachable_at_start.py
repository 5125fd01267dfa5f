"""PostgreSQL unreachable when the studio starts: one clear line, exit 2, nothing started.

The command line (``db status``, ``runs list``, ``train``) and the window are started against a
configured PostgreSQL where nothing listens. Each says, in one line, which server it could not
reach and what to do (start it, check the URL, or switch to the local database); the command
line exits 2 without a traceback and starts nothing (no run row, no run folder, no local store
made behind the user's back). The window's side of the scenario is in
``tests/qt/test_app_start.py`` (marked ``reliability``, so the report lists it too).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from codetune_studio.cli import main
from tests.reliability.harness import REPO
from tests.trainer_helpers import write_completion_dataset, write_recipe

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

#: Port 1 on localhost: nothing listens, every attempt is refused at once.
HOST_PORT = "127.0.0.1:1"
UNREACHABLE = f"postgresql+psycopg://studio:canary-pw-4711@{HOST_PORT}/team"
#: The start keeps retrying a refused server (it may be starting up); a second is enough here.
QUICK_TIMEOUT = {"CODETUNE_DATABASE__CONNECT_TIMEOUT_S": "1"}


def _assert_one_clear_line(err: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(
        f"error: Cannot reach PostgreSQL at {HOST_PORT}/team: connection refused."
    )
    assert "Start the server" in line
    assert "check the database URL" in line
    assert "Settings" in line
    assert "--fallback-sqlite" in line
    assert "Traceback" not in err
    assert "canary-pw-4711" not in err


@pytest.fixture
def quick_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in QUICK_TIMEOUT.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    "command", [["db", "status"], ["runs", "list"]], ids=["db-status", "runs-list"]
)
def test_a_command_against_an_unreachable_postgres_says_what_to_fix_and_exits_2(
    command: list[str],
    quick_connect: None,
    isolated_dirs: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--database", UNREACHABLE, *command]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_one_clear_line(captured.err)
    # The local store was not opened in its place without a word.
    assert not (isolated_dirs / "studio.db").exists()


def test_train_against_an_unreachable_postgres_starts_nothing(
    quick_connect: None,
    isolated_dirs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_completion_dataset(tmp_path / "data.jsonl")
    # The model folder is never read: the database is checked before anything is loaded.
    recipe = write_recipe(tmp_path / "recipe.json", tmp_path / "model", data, max_steps=2)
    output = tmp_path / "out"
    code = main(["--database", UNREACHABLE, "train", str(recipe), "--output-dir", str(output)])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_one_clear_line(captured.err)
    assert not output.exists()
    assert not (isolated_dirs / "studio.db").exists()
    runs = isolated_dirs / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_the_real_process_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **QUICK_TIMEOUT,
        "PYTHONPATH": str(REPO / "app"),
        "CODETUNE_DATA_DIR": str(tmp_path / "studio"),
        "CODETUNE_DATABASE_URL": UNREACHABLE,
    }
    result = subprocess.run(
        [sys.executable, "-m", "codetune_studio", "db", "status"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    _assert_one_clear_line(result.stderr)
