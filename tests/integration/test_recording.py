from __future__ import annotations

import math
from pathlib import Path

import pytest

from codetune_studio.core.errors import StorageError
from codetune_studio.core.events import EvalCompleted, MetricsLogged, RunFinished, RunStarted
from codetune_studio.core.status import RunStatus
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.services.recording import RunRecorder

pytestmark = pytest.mark.integration


@pytest.fixture
def experiments(database_url: str, tmp_path: Path):
    opened = open_database(database_url, sqlite_path=tmp_path / "unused.db", allow_fallback=False)
    yield ExperimentService(opened.database)
    opened.close()


def _run_id(experiments: ExperimentService) -> int:
    return experiments.create_run("recorded", {"model": "starter"}).id


def test_a_finished_run_has_its_status_and_every_metric(experiments: ExperimentService) -> None:
    run_id = _run_id(experiments)
    recorder = RunRecorder(experiments, run_id, batch_size=3)
    recorder.emit(RunStarted(run_id=run_id, total_steps=5, output_dir=Path("/tmp/out")))
    assert experiments.get_run(run_id).status is RunStatus.RUNNING
    for step in range(1, 6):
        recorder.emit(MetricsLogged(step=step, metrics={"loss": 5.0 - step, "learning_rate": 1e-3}))
    recorder.emit(EvalCompleted(step=5, eval_loss=1.5, perplexity=4.48))
    recorder.emit(RunFinished(status=RunStatus.FINISHED, final_step=5))
    recorder.close()

    run = experiments.get_run(run_id)
    assert run.status is RunStatus.FINISHED
    assert run.ended_at is not None
    assert [(p.step, p.value) for p in experiments.metric_curve(run_id, "loss")] == [
        (1, 4.0),
        (2, 3.0),
        (3, 2.0),
        (4, 1.0),
        (5, 0.0),
    ]
    assert [p.value for p in experiments.metric_curve(run_id, "eval_loss")] == [1.5]


def test_metrics_are_written_in_batches_not_one_transaction_per_point(
    experiments: ExperimentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _run_id(experiments)
    calls: list[int] = []
    original = experiments.record_metrics

    def counting(run: int, points) -> int:
        calls.append(len(points))
        return original(run, points)

    monkeypatch.setattr(experiments, "record_metrics", counting)
    recorder = RunRecorder(experiments, run_id, batch_size=10, flush_interval_s=3600)
    recorder.emit(RunStarted(run_id=run_id, total_steps=20, output_dir=Path("/tmp/out")))
    for step in range(1, 21):
        recorder.emit(MetricsLogged(step=step, metrics={"loss": 1.0, "grad_norm": 0.5}))
    recorder.emit(RunFinished(status=RunStatus.FINISHED, final_step=20))
    assert sum(calls) == 40
    assert len(calls) <= 4


@pytest.mark.expect_logs("could not store \\d+ metric points \\(will retry\\)")
def test_a_database_outage_loses_no_metric(
    experiments: ExperimentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _run_id(experiments)
    original = experiments.record_metrics
    failures = {"left": 2}

    def flaky(run: int, points) -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise StorageError("database is locked")
        return original(run, points)

    monkeypatch.setattr(experiments, "record_metrics", flaky)
    recorder = RunRecorder(experiments, run_id, batch_size=2)
    recorder.emit(RunStarted(run_id=run_id, total_steps=6, output_dir=Path("/tmp/out")))
    for step in range(1, 7):
        recorder.emit(MetricsLogged(step=step, metrics={"loss": float(step)}))
    recorder.emit(RunFinished(status=RunStatus.FINISHED, final_step=6))
    assert [p.step for p in experiments.metric_curve(run_id, "loss")] == [1, 2, 3, 4, 5, 6]


def test_a_worker_that_vanishes_without_reporting_leaves_a_failed_run(
    experiments: ExperimentService,
) -> None:
    run_id = _run_id(experiments)
    recorder = RunRecorder(experiments, run_id)
    recorder.emit(RunStarted(run_id=run_id, total_steps=6, output_dir=Path("/tmp/out")))
    recorder.emit(MetricsLogged(step=1, metrics={"loss": 3.0}))
    recorder.close()
    run = experiments.get_run(run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "without reporting" in run.error
    assert [p.value for p in experiments.metric_curve(run_id, "loss")] == [3.0]


def test_failed_run_keeps_its_reason(experiments: ExperimentService) -> None:
    run_id = _run_id(experiments)
    recorder = RunRecorder(experiments, run_id)
    recorder.emit(RunStarted(run_id=run_id, total_steps=6, output_dir=Path("/tmp/out")))
    recorder.emit(
        RunFinished(
            status=RunStatus.FAILED, final_step=0, error="Out of memory: lower the batch size"
        )
    )
    recorder.close()
    assert experiments.get_run(run_id).error == "Out of memory: lower the batch size"


def test_nan_and_infinite_metrics_are_recorded_not_dropped(experiments: ExperimentService) -> None:
    # Runs once on SQLite and once on PostgreSQL (database_url): both must round-trip them.
    run_id = _run_id(experiments)
    recorder = RunRecorder(experiments, run_id, batch_size=1)
    recorder.emit(RunStarted(run_id=run_id, total_steps=4, output_dir=Path("/tmp/out")))
    values = [2.5, math.nan, math.inf, -math.inf]
    for step, value in enumerate(values, 1):
        recorder.emit(MetricsLogged(step=step, metrics={"loss": value, "grad_norm": value}))
    recorder.emit(EvalCompleted(step=4, eval_loss=math.nan, perplexity=math.inf))
    recorder.emit(RunFinished(status=RunStatus.FAILED, final_step=4, error="diverged"))
    recorder.close()

    for name in ("loss", "grad_norm"):
        curve = experiments.metric_curve(run_id, name)
        assert [p.step for p in curve] == [1, 2, 3, 4]
        stored = [p.value for p in curve]
        assert stored[0] == 2.5
        assert math.isnan(stored[1])
        assert stored[2] == math.inf
        assert stored[3] == -math.inf
    (eval_point,) = experiments.metric_curve(run_id, "eval_loss")
    assert math.isnan(eval_point.value)
    assert [p.value for p in experiments.metric_curve(run_id, "perplexity")] == [math.inf]
