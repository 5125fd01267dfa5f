"""Metric rows per second: batched inserts against one commit per row, on SQLite and PostgreSQL.

Run with ``python benchmarks/metrics_insert.py [--rows 2000] [--batch-size 500] [--repeats 5]``.
PostgreSQL comes from ``CODETUNE_TEST_POSTGRES_URL`` (default: the local trust-auth server); a
temporary database is created and dropped. Both paths go through
``ExperimentService.record_metrics``, which is what the worker calls, so the numbers include the
session and the run check each call makes.

A fair comparison: both modes insert the same number of rows, into a fresh run each time, and the
repeats are interleaved with the order alternating (batched first, then per-row first, ...) so
that neither mode always runs on a warmer cache or a fuller table. The table shows the median of
the repeats, the spread (min-max), and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from codetune_studio.core.models import MetricPoint
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.storage.db import Database

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BATCHED = "batched"
PER_ROW = "per-row"


@dataclass
class Timings:
    """Seconds per repeat for one backend and one mode."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The median of the repeats."""
        return statistics.median(self.seconds)


def _points(count: int, offset: int = 0) -> list[MetricPoint]:
    now = time.time()
    return [
        MetricPoint(step=offset + i, name="train/loss", value=1.0 / (1 + offset + i), wall_time=now)
        for i in range(count)
    ]


def _batched(service: ExperimentService, rows: int, size: int) -> float:
    run = service.create_run(BATCHED, {})
    points = _points(rows)
    started = time.perf_counter()
    for start in range(0, rows, size):
        service.record_metrics(run.id, points[start : start + size])
    elapsed = time.perf_counter() - started
    assert len(service.metric_curve(run.id, "train/loss")) == rows
    return elapsed


def _per_row(service: ExperimentService, rows: int) -> float:
    run = service.create_run(PER_ROW, {})
    points = _points(rows)
    started = time.perf_counter()
    for point in points:
        service.record_metrics(run.id, [point])
    elapsed = time.perf_counter() - started
    assert len(service.metric_curve(run.id, "train/loss")) == rows
    return elapsed


@contextmanager
def _sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


@contextmanager
def _postgres(server: str) -> Iterator[str]:
    name = f"codetune_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _measure(url: str, rows: int, size: int, repeats: int) -> dict[str, Timings]:
    """Time both modes ``repeats`` times each, interleaved, alternating which goes first."""
    db = Database.connect(url)
    timings = {BATCHED: Timings(), PER_ROW: Timings()}
    try:
        db.upgrade()
        service = ExperimentService(db)
        service.record_metrics(service.create_run("warm-up", {}).id, _points(50))
        modes: dict[str, Callable[[], float]] = {
            BATCHED: lambda: _batched(service, rows, size),
            PER_ROW: lambda: _per_row(service, rows),
        }
        for repeat in range(repeats):
            order = [BATCHED, PER_ROW] if repeat % 2 == 0 else [PER_ROW, BATCHED]
            for mode in order:
                timings[mode].seconds.append(modes[mode]())
    finally:
        db.dispose()
    return timings


def _table(results: dict[str, dict[str, Timings]], rows: int) -> list[str]:
    header = (
        f"| {'backend':<10} | {'mode':<8} | {'rows':>6} | {'median s':>8} | {'min-max s':>11} "
        f"| {'rows/s (median)':>15} | {'batched / per-row':>17} |"
    )
    lines = [header, "|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|"]
    for backend, timings in results.items():
        speedup = timings[PER_ROW].median / timings[BATCHED].median
        for mode, timing in timings.items():
            spread = f"{min(timing.seconds):.2f}-{max(timing.seconds):.2f}"
            ratio = f"{speedup:.1f}x" if mode == BATCHED else "1.0x"
            lines.append(
                f"| {backend:<10} | {mode:<8} | {rows:>6} | {timing.median:>8.3f} | {spread:>11} "
                f"| {rows / timing.median:>15,.0f} | {ratio:>17} |"
            )
    return lines


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000, help="rows per mode and repeat")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5, help="repeats per mode, interleaved")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    server = os.environ.get("CODETUNE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES

    results: dict[str, dict[str, Timings]] = {}
    with _sqlite() as url:
        results["SQLite"] = _measure(url, args.rows, args.batch_size, args.repeats)
    if not args.sqlite_only:
        try:
            with _postgres(server) as url:
                results["PostgreSQL"] = _measure(url, args.rows, args.batch_size, args.repeats)
        except sa.exc.OperationalError as exc:
            print(f"PostgreSQL skipped: {str(exc.orig).splitlines()[0]}")
    print(
        f"{args.rows} rows per mode, batches of {args.batch_size}, {args.repeats} interleaved "
        "repeats (order alternating), median of the repeats"
    )
    print("\n".join(_table(results, args.rows)))


if __name__ == "__main__":
    main()
