"""A worker killed with SIGKILL is FAILED at once, with its pid and log, by whoever looks next.

Each trial plans a run as the window does (PENDING, this process as its launcher), starts a real
worker (recording to SQLite), records its pid as the window's run host does, and kills it with
SIGKILL either right after the launch (before the model loads: the run is still PENDING) or
right after its first heartbeat (RUNNING). The next ``codetune-studio runs list`` (any CLI command
that opens the database) shows the run FAILED with "worker process N ended without finishing: see
log ...": no 45-second heartbeat wait, and no run left PENDING forever. Before the kill the same
sweep leaves the live worker's run alone.
"""

from __future__ import annotations

import json
import os
import signal
from typing import TYPE_CHECKING

import pytest

from codetune_studio.cli import main
from codetune_studio.core.recipe import load_recipe
from codetune_studio.core.status import RunStatus
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.services.runs import sweep_lost_runs
from codetune_studio.services.training import TrainingRunService
from tests.reliability.harness import TRIALS, Worker, start_worker
from tests.trainer_helpers import save_tiny_model, write_completion_dataset, write_recipe

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

#: Kills per moment: one in CI, half the kill/resume trials under `make reliability`.
KILLS = max(1, TRIALS // 2) if TRIALS > 3 else 1


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recipe long enough that the worker is still training when it is killed."""
    root = tmp_path_factory.mktemp("lost")
    model = save_tiny_model(root / "model")
    data = write_completion_dataset(root / "data.jsonl")
    return write_recipe(root / "recipe.json", model, data, max_steps=400, save_steps=1000)


def _wait_for_status(experiments: ExperimentService, run_id: int, worker: Worker) -> None:
    def running(_events: list[dict[str, object]]) -> bool:
        return experiments.get_run(run_id).status is RunStatus.RUNNING

    worker.wait_for(running, timeout=300)


@pytest.mark.parametrize("trial", range(KILLS))
@pytest.mark.parametrize("moment", ["at-launch", "after-first-heartbeat"])
def test_a_killed_worker_is_failed_at_once_with_its_pid_and_log(
    moment: str,
    trial: int,
    recipe_file: Path,
    isolated_dirs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    home = isolated_dirs
    opened = open_database(None, sqlite_path=home / "studio.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        runs = TrainingRunService(experiments, home / "runs")
        planned = runs.plan(load_recipe(recipe_file), name=f"killed-{moment}-{trial}")
        assert planned.run.pid == os.getpid()  # the launcher, until the worker is known
        spool = planned.output_dir
        worker = start_worker(
            recipe=recipe_file,
            run_id=planned.run.id,
            output_dir=planned.output_dir,
            data_dir=home,
            spool=spool,
        )
        pid = worker.process.pid
        # What the window's run host records right after the launch.
        experiments.record_worker(planned.run.id, pid=pid, log_path=str(spool / "worker.log"))
        if moment == "after-first-heartbeat":
            _wait_for_status(experiments, planned.run.id, worker)
            assert worker.process.poll() is None, (spool / "worker.log").read_text()
            # Alive, so whoever looks now leaves it alone.
            assert sweep_lost_runs(experiments) == []
        before = experiments.get_run(planned.run.id).status
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=60)  # reaped, as the window's host or init reaps it
        record_property("killed", f"{moment}: run was {before.value}")
        if moment == "at-launch":
            assert before is RunStatus.PENDING
        else:
            assert before is RunStatus.RUNNING
    finally:
        opened.close()

    # The next CLI command that opens the database notices it, without waiting for the heartbeat.
    capsys.readouterr()
    assert main(["runs", "list", "--format", "json"]) == 0
    out = capsys.readouterr()
    listed = {r["id"]: r for r in json.loads(out.out)}
    row = listed[planned.run.id]
    reason = f"worker process {pid} ended without finishing: see log {spool / 'worker.log'}"
    assert row["status"] == "FAILED", row
    assert row["error"] == reason
    assert f"Run {planned.run.id} (killed-{moment}-{trial}) was lost: {reason}" in out.err
    # Once only: the next command finds nothing more to mark.
    assert main(["runs", "list"]) == 0
    assert "was lost" not in capsys.readouterr().err


def test_a_launcher_that_died_before_its_worker_started_fails_the_pending_run(
    recipe_file: Path, isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The process that planned the run (a window, a CLI) died before any worker reported.
    import subprocess
    import sys

    opened = open_database(None, sqlite_path=isolated_dirs / "studio.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        run = experiments.create_run("orphan", {}, pid=None)
        launcher = subprocess.Popen([sys.executable, "-c", "pass"])
        launcher.wait()
        experiments.record_worker(run.id, pid=launcher.pid)
    finally:
        opened.close()
    assert main(["runs", "list", "--format", "json"]) == 0
    row = {r["id"]: r for r in json.loads(capsys.readouterr().out)}[run.id]
    assert row["status"] == "FAILED"
    assert row["error"].startswith(f"worker process {launcher.pid} ended without finishing")
