"""Run history, comparison, following, lineage and the queue's storage, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event

from codetune_studio.core.comparison import x_values
from codetune_studio.core.errors import ConflictError
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.recipe import TrainingRecipe
from codetune_studio.core.status import RunStatus
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.services.history import RunFilter, RunHistoryService
from codetune_studio.services.queue import QueueService
from codetune_studio.services.sweeps import expand_sweep, parse_grid, queue_sweep
from codetune_studio.storage.db import Database

if TYPE_CHECKING:
    from collections.abc import Iterator

    from codetune_studio.core.comparison import RunResults

pytestmark = pytest.mark.integration


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.connect(database_url, connect_timeout=5)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def experiments(database: Database) -> ExperimentService:
    return ExperimentService(database)


@pytest.fixture
def history(database: Database) -> RunHistoryService:
    return RunHistoryService(database)


@pytest.fixture
def queue(database: Database) -> QueueService:
    return QueueService(database)


def _recipe(**training: Any) -> TrainingRecipe:
    return TrainingRecipe.model_validate(
        {"model": "tiny-model", "dataset": {"path": "data.jsonl"}, "training": training}
    )


def _finished_run(
    experiments: ExperimentService,
    recipe: TrainingRecipe,
    *,
    losses: list[float],
    eval_loss: float | None = None,
    tokens_per_step: float = 100.0,
    name: str = "run",
    owner: str | None = None,
) -> int:
    run = experiments.create_run(name, recipe.model_dump(mode="json"), owner=owner)
    experiments.start_run(run.id, pid=1, total_steps=len(losses))
    points = []
    for step, loss in enumerate(losses, start=1):
        points += [
            MetricPoint(step, "loss", loss, 0.0),
            MetricPoint(step, "tokens", tokens_per_step, 0.0),
            MetricPoint(step, "tokens_per_second", 1000.0, 0.0),
            MetricPoint(step, "epoch", step / len(losses), 0.0),
            MetricPoint(step, "memory_mb", 100.0 + step, 0.0),
        ]
    if eval_loss is not None:
        points.append(MetricPoint(len(losses), "eval_loss", eval_loss, 0.0))
    experiments.record_metrics(run.id, points)
    experiments.finish_run(run.id, RunStatus.FINISHED)
    return run.id


def test_two_runs_with_different_learning_rates_differ_in_exactly_that_field(
    experiments: ExperimentService, history: RunHistoryService
) -> None:
    slow = _finished_run(experiments, _recipe(learning_rate=1e-4), losses=[3, 2], eval_loss=2.5)
    fast = _finished_run(experiments, _recipe(learning_rate=3e-4), losses=[3, 1], eval_loss=1.5)

    comparison = history.compare([slow, fast])

    assert list(comparison.differences) == ["training.learning_rate"]
    assert comparison.differences["training.learning_rate"] == {slow: 1e-4, fast: 3e-4}
    assert comparison.results[fast].final_loss == 1.0
    assert comparison.results[slow].best_eval_loss == 2.5
    assert comparison.results[fast].peak_memory_mb == 102.0
    assert comparison.best_run_id == fast
    payload = comparison.as_json()
    assert payload["differences"] == {"training.learning_rate": {str(slow): 1e-4, str(fast): 3e-4}}
    assert set(payload["results"]) == {str(slow), str(fast)}


def test_curves_by_tokens_seen_line_up_runs_of_different_batch_sizes(
    experiments: ExperimentService, history: RunHistoryService
) -> None:
    small = _finished_run(
        experiments, _recipe(per_device_train_batch_size=2), losses=[4, 3, 2, 1], tokens_per_step=64
    )
    large = _finished_run(
        experiments, _recipe(per_device_train_batch_size=4), losses=[4, 2], tokens_per_step=128
    )

    curves = {curve.run_id: curve for curve in history.curves([small, large], ["loss"])}

    assert x_values(curves[small], "tokens") == [64, 128, 192, 256]
    assert x_values(curves[large], "tokens") == [128, 256]
    # Both runs saw 256 tokens in the end, though one took twice the steps.
    assert x_values(curves[small], "step") == [1, 2, 3, 4]
    assert x_values(curves[large], "epoch") == [0.5, 1.0]


def test_following_a_run_reads_only_the_new_points_in_one_query(
    database: Database, experiments: ExperimentService, history: RunHistoryService
) -> None:
    run = experiments.create_run("live", _recipe().model_dump(mode="json"))
    experiments.record_metrics(
        run.id, [MetricPoint(s, n, float(s), 0.0) for s in range(1, 101) for n in ("loss", "lr")]
    )
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        new = history.new_points(run.id, after_step=98)
    finally:
        event.remove(database.engine, "before_cursor_execute", count)

    assert [(p.step, p.name) for p in new] == [(99, "loss"), (99, "lr"), (100, "loss"), (100, "lr")]
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert history.new_points(run.id, after_step=100) == []


def test_runs_list_filters_by_status_owner_tag_model_and_text(
    experiments: ExperimentService, history: RunHistoryService
) -> None:
    mine = _finished_run(experiments, _recipe(), losses=[1.0], name="baseline", owner="ada")
    theirs = _finished_run(experiments, _recipe(), losses=[2.0], name="wider", owner="bob")
    history.add_tags(mine, ["keep", "baseline"])
    history.set_note(theirs, "try a larger rank next")

    def ids(**kwargs: Any) -> list[int]:
        return [s.run.id for s in history.list_runs(RunFilter(**kwargs))]

    assert ids() == [theirs, mine]  # newest first
    assert ids(owner="ada") == [mine]
    assert ids(tag="keep") == [mine]
    assert ids(text="larger rank") == [theirs]
    assert ids(model="tiny") == [theirs, mine]
    assert ids(model="llama") == []
    assert ids(statuses=[RunStatus.FAILED]) == []
    summary = history.get_summary(mine)
    assert summary.run.tags == ["baseline", "keep"]
    assert summary.results.steps == 1
    assert summary.run.total_steps == 1
    assert history.set_tags(mine, []).tags == []


def test_lineage_of_a_resumed_and_of_a_cloned_run(
    experiments: ExperimentService, history: RunHistoryService, queue: QueueService
) -> None:
    first = experiments.create_run("first", _recipe().model_dump(mode="json"))
    experiments.finish_run(first.id, RunStatus.CANCELLED)
    resumed = experiments.create_run(
        "first", _recipe().model_dump(mode="json"), resumed_from_id=first.id
    )
    clone = queue.add(_recipe(learning_rate=1e-3), name="clone", parent_run_id=resumed.id)
    version = experiments.add_model_version(
        "clone adapter", path="/runs/x/adapter", base_model="tiny-model", run_id=clone.id
    )

    assert [(s.run_id, s.relation) for s in history.run_lineage(resumed.id)] == [
        (resumed.id, ""),
        (first.id, "resumed from"),
    ]
    chain = history.model_lineage(version.id)
    assert [v.id for v, _ in chain] == [version.id]
    assert [(s.run_id, s.relation) for s in chain[0][1]] == [
        (clone.id, ""),
        (resumed.id, "cloned from"),
        (first.id, "resumed from"),
    ]


def test_the_queue_survives_a_restart_in_order_and_can_be_reordered(database_url: str) -> None:
    db = Database.connect(database_url, connect_timeout=5)
    db.upgrade()
    queue = QueueService(db)
    ids = [queue.add(_recipe(seed=seed), name=f"q{seed}").id for seed in range(3)]
    db.dispose()  # the window closes

    reopened = Database.connect(database_url, connect_timeout=5)
    try:
        queue = QueueService(reopened)
        listed = queue.list_queued()
        assert [run.id for run in listed] == ids
        assert {run.status for run in listed} == {RunStatus.QUEUED}
        assert [run.id for run in queue.move(ids[2], 0)] == [ids[2], ids[0], ids[1]]
        queue.remove(ids[0])
        assert [run.id for run in queue.list_queued()] == [ids[2], ids[1]]
        claimed = queue.claim(host="gpu-box", pid=7)
        assert claimed is not None
        assert claimed.id == ids[2]
        assert claimed.status is RunStatus.PENDING
        assert claimed.host == "gpu-box"
        with pytest.raises(ConflictError, match="no longer queued"):
            queue.remove(ids[2])
    finally:
        reopened.dispose()


def test_concurrent_claims_take_each_queued_run_exactly_once(database_url: str) -> None:
    setup = Database.connect(database_url, connect_timeout=5)
    setup.upgrade()
    queued = {QueueService(setup).add(_recipe(seed=i), name=f"r{i}").id for i in range(12)}
    setup.dispose()
    taken: list[tuple[int, int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(3)

    def worker(number: int) -> None:
        db = Database.connect(database_url, connect_timeout=5)
        try:
            service = QueueService(db)
            barrier.wait()
            while (run := service.claim(host=f"box{number}", pid=number)) is not None:
                with lock:
                    taken.append((run.id, number))
                time.sleep(0.01)
        finally:
            db.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(run_id for run_id, _ in taken) == sorted(queued)


def test_a_2x2_sweep_queues_four_runs_and_its_comparison_marks_the_best(
    experiments: ExperimentService, history: RunHistoryService, queue: QueueService
) -> None:
    base = _recipe()
    variants = expand_sweep(base, parse_grid(["training.learning_rate=1e-4,3e-4", "lora.r=8,16"]))
    sweep = queue_sweep(queue, base, variants, name="grid")
    assert len(sweep.runs) == 4
    assert {run.sweep_id for run in sweep.runs} == {sweep.sweep_id}
    assert sweep.runs[0].name == "grid [learning_rate=1e-4 r=8]"
    # Pretend a worker trained them, each reaching a different eval loss.
    for index, run in enumerate(sweep.runs):
        claimed = queue.claim(host="box", pid=1)
        assert claimed is not None
        assert claimed.id == run.id
        experiments.start_run(run.id, pid=1)
        experiments.record_metrics(
            run.id,
            [
                MetricPoint(1, "loss", 2.0, 0.0),
                MetricPoint(1, "eval_loss", [3, 1, 4, 2][index], 0.0),
            ],
        )
        experiments.finish_run(run.id, RunStatus.FINISHED)

    members = [s.run.id for s in history.list_runs(RunFilter(sweep_id=sweep.sweep_id))]
    comparison = history.compare(sorted(members))

    assert sorted(comparison.differences) == ["lora.r", "training.learning_rate"]
    assert comparison.best_run_id == sweep.runs[1].id
    assert history.compare(sorted(members), metric="loss").best_run_id is not None


def test_a_random_sample_of_a_grid_is_repeatable_with_its_seed() -> None:
    grid = parse_grid(["training.learning_rate=1e-4,2e-4,3e-4", "lora.r=4,8,16"])
    first = expand_sweep(_recipe(), grid, sample=4, seed=7)
    again = expand_sweep(_recipe(), grid, sample=4, seed=7)
    assert len(first) == 4
    assert [v.overrides for v in first] == [v.overrides for v in again]


def _ended_and_live_runs_with_stale_results(
    experiments: ExperimentService,
) -> tuple[int, int, RunResults]:
    """A finished run (final loss 1.0), a running one (3.0), and results that match neither."""
    from codetune_studio.core.comparison import RunResults

    ended = _finished_run(experiments, _recipe(), losses=[2.0, 1.0])
    live = experiments.create_run("live", _recipe().model_dump(mode="json"))
    experiments.start_run(live.id, pid=1)
    experiments.record_metrics(live.id, [MetricPoint(1, "loss", 3.0, 0.0)])
    return ended, live.id, RunResults(final_loss=99.0)


def test_refreshing_the_list_reuses_the_known_results_of_ended_runs_only(
    experiments: ExperimentService, history: RunHistoryService
) -> None:
    ended, live, stale = _ended_and_live_runs_with_stale_results(experiments)

    summaries = {s.run.id: s.results for s in history.list_runs(known={ended: stale, live: stale})}

    assert summaries[ended].final_loss == 99.0  # an ended run's results cannot change
    assert summaries[live].final_loss == 3.0  # a live run's are read again


def test_a_comparison_reuses_the_known_results_of_ended_runs_only(
    experiments: ExperimentService, history: RunHistoryService
) -> None:
    """The window passes the runs view's results: ended runs are not aggregated again."""
    ended, live, stale = _ended_and_live_runs_with_stale_results(experiments)

    comparison = history.compare([ended, live], known={ended: stale, live: stale})

    assert comparison.results[ended].final_loss == 99.0  # an ended run's results cannot change
    assert comparison.results[live].final_loss == 3.0  # a live run's are read again
    assert history.compare([ended, live]).results[ended].final_loss == 1.0


def test_long_curves_are_thinned_in_the_database_keeping_the_last_step(
    experiments: ExperimentService, history: RunHistoryService
) -> None:
    run_id = _finished_run(experiments, _recipe(), losses=[1.0] * 2000, tokens_per_step=10)

    (curve,) = history.curves([run_id], ["loss"], max_points=100)

    assert 100 <= len(curve.steps) <= 102
    assert curve.steps[-1] == 2000
    assert curve.steps == sorted(curve.steps)
    assert curve.tokens[-1] == 20_000  # every step's tokens counted, not only the kept ones


def _plain_curve(
    experiments: ExperimentService, run_id: int, name: str, steps: list[int]
) -> tuple[list[float], list[float], list[float]]:
    """A curve's values, tokens seen and epochs at ``steps``, from the plain per-metric reads.

    Tokens seen: each token count read stands for the steps since the previous one read.
    """
    values = {p.step: p.value for p in experiments.metric_curve(run_id, name)}
    epochs = {p.step: p.value for p in experiments.metric_curve(run_id, "epoch")}
    read_tokens = [p for p in experiments.metric_curve(run_id, "tokens") if p.step in steps]
    totals, total, previous = [], 0.0, 0
    for point in read_tokens:
        total += point.value * (point.step - previous) if math.isfinite(point.value) else 0.0
        previous = point.step
        totals.append((point.step, total))
    tokens = [max((t for s, t in totals if s <= step), default=math.nan) for step in steps]
    return (
        [values[step] for step in steps],
        tokens,
        [epochs.get(step, math.nan) for step in steps],
    )


@pytest.mark.parametrize("max_points", [None, 7])
def test_compared_curves_match_the_plain_reads_nan_gaps_and_thinning_included(
    experiments: ExperimentService, history: RunHistoryService, max_points: int | None
) -> None:
    """The comparison's read (NumPy arrays straight from the cursor) says what plain reads say.

    Two runs of different lengths; a NaN loss (stored as NULL), token counts logged only every
    other step and an epoch that is missing at some steps; thinned or not.
    """
    runs: list[int] = []
    for length, tokens_per_step in ((30, 64.0), (45, 128.0)):
        run = experiments.create_run("cmp", _recipe().model_dump(mode="json"))
        experiments.start_run(run.id, pid=1, total_steps=length)
        points = []
        for step in range(1, length + 1):
            loss = math.nan if step == 12 else 3.0 / step + tokens_per_step / 1e4
            points.append(MetricPoint(step, "loss", loss, 0.0))
            if step % 2 == 0:
                points.append(MetricPoint(step, "tokens", tokens_per_step, 0.0))
            if step % 5:
                points.append(MetricPoint(step, "epoch", step / length, 0.0))
        experiments.record_metrics(run.id, points)
        experiments.finish_run(run.id, RunStatus.FINISHED)
        runs.append(run.id)

    curves = history.curves(runs, ["loss", "grad_norm"], max_points=max_points)

    assert [(c.run_id, c.name) for c in curves] == [
        (runs[0], "loss"),
        (runs[0], "grad_norm"),
        (runs[1], "loss"),
        (runs[1], "grad_norm"),
    ]
    for curve in curves:
        if curve.name == "grad_norm":  # never logged: an empty curve
            assert (curve.steps, curve.values, curve.tokens, curve.epochs) == ([], [], [], [])
            continue
        last = 30 if curve.run_id == runs[0] else 45
        stride = max(1, last // max_points) if max_points else 1
        expected_steps = [s for s in range(1, last + 1) if s % stride == 0 or s == last]
        assert curve.steps == expected_steps
        assert all(type(step) is int for step in curve.steps)
        values, tokens, epochs = _plain_curve(experiments, curve.run_id, "loss", curve.steps)
        assert curve.values == pytest.approx(values, nan_ok=True)
        assert curve.tokens == pytest.approx(tokens, nan_ok=True)
        assert curve.epochs == pytest.approx(epochs, nan_ok=True)
    if max_points is None:
        # Unthinned, tokens seen are exact: 64 per step over 30 steps.
        assert curves[0].tokens[-1] == 64.0 * 30
        assert math.isnan(curves[0].values[11])
        assert math.isnan(curves[0].tokens[0])  # no tokens logged by step 1
