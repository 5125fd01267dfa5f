"""The window killed mid-run, PostgreSQL connections dropped mid-run, eight processes at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from codetune_studio.core.status import RunStatus
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.services.runs import sweep_lost_runs
from tests.reliability.harness import REPO, event_kind, start_worker, worker_env
from tests.trainer_helpers import save_tiny_model, write_completion_dataset, write_recipe

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

PROCESSES = 8
SAVES_EACH = 5


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("outage")
    return save_tiny_model(root / "model"), write_completion_dataset(root / "data.jsonl")


_WINDOW = """
import subprocess, sys, time
argv, events, log, env = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
import json
with open(events, "wb") as out, open(log, "wb") as err:
    child = subprocess.Popen(json.loads(argv), stdin=subprocess.PIPE, stdout=out, stderr=err,
                             env=json.loads(env), start_new_session=True)
print(child.pid, flush=True)
time.sleep(3600)
"""


def test_killing_the_window_leaves_the_run_training(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    from codetune_studio.core.child_cmd import python_module_command

    model, data = assets
    recipe = write_recipe(tmp_path / "r.json", model, data, max_steps=6)
    home = tmp_path / "home"
    opened = open_database(None, sqlite_path=home / "studio.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        run = experiments.create_run("orphaned", {})
        argv = python_module_command(
            "codetune_studio.worker", "--recipe", str(recipe), "--run-id", str(run.id),
            "--output-dir", str(home / "run"), "--data-dir", str(home), "--record",
        )  # fmt: skip
        events = tmp_path / "events.jsonl"
        window = subprocess.Popen(
            [sys.executable, "-c", _WINDOW, json.dumps(argv), str(events),
             str(tmp_path / "worker.log"), json.dumps(worker_env())],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert window.stdout is not None
        worker_pid = int(window.stdout.readline())
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            text = events.read_text() if events.exists() else ""
            if '"metrics_logged"' in text:
                break
            time.sleep(0.05)
        window.send_signal(signal.SIGKILL)  # the window dies mid-run
        window.wait()
        window.stdout.close()
        # The run goes on, and what any studio (the CLI included) sees is a live, then
        # finished run; never one marked lost while its worker still trains.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert sweep_lost_runs(experiments) == []
            status = experiments.get_run(run.id).status
            if status is not RunStatus.RUNNING and status is not RunStatus.PENDING:
                break
            time.sleep(0.5)
        finished = experiments.get_run(run.id)
        assert finished.status is RunStatus.FINISHED, (tmp_path / "worker.log").read_text()
        assert finished.pid == worker_pid
        assert (home / "run" / "adapter").is_dir()
        assert [p.step for p in experiments.metric_curve(run.id, "loss")] == list(range(1, 7))
    finally:
        opened.close()


@pytest.mark.postgres
def test_dropped_postgres_connections_lose_no_metric(
    assets: tuple[Path, Path], tmp_path: Path, postgres_url: str
) -> None:
    model, data = assets
    steps = 10
    recipe = write_recipe(tmp_path / "r.json", model, data, max_steps=steps)
    opened = open_database(postgres_url, sqlite_path=tmp_path / "unused.db", allow_fallback=False)
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        experiments = ExperimentService(opened.database)
        run = experiments.create_run("outage", {})
        worker = start_worker(
            recipe=recipe,
            run_id=run.id,
            output_dir=tmp_path / "run",
            data_dir=tmp_path,
            spool=tmp_path / "spool",
            database_url=postgres_url,
        )
        terminated = 0
        seen_steps: set[int] = set()
        while worker.process.poll() is None:
            events = worker.read_events()
            steps_now = {int(e["step"]) for e in events if event_kind(e) == "metrics_logged"}
            # Several steps can arrive between two polls: drop the connections the first time a
            # step is seen and then each time a third step more has been logged.
            crossed = len(steps_now) // 3 > len(seen_steps) // 3
            if steps_now - seen_steps and (terminated == 0 or crossed):
                # Drop every connection the worker holds, mid-run.
                with admin.connect() as conn:
                    terminated += len(
                        conn.execute(
                            sa.text(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                                "AND application_name <> 'keep'"
                            )
                        ).all()
                    )
            seen_steps = steps_now
            time.sleep(0.05)
        assert worker.process.returncode == 0, (tmp_path / "spool" / "worker.log").read_text()
        assert terminated > 0
        experiments = ExperimentService(opened.database)
        finished = experiments.get_run(run.id)
        assert finished.status is RunStatus.FINISHED, finished.error
        assert [p.step for p in experiments.metric_curve(run.id, "loss")] == list(
            range(1, steps + 1)
        )
    finally:
        admin.dispose()
        opened.close()


@pytest.mark.postgres
def test_eight_processes_editing_one_config_lose_no_update(
    tmp_path: Path, postgres_url: str, record_property: Callable[[str, object], None]
) -> None:
    opened = open_database(postgres_url, sqlite_path=tmp_path / "unused.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        config = experiments.create_training_config("shared", {"edits": []})
        runs = [experiments.create_run(f"writer-{i}", {}) for i in range(PROCESSES)]
    finally:
        opened.close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tests" / "reliability" / "_editor.py"),
                postgres_url,
                str(config.id),
                str(runs[i].id),
                str(i),
                str(SAVES_EACH),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for i in range(PROCESSES)
    ]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err.decode()
        outputs.append(json.loads(out))
    opened = open_database(postgres_url, sqlite_path=tmp_path / "unused.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        final = experiments.get_training_config(config.id)
        saves = sum(o["saves"] for o in outputs)
        assert saves == PROCESSES * SAVES_EACH
        # No update lost: every successful save is in the final recipe, in version order.
        assert final.version == 1 + saves
        assert sorted(final.recipe["edits"]) == sorted(
            f"p{i}-{k}" for i in range(PROCESSES) for k in range(SAVES_EACH)
        )
        for run in runs:
            assert [p.step for p in experiments.metric_curve(run.id, "loss")] == list(
                range(1, SAVES_EACH + 1)
            )
        # Every save that lost a race was reported as a conflict, reloaded and retried.
        record_property("conflicts reported", sum(o["conflicts"] for o in outputs))
    finally:
        opened.close()
