"""Metric rows per second: batched inserts against one commit per row, on SQLite and PostgreSQL.

Run with ``python benchmarks/metrics_insert.py``. PostgreSQL comes from
``CODETUNE_TEST_POSTGRES_URL`` (default: the local trust-auth server); a temporary database is
created and dropped. Both paths go through ``ExperimentService.record_metrics``, which is what the
worker calls, so the numbers include the session and the run check each call makes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from codetune_studio.core.models import MetricPoint
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.storage.db import Database

if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _points(count: int, offset: int = 0) -> list[MetricPoint]:
    now = time.time()
    return [
        MetricPoint(step=offset + i, name="train/loss", value=1.0 / (1 + offset + i), wall_time=now)
        for i in range(count)
    ]


def _batched(service: ExperimentService, batches: int, size: int) -> tuple[int, float]:
    run = service.create_run("batched", {})
    started = time.perf_counter()
    for b in range(batches):
        service.record_metrics(run.id, _points(size, b * size))
    elapsed = time.perf_counter() - started
    assert len(service.metric_curve(run.id, "train/loss")) == batches * size
    return batches * size, elapsed


def _per_row(service: ExperimentService, rows: int) -> tuple[int, float]:
    run = service.create_run("per-row", {})
    points = _points(rows)
    started = time.perf_counter()
    for point in points:
        service.record_metrics(run.id, [point])
    elapsed = time.perf_counter() - started
    assert len(service.metric_curve(run.id, "train/loss")) == rows
    return rows, elapsed


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


def _measure(url: str, batches: int, size: int, rows: int) -> list[tuple[str, int, float]]:
    db = Database.connect(url)
    try:
        db.upgrade()
        service = ExperimentService(db)
        service.record_metrics(service.create_run("warm-up", {}).id, _points(50))
        batched = _batched(service, batches, size)
        single = _per_row(service, rows)
    finally:
        db.dispose()
    return [
        (f"batched ({batches} x {size})", *batched),
        (f"one commit per row ({rows})", *single),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rows", type=int, default=2_000)
    args = parser.parse_args()
    server = os.environ.get("CODETUNE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES

    results: list[tuple[str, str, int, float]] = []
    with _sqlite() as url:
        results += [
            ("SQLite", *row) for row in _measure(url, args.batches, args.batch_size, args.rows)
        ]
    try:
        with _postgres(server) as url:
            results += [
                ("PostgreSQL", *row)
                for row in _measure(url, args.batches, args.batch_size, args.rows)
            ]
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL skipped: {str(exc.orig).splitlines()[0]}")

    header = f"| {'backend':<10} | {'mode':<26} | {'rows':>6} | {'seconds':>7} | {'rows/s':>9} | {'vs per-row':>10} |"
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    per_row = {backend: rows / secs for backend, mode, rows, secs in results if "per row" in mode}
    for backend, mode, rows, secs in results:
        rate = rows / secs
        ratio = rate / per_row[backend]
        print(
            f"| {backend:<10} | {mode:<26} | {rows:>6} | {secs:>7.2f} | {rate:>9,.0f} | {ratio:>9.1f}x |"
        )


if __name__ == "__main__":
    main()
