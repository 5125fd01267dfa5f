"""Canaries through an export and a crash: a key in the keyring, a database password, cloud keys.

The canary test (tests/integration/test_secrets_canary.py) covers training, plugins and debug
logging. This one goes on where secrets leak next: a merged export (and the child process that
verifies it) and crashes: a real worker, launched as the window launches it, crashing on an
error whose text quotes its database URL, and the window's crash log of such an error. Every
file written (the studio's folder, the export, the run folder), every database row, the console
and the environment of every child process actually started are searched: each canary is found
only where it must be (the keyring; the worker's own database URL).
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.cli import main
from codetune_studio.core.child_env import child_environment
from codetune_studio.core.recipe import load_recipe
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.starter import build_tiny_model_and_tokenizer
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.services.training import TrainingRunService
from tests.integration.test_secrets_canary import (
    DB_PASSWORD,
    ENV_CANARIES,
    EVERY_CANARY,
    OPENAI_CANARY,
    _database_text,
    _files_containing,
    _with_password,
    _write_settings,
)
from tests.reliability.harness import REPO
from tests.trainer_helpers import write_completion_dataset, write_recipe

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.postgres]


def _record_children(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """Record the command and the environment of every child process started from here on."""
    started: list[tuple[list[str], dict[str, str]]] = []
    original = subprocess.Popen.__init__

    def recording_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        env = kwargs.get("env")
        argv = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
        started.append((argv, dict(env if env is not None else os.environ)))
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", recording_init)
    return started


def _crash_worker(home: Path, recipe: Path, url: str) -> tuple[int, Path]:
    """Plan a run and start the crashing worker as the window starts the real one."""
    from codetune_studio.ui.studio_services import default_worker_launch

    opened = open_database(url, sqlite_path=home / "studio.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        planned = TrainingRunService(experiments, home / "runs").plan(
            load_recipe(recipe), name="crashing"
        )
        launch = default_worker_launch(
            recipe_file=recipe,
            run_id=planned.run.id,
            output_dir=planned.output_dir,
            data_dir=home,
            database_url=url,
        )
        argv = [
            "tests.fixtures.crashing_worker" if a == "codetune_studio.worker" else a
            for a in launch.argv
        ]
        assert argv != list(launch.argv)
        spool = planned.output_dir
        env = child_environment({**launch.env, "PYTHONPATH": str(REPO)})
        with (spool / "events.jsonl").open("wb") as out, (spool / "worker.log").open("wb") as err:
            worker = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env, cwd=launch.cwd,
                start_new_session=True,
            )  # fmt: skip
        experiments.record_worker(
            planned.run.id, pid=worker.pid, log_path=str(spool / "worker.log")
        )
        assert worker.wait(timeout=300) != 0
        run = experiments.get_run(planned.run.id)
        assert run.status is RunStatus.FAILED, run
        assert "lost the connection to" in (run.error or "")
    finally:
        opened.close()
    return planned.run.id, spool


def _window_crash_log(home: Path, url: str) -> Path:
    """The window's crash handler writing the log of an error that quotes the database URL."""
    from codetune_studio.ui.app import CrashHandler

    handler = CrashHandler(home / "logs")
    try:
        raise RuntimeError(f"could not reach {url}")  # noqa: TRY301 - a real traceback to log
    except RuntimeError as exc:
        return handler.write_log(type(exc), exc, exc.__traceback__)


@pytest.mark.timeout(900)
@pytest.mark.expect_logs(r"training failed|run \d+ failed", level="ERROR")
def test_exports_and_crashes_keep_every_canary_where_it_must_be(
    isolated_dirs: Path,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    record_property: Any,
) -> None:
    import keyring

    for name, value in ENV_CANARIES.items():
        monkeypatch.setenv(name, value)
    home = isolated_dirs
    secret_url = _with_password(postgres_url, DB_PASSWORD)
    _write_settings(home, secret_url)
    monkeypatch.setattr("sys.stdin", io.StringIO(OPENAI_CANARY + "\n"))
    assert main(["keys", "set", "openai", "--stdin"]) == 0
    children = _record_children(monkeypatch)

    assets = tmp_path / "assets"
    model = build_tiny_model_and_tokenizer(assets / "model")
    data = write_completion_dataset(assets / "data.jsonl")
    recipe = write_recipe(assets / "recipe.json", model, data, max_steps=2, save_steps=1)
    assert main(["--log-level", "DEBUG", "train", str(recipe), "--no-progress"]) == 0
    exports = tmp_path / "exports"
    merged = exports / "merged"
    code = main(["--log-level", "DEBUG", "export", "1", "--out", str(merged), "--format", "merged"])
    assert code == 0, capsys.readouterr().err
    assert (merged / "model.safetensors").is_file()
    verifiers = [argv for argv, _env in children if any("export_probe" in a for a in argv)]
    assert verifiers, [argv for argv, _ in children]  # the verification child really ran

    run_id, run_folder = _crash_worker(home, recipe, keyring_url := secret_url)
    crash_log = _window_crash_log(home, keyring_url)
    assert "could not reach" in crash_log.read_text()
    assert stat.S_IMODE(crash_log.stat().st_mode) == 0o600
    out = capsys.readouterr()
    record_property("children", len(children))

    # Where they must be: the keyring; the worker's own database URL, handed to it explicitly.
    assert keyring.get_password("codetune-studio", "database") == DB_PASSWORD
    worker_envs = [env for argv, env in children if "tests.fixtures.crashing_worker" in argv]
    assert len(worker_envs) == 1
    assert DB_PASSWORD in worker_envs[0]["CODETUNE_DATABASE_URL"]
    leaks: dict[str, list[str]] = {}
    for argv, env in children:
        text = json.dumps(env)
        if env is worker_envs[0]:
            text = text.replace(env["CODETUNE_DATABASE_URL"], "")
        found = [c for c in EVERY_CANARY if c in text or c in " ".join(argv)]
        if found:
            leaks[" ".join(argv[:4])] = found
    assert leaks == {}

    # Nowhere else: the studio's folder (run folders, worker and crash logs), the export, the
    # database, the console.
    assert run_folder.is_relative_to(home)
    assert (run_folder / "worker.log").stat().st_size > 0
    written = {**_files_containing(home, EVERY_CANARY), **_files_containing(exports, EVERY_CANARY)}
    assert written == {}
    assert [c for c in EVERY_CANARY if c in _database_text(postgres_url)] == []
    assert [c for c in EVERY_CANARY if c in out.out + out.err] == []
    assert run_id > 1
    assert sys.platform != "win32"
