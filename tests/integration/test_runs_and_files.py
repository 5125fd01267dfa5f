"""Runs and files: lost runs are noticed by the CLI, folders are never silently replaced, a
damaged database is detected and a run whose metrics were not stored is not a clean success."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from codetune_studio.cli import main
from codetune_studio.core.errors import ConfigError, StorageError
from codetune_studio.core.events import MetricsLogged, RunFinished, RunStarted
from codetune_studio.core.recipe import load_recipe
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.checkpoint import replace_folder
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.services.recording import RunRecorder
from codetune_studio.services.training import TrainingRunService

pytestmark = pytest.mark.integration


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_cli_marks_a_run_whose_worker_died_as_failed(
    isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = open_database(None, sqlite_path=isolated_dirs / "studio.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        run = experiments.create_run("killed", {})
        dead = _dead_pid()
        experiments.start_run(run.id, pid=dead)
        alive = experiments.create_run("alive", {})
        experiments.start_run(alive.id)  # this very process: alive, and it just beat
        elsewhere = experiments.create_run("elsewhere", {})
        experiments.start_run(elsewhere.id, pid=dead, host="another-machine")
        with opened.database.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE runs SET heartbeat_at = :t WHERE id = :id"),
                {"t": datetime.now(UTC) - timedelta(minutes=5), "id": elsewhere.id},
            )
    finally:
        opened.close()
    assert main(["db", "status"]) == 0
    assert f"Run {run.id} (killed) was lost" in capsys.readouterr().err
    opened = open_database(None, sqlite_path=isolated_dirs / "studio.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        lost = experiments.get_run(run.id)
        assert lost.status is RunStatus.FAILED
        # Its worker is gone from this machine: lost at once, whatever the heartbeat said.
        assert f"worker process {dead} ended without finishing" in (lost.error or "")
        assert experiments.get_run(alive.id).status is RunStatus.RUNNING
        # On another machine the pid means nothing here: its silent heartbeat decides.
        assert "stopped reporting" in (experiments.get_run(elsewhere.id).error or "")
    finally:
        opened.close()


def test_output_dir_is_relative_to_the_recipe_and_stored_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    recipe_file = folder / "recipe.yaml"
    recipe_file.write_text("dataset: {path: data.jsonl}\noutput_dir: out/run1\n")
    monkeypatch.chdir(tmp_path)  # anywhere but the recipe's folder
    recipe = load_recipe(recipe_file)
    assert recipe.output_dir == (folder / "out" / "run1").resolve()
    opened = open_database(None, sqlite_path=tmp_path / "s.db", allow_fallback=False)
    try:
        runs = TrainingRunService(ExperimentService(opened.database), tmp_path / "runs")
        planned = runs.plan(recipe)
        assert planned.output_dir == folder / "out" / "run1"
        assert planned.run.output_dir == str(folder / "out" / "run1")
        # Now it holds the recipe snapshot: a second run into it is refused...
        with pytest.raises(ConfigError, match=r"already holds files.*--overwrite"):
            runs.plan(recipe)
        # ...unless asked.
        assert runs.plan(recipe, overwrite=True).output_dir == planned.output_dir
    finally:
        opened.close()


def test_replacing_a_folder_keeps_the_old_one_until_the_new_one_is_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final, staging = tmp_path / "adapter", tmp_path / "adapter.tmp"
    final.mkdir()
    (final / "weights").write_text("old")
    staging.mkdir()
    (staging / "weights").write_text("new")
    replace_folder(staging, final)
    assert (final / "weights").read_text() == "new"
    assert not (tmp_path / "adapter.old").exists()
    assert not staging.exists()

    # A crash between the two renames leaves the previous output complete on disk.
    staging.mkdir()
    (staging / "weights").write_text("newer")
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if self == staging:
            raise OSError("killed here")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="killed here"):
        replace_folder(staging, final)
    assert (tmp_path / "adapter.old" / "weights").read_text() == "new"


def test_db_status_check_detects_a_damaged_sqlite_file(
    isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = open_database(None, sqlite_path=isolated_dirs / "studio.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        for index in range(200):
            experiments.create_run(f"run-{index}-" + "x" * 150, {"pad": "y" * 200})
    finally:
        opened.close()
    assert main(["db", "status", "--check"]) == 0
    assert "integrity ok" in capsys.readouterr().out
    database = isolated_dirs / "studio.db"
    data = bytearray(database.read_bytes())
    page = 4096
    for offset in range(page * 3, min(len(data), page * 8), 7):
        data[offset] = 0xA5  # scribble over a few pages of the runs table
    database.write_bytes(bytes(data))
    status = main(["db", "status", "--check"])
    captured = capsys.readouterr()
    assert status == 1
    assert "damaged" in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.expect_logs(
    r"could not store \d+ metric points",
    r"database disk image is malformed",
    r"metrics.*(not|could not).*stored",
)
def test_a_run_whose_metrics_were_not_stored_is_not_a_clean_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    opened = open_database(None, sqlite_path=tmp_path / "s.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        run_id = experiments.create_run("unlucky", {}).id

        def refuse(*_args: object) -> int:
            raise StorageError("database disk image is malformed")

        monkeypatch.setattr(experiments, "record_metrics", refuse)
        monkeypatch.setattr("codetune_studio.services.recording.time.sleep", lambda _s: None)
        recorder = RunRecorder(experiments, run_id, heartbeat_interval_s=3600)
        with caplog.at_level(logging.WARNING, logger="codetune_studio.services.recording"):
            recorder.emit(RunStarted(run_id=run_id, total_steps=2, output_dir=tmp_path))
            recorder.emit(MetricsLogged(step=1, metrics={"loss": 1.0}))
            recorder.emit(RunFinished(status=RunStatus.FINISHED, final_step=2))
            recorder.close()
        caplog.clear()
        run = experiments.get_run(run_id)
        assert run.status is RunStatus.FAILED
        assert "1 metric points" in (run.error or "")
        assert recorder.storage_problem is not None
        assert "db status --check" in recorder.storage_problem
    finally:
        opened.close()


@pytest.mark.expect_logs(
    r"could not store \d+ metric points",
    r"database disk image is malformed",
    r"metrics.*(not|could not).*stored",
)
def test_train_exits_non_zero_when_its_metrics_could_not_be_stored(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.trainer_helpers import save_tiny_model, write_completion_dataset, write_recipe

    model = save_tiny_model(tmp_path / "model")
    data = write_completion_dataset(tmp_path / "data.jsonl")
    recipe = write_recipe(tmp_path / "r.json", model, data, max_steps=2)

    def refuse(*_args: object, **_kwargs: object) -> int:
        raise StorageError("database disk image is malformed")

    monkeypatch.setattr(ExperimentService, "record_metrics", refuse)
    monkeypatch.setattr("codetune_studio.services.recording.time.sleep", lambda _s: None)
    with caplog.at_level(logging.WARNING, logger="codetune_studio.services.recording"):
        status = main(["train", str(recipe), "--no-progress"])
    caplog.clear()
    err = capsys.readouterr().err
    assert status == 1
    assert "metric points of run 1 could not be stored" in err


def test_a_checkpoint_pruned_when_the_run_is_killed_never_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by `make reliability`: a kill mid-prune left trainer_state.json without optimizer.pt."""
    from codetune_studio.engine import checkpoint as module

    folder = tmp_path / "checkpoints"
    old = folder / "checkpoint-2"
    old.mkdir(parents=True)
    for name in ("manifest.json", "optimizer.pt", "trainer_state.json"):
        (old / name).write_text("{}")

    def killed_mid_delete(path: Path, ignore_errors: bool = False) -> None:
        (Path(path) / "optimizer.pt").unlink()  # the first files go, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr("codetune_studio.engine.checkpoint.shutil.rmtree", killed_mid_delete)
    with pytest.raises(KeyboardInterrupt):
        module.discard_checkpoint(old)
    assert module.find_checkpoints(folder) == []
    assert [p.name for p in folder.iterdir()] == ["checkpoint-2.tmp"]
