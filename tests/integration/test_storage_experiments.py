"""The experiment record through ExperimentService, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
import sqlite3
import threading
from datetime import UTC
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.errors import ConflictError, NotFoundError, StorageError
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.storage.db import Database
from codetune_studio.storage.orm import RunRow
from codetune_studio.storage.repositories import TrainingConfigRepository

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

RECIPE = {"base_model": "tiny", "learning_rate": 2e-4, "lora": {"rank": 8}}


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.connect(database_url, connect_timeout=5)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def service(database: Database) -> ExperimentService:
    return ExperimentService(database)


# Runs ---------------------------------------------------------------------------------------


def test_a_run_goes_from_pending_to_running_to_failed_with_its_error(
    service: ExperimentService,
) -> None:
    run = service.create_run("first", RECIPE, output_dir="runs/first")
    assert run.status is RunStatus.PENDING
    assert run.recipe == RECIPE
    assert run.owner
    assert run.host
    assert run.created_at.tzinfo is not None
    assert run.created_at.utcoffset() == UTC.utcoffset(None)
    assert run.started_at is None

    running = service.start_run(run.id, pid=4242)
    assert running.status is RunStatus.RUNNING
    assert running.pid == 4242
    assert running.started_at is not None
    assert running.heartbeat_at is not None

    service.heartbeat(run.id)
    beat = service.get_run(run.id).heartbeat_at
    assert beat is not None
    assert beat >= running.heartbeat_at

    failed = service.finish_run(run.id, RunStatus.FAILED, error="CUDA out of memory")
    stored = service.get_run(run.id)
    assert stored == failed
    assert stored.status is RunStatus.FAILED
    assert stored.error == "CUDA out of memory"
    assert stored.ended_at is not None
    assert stored.started_at is not None
    assert stored.ended_at >= stored.started_at


def test_a_run_cannot_end_twice_or_start_after_ending(service: ExperimentService) -> None:
    run = service.create_run("once", RECIPE)
    service.finish_run(run.id, RunStatus.CANCELLED)
    with pytest.raises(ConflictError, match="already ended as CANCELLED"):
        service.finish_run(run.id, RunStatus.FINISHED)
    with pytest.raises(ConflictError, match="cannot start"):
        service.start_run(run.id)
    assert service.get_run(run.id).status is RunStatus.CANCELLED


def test_a_missing_run_is_reported_as_not_found(service: ExperimentService) -> None:
    with pytest.raises(NotFoundError, match="Run 404 does not exist"):
        service.get_run(404)


def test_runs_are_listed_newest_first_and_filtered_by_status(service: ExperimentService) -> None:
    ids = [service.create_run(f"run {i}", RECIPE).id for i in range(4)]
    service.start_run(ids[1])
    service.finish_run(ids[2], RunStatus.FINISHED)

    assert [r.id for r in service.list_runs()] == ids[::-1]
    assert [r.id for r in service.list_runs(limit=2)] == ids[:1:-1]
    assert [r.id for r in service.list_runs(status=RunStatus.FINISHED)] == [ids[2]]
    assert [r.id for r in service.active_runs()] == [ids[3], ids[1], ids[0]]


def test_a_resumed_run_points_at_the_run_it_continues(service: ExperimentService) -> None:
    first = service.create_run("first", RECIPE)
    second = service.create_run("second", RECIPE, resumed_from_id=first.id)
    assert service.get_run(second.id).resumed_from_id == first.id


def test_a_failed_unit_of_work_leaves_nothing_behind(database: Database) -> None:
    def write_then_fail() -> None:
        with database.unit_of_work() as session:
            ghost = RunRow(name="ghost", status=RunStatus.PENDING, recipe={}, owner="a", host="b")
            session.add(ghost)
            session.flush()
            raise RuntimeError

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert ExperimentService(database).list_runs() == []


# Metrics ------------------------------------------------------------------------------------


def test_metrics_come_back_ordered_by_step_whatever_order_they_were_written(
    service: ExperimentService,
) -> None:
    run = service.create_run("curves", RECIPE)
    steps = list(range(1, 501))
    random.Random(7).shuffle(steps)  # noqa: S311 - a fixed, reproducible order
    batch = [
        MetricPoint(step=s, name="train/loss", value=1.0 / s, wall_time=1e9 + s) for s in steps
    ]
    batch += [MetricPoint(step=s, name="lr", value=1e-4, wall_time=1e9 + s) for s in steps[:10]]

    assert service.record_metrics(run.id, batch) == 510

    curve = service.metric_curve(run.id, "train/loss")
    assert [p.step for p in curve] == list(range(1, 501))
    assert curve[9] == MetricPoint(step=10, name="train/loss", value=0.1, wall_time=1e9 + 10)
    assert len(service.metric_curve(run.id, "lr")) == 10
    assert service.metric_names(run.id) == ["lr", "train/loss"]


def test_a_relogged_step_replaces_the_old_value_and_the_later_point_in_a_batch_wins(
    service: ExperimentService,
) -> None:
    run = service.create_run("resumed", RECIPE)
    service.record_metrics(run.id, [MetricPoint(s, "loss", 10.0 + s, 100.0) for s in range(5)])

    # A resumed run logs steps 3 and 4 again, one of them twice in the same batch.
    written = service.record_metrics(
        run.id,
        [
            MetricPoint(3, "loss", 0.3, 200.0),
            MetricPoint(4, "loss", 0.4, 200.0),
            MetricPoint(4, "loss", 0.44, 201.0),
            MetricPoint(5, "loss", 0.5, 201.0),
        ],
    )

    assert written == 3
    values = {p.step: (p.value, p.wall_time) for p in service.metric_curve(run.id, "loss")}
    assert values == {
        0: (10.0, 100.0),
        1: (11.0, 100.0),
        2: (12.0, 100.0),
        3: (0.3, 200.0),
        4: (0.44, 201.0),
        5: (0.5, 201.0),
    }


def test_nan_and_infinite_losses_are_kept(service: ExperimentService) -> None:
    run = service.create_run("diverged", RECIPE)
    service.record_metrics(
        run.id,
        [
            MetricPoint(1, "loss", math.nan, 1.0),
            MetricPoint(2, "loss", math.inf, 2.0),
            MetricPoint(3, "loss", -math.inf, 3.0),
        ],
    )
    values = [p.value for p in service.metric_curve(run.id, "loss")]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf]


def test_metrics_for_an_unknown_run_are_refused_and_nothing_is_written(
    service: ExperimentService, database: Database
) -> None:
    with pytest.raises(NotFoundError, match="Run 77 does not exist"):
        service.record_metrics(77, [MetricPoint(1, "loss", 1.0, 1.0)])
    assert database.status().row_counts["metrics"] == 0


def test_an_empty_batch_writes_nothing(service: ExperimentService) -> None:
    run = service.create_run("quiet", RECIPE)
    assert service.record_metrics(run.id, []) == 0
    assert service.metric_names(run.id) == []


# Training configs ---------------------------------------------------------------------------


def test_the_second_of_two_studios_saving_one_config_gets_a_conflict_and_nothing_is_lost(
    database_url: str,
) -> None:
    alice_db = Database.connect(database_url, connect_timeout=5)
    bob_db = Database.connect(database_url, connect_timeout=5)
    try:
        alice_db.upgrade()
        alice, bob = ExperimentService(alice_db), ExperimentService(bob_db)
        created = alice.create_training_config("shared", RECIPE)

        alices_copy = alice.get_training_config(created.id)
        bobs_copy = bob.get_training_config(created.id)
        assert alices_copy.version == bobs_copy.version == 1

        saved = alice.save_training_config(
            created.id, {**alices_copy.recipe, "learning_rate": 1e-3}, expected_version=1
        )
        assert saved.version == 2

        with pytest.raises(ConflictError) as info:
            bob.save_training_config(
                created.id, {**bobs_copy.recipe, "learning_rate": 5e-5}, expected_version=1
            )
        message = str(info.value)
        assert "'shared' was changed by someone else" in message
        assert "now version 2, you edited version 1" in message
        assert "nothing was overwritten" in message

        stored = bob.get_training_config(created.id)
        assert stored.version == 2
        assert stored.recipe["learning_rate"] == 1e-3
        assert stored.updated_at >= stored.created_at

        # Bob reloads and applies his change again: now it goes through.
        again = bob.save_training_config(
            created.id, {**stored.recipe, "learning_rate": 5e-5}, expected_version=2
        )
        assert again.version == 3
    finally:
        alice_db.dispose()
        bob_db.dispose()


def test_a_stale_copy_held_in_an_open_session_cannot_overwrite_a_newer_save(
    database: Database, service: ExperimentService
) -> None:
    config = service.create_training_config("held", RECIPE)

    def save_from_stale_session() -> None:
        with database.unit_of_work() as session:
            repository = TrainingConfigRepository(session)
            assert repository.get(config.id).version == 1
            # Someone else saves while this session still holds version 1.
            service.save_training_config(config.id, {"winner": True}, expected_version=1)
            repository.save(config.id, {"loser": True}, expected_version=1)

    with pytest.raises(ConflictError, match="now version 2"):
        save_from_stale_session()
    assert service.get_training_config(config.id).recipe == {"winner": True}


def test_of_many_simultaneous_saves_of_one_version_exactly_one_wins(
    database: Database, service: ExperimentService
) -> None:
    config = service.create_training_config("contended", RECIPE)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def save(i: int) -> None:
        barrier.wait()
        try:
            service.save_training_config(config.id, {"writer": i}, expected_version=1)
        except ConflictError:
            outcomes.append("conflict")
        else:
            outcomes.append(f"saved {i}")

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [o for o in outcomes if o.startswith("saved")]
    assert len(outcomes) == 4
    assert len(winners) == 1
    stored = service.get_training_config(config.id)
    assert stored.version == 2
    assert winners == [f"saved {stored.recipe['writer']}"]


def test_config_names_are_unique(service: ExperimentService) -> None:
    service.create_training_config("only", RECIPE)
    with pytest.raises(ConflictError, match="already exists"):
        service.create_training_config("only", RECIPE)
    assert [c.name for c in service.list_training_configs()] == ["only"]


# Datasets, model versions, plugin results ---------------------------------------------------


def test_datasets_are_registered_once_by_name(service: ExperimentService) -> None:
    record = service.register_dataset(
        "code-alpaca",
        source="sahil2801/CodeAlpaca-20k",
        format="jsonl",
        fingerprint="abc123",
        num_rows=20_022,
        num_train=19_000,
        num_validation=1_022,
    )
    assert record.num_train == 19_000
    with pytest.raises(ConflictError, match="already registered"):
        service.register_dataset(
            "code-alpaca", source="x", format="jsonl", fingerprint="y", num_rows=1
        )
    assert service.list_datasets() == [record]


def test_lineage_walks_from_a_version_back_to_its_first_ancestor(
    service: ExperimentService,
) -> None:
    run = service.create_run("trainer", RECIPE)
    root = service.add_model_version("v1", path="/m/v1", base_model="tiny", run_id=run.id)
    child = service.add_model_version(
        "v2", path="/m/v2", base_model="tiny", parent_id=root.id, dataset_fingerprint="f"
    )
    grandchild = service.add_model_version(
        "v3", path="/m/v3", base_model="tiny", parent_id=child.id, recipe_hash="h"
    )

    assert [v.name for v in service.lineage(grandchild.id)] == ["v3", "v2", "v1"]
    assert [v.name for v in service.lineage(root.id)] == ["v1"]
    assert service.lineage(root.id)[0].run_id == run.id
    with pytest.raises(NotFoundError, match="Model version 999"):
        service.add_model_version("orphan", path="/m", base_model="tiny", parent_id=999)


def test_plugin_results_are_stored_with_their_findings(service: ExperimentService) -> None:
    run = service.create_run("analysed", RECIPE)
    findings = [{"line": 3, "rule": "E501", "message": "line too long"}]
    result = service.record_plugin_result(
        plugin="static",
        plugin_version="1.0",
        target="sample-17",
        status="ok",
        findings=findings,
        run_id=run.id,
    )
    assert result.findings == findings
    assert service.list_plugin_results(target="sample-17") == [result]
    assert service.list_plugin_results(target="other") == []


# SQLite specifics ---------------------------------------------------------------------------


def test_a_locked_sqlite_store_gives_a_message_a_user_can_act_on(tmp_path: Path) -> None:
    path = tmp_path / "studio.db"
    db = Database.connect(f"sqlite:///{path}")
    db.upgrade()
    service = ExperimentService(db)
    blocker = sqlite3.connect(path, timeout=0)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageError, match="locked by another CodeTune window") as info:
            service.create_run("blocked", RECIPE)
        assert "Traceback" not in str(info.value)
    finally:
        blocker.rollback()
        blocker.close()
        db.dispose()
    assert path.exists()


def test_deleting_an_ended_run_removes_its_metrics_and_keeps_its_model_versions(
    service: ExperimentService,
) -> None:
    run = service.create_run("gone", RECIPE)
    service.start_run(run.id, pid=1)
    service.record_metrics(
        run.id, [MetricPoint(step=s, name="loss", value=0.5, wall_time=1e9) for s in (1, 2)]
    )
    with pytest.raises(ConflictError, match="before deleting"):
        service.delete_run(run.id)
    service.finish_run(run.id, RunStatus.CANCELLED)
    version = service.add_model_version("v", path="/tmp/a", base_model="tiny", run_id=run.id)
    service.delete_run(run.id)
    with pytest.raises(NotFoundError):
        service.get_run(run.id)
    assert service.metric_curve(run.id, "loss") == []
    (kept,) = service.list_model_versions()
    assert kept.id == version.id
    assert kept.run_id is None


def test_a_lost_run_is_marked_failed_with_its_last_heartbeat(service: ExperimentService) -> None:
    from datetime import datetime, timedelta

    from codetune_studio.services.runs import find_stale_runs, mark_lost_run_failed

    run = service.create_run("lost", RECIPE, host="gone-machine")
    running = service.start_run(run.id, pid=999_999, host="gone-machine")
    later = datetime.now(UTC) + timedelta(minutes=5)
    (stale,) = find_stale_runs(service.list_runs(), later, host="this-machine")
    failed = mark_lost_run_failed(service, stale)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("the worker stopped reporting (last heartbeat at ")
    assert running.heartbeat_at is not None
    assert running.heartbeat_at.strftime("%H:%M:%S") in failed.error
    with pytest.raises(ConflictError):
        mark_lost_run_failed(service, stale)
