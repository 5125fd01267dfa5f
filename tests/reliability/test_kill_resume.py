"""SIGKILL the training worker at random moments, then resume: nothing is lost or corrupted.

Each trial kills a real worker (recording to SQLite, checkpointing every step) after a random
number of events plus a random delay, so the kill lands inside a step, during a checkpoint write
or during a metric flush. Then: every checkpoint on disk loads (its manifest verifies) or is an
ignored ``.tmp``; SQLite's integrity check passes; the metric rows committed before the kill are
still there, once each; the run resumed from the newest checkpoint replays exactly the losses of
an uninterrupted run; and the killed run is marked FAILED by whoever looks.
"""

from __future__ import annotations

import random
import signal
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from codetune_studio.core.status import RunStatus
from codetune_studio.engine.checkpoint import find_checkpoints, verify_manifest
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.services.runs import sweep_lost_runs
from tests.reliability.harness import TRIALS, event_kind, start_worker
from tests.trainer_helpers import save_tiny_model, write_completion_dataset, write_recipe

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

MAX_STEPS = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, float]]:
    """A recipe and the losses of an uninterrupted worker run of it."""
    root = tmp_path_factory.mktemp("kill")
    model = save_tiny_model(root / "model")
    data = write_completion_dataset(root / "data.jsonl")
    recipe = write_recipe(root / "recipe.json", model, data, max_steps=MAX_STEPS, save_steps=1)
    home = root / "baseline"
    opened = open_database(None, sqlite_path=home / "studio.db", allow_fallback=False)
    try:
        experiments = ExperimentService(opened.database)
        run = experiments.create_run("baseline", {})
        worker = start_worker(
            recipe=recipe, run_id=run.id, output_dir=home / "run", data_dir=home, spool=home
        )
        assert worker.process.wait(timeout=600) == 0, (home / "worker.log").read_text()
        curve = {p.step: p.value for p in experiments.metric_curve(run.id, "loss")}
    finally:
        opened.close()
    assert sorted(curve) == list(range(1, MAX_STEPS + 1))
    return recipe, curve


def _metric_rows(url: str, run_id: int) -> list[tuple[str, int, float]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT name, step, value FROM metrics WHERE run_id = :r ORDER BY name, step"
                ),
                {"r": run_id},
            ).all()
    finally:
        engine.dispose()
    return [(str(n), int(s), float(v)) for n, s, v in rows]


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_then_resume_loses_nothing(
    setup: tuple[Path, dict[int, float]],
    tmp_path: Path,
    trial: int,
    record_property: Callable[[str, object], None],
) -> None:
    recipe, baseline = setup
    rng = random.Random(1000 + trial)  # noqa: S311 - reproducible kill moments, not crypto
    home, output = tmp_path / "home", tmp_path / "home" / "run"
    opened = open_database(None, sqlite_path=home / "studio.db", allow_fallback=False)
    database = opened.database
    try:
        experiments = ExperimentService(database)
        first = experiments.create_run("killed", {})
        worker = start_worker(
            recipe=recipe, run_id=first.id, output_dir=output, data_dir=home, spool=tmp_path / "a"
        )
        # Kill after a random number of metric/checkpoint events, plus a random delay.
        target = rng.randint(0, 2 * MAX_STEPS - 1)

        def reached(events: list[dict[str, object]]) -> bool:
            kinds = [event_kind(e) for e in events]
            return sum(k in {"metrics_logged", "checkpoint_saved"} for k in kinds) >= target

        events = worker.wait_for(reached)
        import time

        time.sleep(rng.uniform(0.0, 0.4))
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGKILL)
        else:
            record_property("note", "the worker finished before the kill")
        worker.process.wait(timeout=60)
        phase = event_kind(worker.read_events()[-1]) if worker.read_events() else "start-up"
        record_property("killed", f"after {len(events)} events, last {phase}")

        # Every checkpoint on disk loads or is an ignored, incomplete .tmp folder.
        folder = output / "checkpoints"
        complete = find_checkpoints(folder)
        for checkpoint in complete:
            verify_manifest(checkpoint)
        leftovers = [p for p in folder.iterdir() if p not in complete] if folder.is_dir() else []
        assert all(p.name.endswith((".tmp", ".old")) for p in leftovers), leftovers

        assert database.integrity_check() == []
        url = database.connection_url
        committed = _metric_rows(url, first.id)
        assert len({(n, s) for n, s, _ in committed}) == len(committed)  # no duplicates

        # Whoever looks next records the killed run as lost: RUNNING, or killed during start-up
        # (still PENDING; its pid, if it got as far as recording it, is dead).
        status = experiments.get_run(first.id).status
        later = datetime.now(UTC) + timedelta(minutes=6)
        swept = [r.id for r in sweep_lost_runs(experiments, now=later)]
        if status in {RunStatus.RUNNING, RunStatus.PENDING}:
            assert swept == [first.id]
            assert experiments.get_run(first.id).status is RunStatus.FAILED
        else:  # it finished before the kill
            assert status is RunStatus.FINISHED, status
            assert swept == []

        # Resume from the newest complete checkpoint (or start again without one).
        resume = complete[-1] if complete else None
        second = experiments.create_run("resumed", {}, resumed_from_id=first.id)
        resumed = start_worker(
            recipe=recipe,
            run_id=second.id,
            output_dir=output,
            data_dir=home,
            spool=tmp_path / "b",
            resume=resume,
        )
        assert resumed.process.wait(timeout=600) == 0, (tmp_path / "b" / "worker.log").read_text()
        assert experiments.get_run(second.id).status is RunStatus.FINISHED
        start = int(resume.name.split("-")[-1]) if resume else 0
        got = {p.step: p.value for p in experiments.metric_curve(second.id, "loss")}
        assert sorted(got) == list(range(start + 1, MAX_STEPS + 1))
        for step, value in got.items():
            assert value == pytest.approx(baseline[step], abs=1e-5), (step, value)
        # The killed run's committed rows survived the resume untouched.
        assert _metric_rows(url, first.id) == committed
        assert database.integrity_check() == []
    finally:
        opened.close()
