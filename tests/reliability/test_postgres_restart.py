"""PostgreSQL restarted (or down for a few seconds) while a worker trains against it.

A real server restart, not dropped connections: each test starts its own private cluster
(``private_postgres.py``; the shared server on 5432 is never touched), starts a recording
worker against it and, once the first step is logged, either restarts the server with
``pg_ctl restart -m fast`` or stops it, keeps it down for a few seconds while training goes on,
and starts it again. The worker buffers its metrics across the outage and writes them after
reconnecting: every step's loss ends in the database exactly once, with the value the worker
logged, and the run ends FINISHED with exit status 0.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from codetune_studio.core.status import RunStatus
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService
from tests.reliability.harness import TRIALS, Worker, event_kind, start_worker
from tests.reliability.private_postgres import PrivateCluster, private_cluster
from tests.trainer_helpers import save_tiny_model, write_completion_dataset, write_recipe

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import Any

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

#: Enough steps that training usually goes on after the server is back (the worker is paced
#: with SIGSTOP where the order matters, so a fast machine cannot finish during the outage).
STEPS = 120
#: How long the "down, then up" variant keeps the server stopped at least.
DOWN_S = 4.0
#: Steps the worker logs with the server down before it may come back.
DOWN_STEPS = 10
#: Only under ``make reliability``; CI runs the restart variant (the same code path, faster).
FULL_RUN = "CODETUNE_RELIABILITY_TRIALS" in os.environ
#: One restart in CI; two of each variant under ``make reliability`` (TRIALS=20).
RESTART_TRIALS = max(1, TRIALS // 10)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("restart")
    return save_tiny_model(root / "model"), write_completion_dataset(root / "data.jsonl")


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster this test may restart; removed afterwards."""
    with private_cluster() as started:
        yield started


def _losses(events: list[dict[str, Any]]) -> dict[int, float]:
    return {
        int(e["step"]): float(e["metrics"]["loss"])
        for e in events
        if event_kind(e) == "metrics_logged" and "loss" in e.get("metrics", {})
    }


def _server_started_at(url: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT pg_postmaster_start_time()")).scalar_one()
    finally:
        engine.dispose()


def _duplicate_metric_rows(url: str, run_id: int) -> list[tuple[str, int, int]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT name, step, count(*) FROM metrics WHERE run_id = :r "
                    "GROUP BY name, step HAVING count(*) > 1"
                ),
                {"r": run_id},
            ).all()
    finally:
        engine.dispose()
    return [(str(n), int(s), int(c)) for n, s, c in rows]


@contextmanager
def _paused(worker: Worker) -> Iterator[None]:
    """Freeze the worker (SIGSTOP) so that what follows happens between two of its steps."""
    alive = worker.process.poll() is None
    if alive:
        worker.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        if alive and worker.process.poll() is None:
            worker.process.send_signal(signal.SIGCONT)


def _train_through_outage(
    cluster: PrivateCluster,
    assets: tuple[Path, Path],
    tmp_path: Path,
    outage: Callable[[Worker], None],
    record_property: Callable[[str, object], None],
) -> Worker:
    """Train STEPS steps against the cluster with ``outage`` after the first logged step."""
    model, data = assets
    recipe = write_recipe(tmp_path / "r.json", model, data, max_steps=STEPS)
    url = cluster.create_database()
    opened = open_database(url, sqlite_path=tmp_path / "unused.db", allow_fallback=False)
    try:
        run = ExperimentService(opened.database).create_run("restart", {})
    finally:
        opened.close()  # the test holds no connection across the outage
    started_at = _server_started_at(url)
    worker = start_worker(
        recipe=recipe,
        run_id=run.id,
        output_dir=tmp_path / "run",
        data_dir=tmp_path,
        spool=tmp_path / "spool",
        database_url=url,
    )
    log = tmp_path / "spool" / "worker.log"
    try:
        before = _losses(worker.wait_for(_losses))
        assert worker.process.poll() is None, f"the worker ended before the outage: {log}"
        assert len(before) < STEPS, "training finished before the outage; raise STEPS"
        outage(worker)
        during = _losses(worker.read_events())
        returncode = worker.process.wait(timeout=600)
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
    assert returncode == 0, log.read_text()
    assert _server_started_at(url) != started_at  # the server really went away and came back
    logged = _losses(worker.read_events())
    assert sorted(logged) == list(range(1, STEPS + 1))
    # Training went on across the outage: steps were logged after it began.
    assert len(logged) > len(before)
    record_property(
        "steps logged before / during / after the outage",
        f"{len(before)} / {len(during) - len(before)} / {len(logged) - len(during)}",
    )
    record_property("metric writes failed and kept", log.read_text().count("will retry"))

    opened = open_database(url, sqlite_path=tmp_path / "unused.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        finished = experiments.get_run(run.id)
        assert finished.status is RunStatus.FINISHED, finished.error
        assert finished.error is None
        stored = {p.step: p.value for p in experiments.metric_curve(run.id, "loss")}
    finally:
        opened.close()
    # Nothing lost, nothing garbled: every logged loss is stored with the value logged...
    assert stored == pytest.approx(logged)
    # ...and nothing duplicated.
    assert _duplicate_metric_rows(url, run.id) == []
    return worker


@pytest.mark.parametrize("trial", range(RESTART_TRIALS))
def test_postgres_restarted_mid_run_loses_no_metric(
    trial: int,
    cluster: PrivateCluster,
    assets: tuple[Path, Path],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    # The worker trains on while the server restarts under it.
    _train_through_outage(
        cluster, assets, tmp_path, lambda _worker: cluster.restart(), record_property
    )


@pytest.mark.skipif(
    not FULL_RUN, reason="make reliability only; CI runs the restart variant of this scenario"
)
@pytest.mark.parametrize("trial", range(RESTART_TRIALS))
def test_postgres_down_for_seconds_mid_run_loses_no_metric(
    trial: int,
    cluster: PrivateCluster,
    assets: tuple[Path, Path],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    worker_log = tmp_path / "spool" / "worker.log"

    def down_then_up(worker: Worker) -> None:
        stopped = time.monotonic()
        with _paused(worker):
            cluster.stop()
            first = len(_losses(worker.read_events()))
        # Training goes on with the server down until a metric write has failed and been kept
        # for the retry (a batch is due every 2 s) and DOWN_STEPS steps wait in the buffer...
        end = time.monotonic() + 120
        while worker.process.poll() is None and not (
            "will retry" in worker_log.read_text()
            and len(_losses(worker.read_events())) >= first + DOWN_STEPS
        ):
            assert time.monotonic() < end, "the worker never tried to write during the outage"
            time.sleep(0.02)
        # ...then, between two of its steps, the server stays down for the rest of DOWN_S and
        # comes back, so the buffered points are written while the run still trains.
        with _paused(worker):
            time.sleep(max(0.0, DOWN_S - (time.monotonic() - stopped)))
            cluster.start()

    _train_through_outage(cluster, assets, tmp_path, down_then_up, record_property)
    assert "will retry" in worker_log.read_text()
    record_property("down for at least", f"{DOWN_S:g} s")


def _fail_inside_a_cluster(seen: dict[str, Any]) -> None:
    with private_cluster() as started:
        seen["folder"], seen["url"] = started.folder, started.url("postgres")
        assert _server_started_at(seen["url"]) is not None
        raise RuntimeError("the test failed")


def test_the_private_cluster_is_stopped_and_removed_when_a_test_fails() -> None:
    seen: dict[str, Any] = {}
    with pytest.raises(RuntimeError, match="the test failed"):
        _fail_inside_a_cluster(seen)
    assert not seen["folder"].exists()
    engine = sa.create_engine(seen["url"], connect_args={"connect_timeout": 2})
    try:
        with pytest.raises(sa.exc.OperationalError), engine.connect():
            pass  # nothing listens on its port any more
    finally:
        engine.dispose()


@pytest.mark.parametrize("ci", ["", "true"], ids=["local", "ci"])
def test_without_a_cluster_it_skips_saying_why_except_under_ci_where_it_fails(
    ci: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.reliability import private_postgres

    monkeypatch.setattr(private_postgres, "why_unavailable", lambda: "no initdb here")
    monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="no initdb here"), private_cluster():
        pass
