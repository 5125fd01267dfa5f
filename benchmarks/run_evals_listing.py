"""What showing code evaluations with runs costs: the runs list refresh and the Eval panel's list.

Measures, on one database filled with ``--runs`` finished runs (each with a model version) and
``--evals`` stored evaluations spread over them (tuned and base rows, each with ``--tasks`` tasks
of ``--samples`` samples of about 600 characters, like a real drill-down):

* **Runs list refresh** (the runs view every few seconds, ended runs' training results cached):
  statements and wall time per refresh, with the evaluations' pass@1 read alongside.
* **Eval list** (the Eval panel, ``eval list``): wall time reading the newest 100 evaluations
  with their per-task outcomes (as before) and without them (as the list now reads them).

Usage::

    .venv/bin/python benchmarks/run_evals_listing.py [--runs 500] [--evals 200] [--tasks 28]
        [--samples 5] [--repeat 20] [--postgres SERVER_URL]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

if TYPE_CHECKING:
    from collections.abc import Iterator


def _populate(database: Any, runs: int, evals: int, tasks: int, samples: int) -> list[int]:
    from codetune_studio.core.models import MetricPoint
    from codetune_studio.core.status import RunStatus
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.storage.evaluations import EvalResultRepository

    experiments = ExperimentService(database)
    versions: list[int] = []
    for index in range(runs):
        run = experiments.create_run(f"bench-{index}", {"model": "starter", "seed": index})
        experiments.start_run(run.id, pid=1, total_steps=10)
        experiments.record_metrics(
            run.id, [MetricPoint(step, "loss", 1.0 / step, 0.0) for step in range(1, 11)]
        )
        experiments.finish_run(run.id, RunStatus.FINISHED)
        stored = experiments.add_model_version(
            f"v{index}", path=f"/runs/{index}/adapter", base_model="starter", run_id=run.id
        )
        versions.append(stored.id)
    sample = {
        "sample": 0, "completion": "x" * 600, "code": "y" * 600, "parsed": True, "passed": True,
        "reason": "passed", "output": "", "stop_reason": "eos", "tokens": 120, "findings": [],
    }  # fmt: skip
    outcome = {"task_id": "t", "prompt": "p" * 200, "tests": "assert f()", "samples": []}
    per_task = [{**outcome, "samples": [sample] * samples} for _ in range(tasks)]
    metrics = {
        "pass_at_k": {"1": 0.5, str(samples): 0.7}, "parse_rate": 1.0, "eos_rate": 1.0,
        "mean_tokens": 120.0, "findings_per_sample": 0.0, "isolation": "namespaces",
    }  # fmt: skip
    with database.unit_of_work() as session:
        repo = EvalResultRepository(session)
        for index in range(evals // 2):
            version = versions[index % len(versions)]
            rows = [
                repo.add(
                    label=f"v:{version}",
                    variant=variant,
                    task_source="/tasks.jsonl",
                    samples_per_task=samples,
                    temperature=0.8,
                    pass_at_1=0.5,
                    metrics=metrics,
                    tasks=per_task,
                    model_version_id=version,
                )
                for variant in ("tuned", "base")
            ]
            repo.link_base(rows[0], rows[1])
    return versions


def _timed(work: Any, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, max(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=28)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="a PostgreSQL server: the benchmark creates its own database there and drops it "
        "(default: a fresh SQLite file)",
    )
    args = parser.parse_args()

    from codetune_studio.storage.db import Database

    folder = Path(tempfile.mkdtemp(prefix="codetune-bench-evals-"))
    with _scratch_database(args.postgres, folder) as url:
        _measure(Database.connect(url), args)


@contextlib.contextmanager
def _scratch_database(server: str | None, folder: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or one of its own on the PostgreSQL server, dropped."""
    if server is None:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    import sqlalchemy as sa

    name = f"codetune_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _measure(database: Any, args: argparse.Namespace) -> None:
    from sqlalchemy import event

    from codetune_studio.services.evaluation import EvalService
    from codetune_studio.services.history import RunFilter, RunHistoryService
    from codetune_studio.storage.evaluations import EvalResultRepository

    database.upgrade()
    _populate(database, args.runs, args.evals, args.tasks, args.samples)
    history = RunHistoryService(database)
    known = {s.run.id: s.results for s in history.list_runs(RunFilter(limit=500))}
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    summaries = history.list_runs(RunFilter(limit=500), known=known)
    event.remove(database.engine, "before_cursor_execute", count)
    evaluated = sum(s.results.pass_at_1 is not None for s in summaries)
    refresh = _timed(lambda: history.list_runs(RunFilter(limit=500), known=known), args.repeat)
    # The same refresh without the evaluations' query: what it cost before they were shown.
    with mock.patch.object(EvalResultRepository, "scores_of_runs", return_value=[]):
        bare = _timed(lambda: history.list_runs(RunFilter(limit=500), known=known), args.repeat)
    print(f"database: {database.url_masked}")
    print(
        f"runs list refresh ({len(summaries)} runs, {evaluated} with a pass@1): "
        f"{len(statements)} statements, median {refresh[0]:.1f} ms, max {refresh[1]:.1f} ms; "
        f"without reading evaluations median {bare[0]:.1f} ms"
    )
    service = EvalService(database, sandbox=object())  # type: ignore[arg-type]
    full = _timed(lambda: service.list_results(with_tasks=True), args.repeat)
    light = _timed(lambda: service.list_results(with_tasks=False), args.repeat)
    print(
        f"eval list (newest 100 of {args.evals}, {args.tasks} tasks x {args.samples} samples): "
        f"with tasks median {full[0]:.1f} ms, without median {light[0]:.1f} ms "
        f"({full[0] / max(light[0], 1e-9):.0f}x)"
    )
    database.dispose()


if __name__ == "__main__":
    main()
