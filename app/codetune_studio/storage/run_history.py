"""Queries for the run history, the comparison, following a run, and the run queue.

Like :mod:`codetune_studio.storage.repositories`, each repository works inside the caller's
session and never commits. Reads are shaped for their screens: the runs list and the comparison
get their results for many runs in two aggregate queries, and following a run reads only the
points after the last step it has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from sqlalchemy import and_, case, func, or_, select, update

from codetune_studio.core.errors import ConflictError
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus
from codetune_studio.storage.orm import MetricRow, RunRow, utcnow
from codetune_studio.storage.repositories import RunRepository, _Repository

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import numpy as np
    from numpy.typing import NDArray

__all__ = ["CurvePoints", "MetricAggregate", "QueueRepository", "RunHistoryRepository"]


@dataclass(frozen=True, slots=True)
class MetricAggregate:
    """One metric of one run, summarised.

    Attributes:
        last_step: The highest step it was logged at.
        last: Its value at that step (NaN if not finite).
        minimum: Its lowest value.
        maximum: Its highest value.
        mean: Its mean value.
        total: The sum of its values.
        count: How many points it has.
    """

    last_step: int
    last: float
    minimum: float
    maximum: float
    mean: float
    total: float
    count: int


class CurvePoints(NamedTuple):
    """One metric of one run as read for a comparison, ordered by step.

    Attributes:
        steps: The steps read (int64).
        values: The values there (NaN where not finite).
        totals: The running total of ``value * steps since the previous point read`` (for
            ``tokens``: the tokens seen so far).
    """

    steps: NDArray[np.int64]
    values: NDArray[np.float64]
    totals: NDArray[np.float64]


class RunHistoryRepository(_Repository):
    """Finding, labelling and reading the results of past and running runs."""

    def search(
        self,
        *,
        statuses: Sequence[RunStatus] = (),
        owner: str | None = None,
        sweep_id: str | None = None,
        limit: int | None = None,
    ) -> list[RunRow]:
        """Runs newest first, filtered by what SQL can filter portably.

        Tags, model and free text live in JSON or are matched loosely; the service filters them.

        Args:
            statuses: Only runs in one of these statuses (all when empty).
            owner: Only this owner's runs.
            sweep_id: Only the runs of this sweep.
            limit: At most this many.
        """
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc())
        if statuses:
            query = query.where(RunRow.status.in_(list(statuses)))
        if owner is not None:
            query = query.where(RunRow.owner == owner)
        if sweep_id is not None:
            query = query.where(RunRow.sweep_id == sweep_id)
        if limit is not None:
            query = query.limit(limit)
        return list(self._session.scalars(query))

    def get_many(self, run_ids: Sequence[int]) -> list[RunRow]:
        """The runs with these ids, in the order given.

        Raises:
            NotFoundError: If one of them does not exist.
        """
        repo = RunRepository(self._session)
        return [repo.get(run_id) for run_id in run_ids]

    def set_tags(self, run_id: int, tags: Iterable[str]) -> RunRow:
        """Replace a run's tags (stored sorted, without duplicates or blanks)."""
        row = RunRepository(self._session).get(run_id)
        row.tags = sorted({tag.strip() for tag in tags if tag.strip()})
        self._session.flush()
        return row

    def set_note(self, run_id: int, note: str | None) -> RunRow:
        """Replace a run's note; an empty note clears it."""
        row = RunRepository(self._session).get(run_id)
        row.note = note.strip() if note and note.strip() else None
        self._session.flush()
        return row

    def set_progress_info(
        self, run_id: int, *, total_steps: int | None = None, log_path: str | None = None
    ) -> None:
        """Record how long a run will be and where its worker's log file is."""
        row = RunRepository(self._session).get(run_id)
        if total_steps is not None:
            row.total_steps = total_steps
        if log_path is not None:
            row.log_path = log_path
        self._session.flush()

    def aggregates(
        self, run_ids: Sequence[int], names: Sequence[str]
    ) -> dict[int, dict[str, MetricAggregate]]:
        """Summaries of some metrics of many runs, in two queries whatever the number of runs.

        Args:
            run_ids: The runs.
            names: The metric names to summarise.

        Returns:
            Run id to metric name to its summary; a metric a run never logged is absent.
        """
        if not run_ids or not names:
            return {}
        where = and_(MetricRow.run_id.in_(list(run_ids)), MetricRow.name.in_(list(names)))
        stats = (
            select(
                MetricRow.run_id,
                MetricRow.name,
                func.max(MetricRow.step).label("last_step"),
                func.min(MetricRow.value),
                func.max(MetricRow.value),
                func.avg(MetricRow.value),
                func.sum(MetricRow.value),
                func.count(),
            )
            .where(where)
            .group_by(MetricRow.run_id, MetricRow.name)
        )
        rows = list(self._session.execute(stats))
        last_steps = stats.subquery()
        # The value at each curve's last step: a join on the primary key, one more query.
        last = select(MetricRow.run_id, MetricRow.name, MetricRow.value).join(
            last_steps,
            and_(
                MetricRow.run_id == last_steps.c.run_id,
                MetricRow.name == last_steps.c.name,
                MetricRow.step == last_steps.c.last_step,
            ),
        )
        last_values = {(run, name): value for run, name, value in self._session.execute(last)}
        result: dict[int, dict[str, MetricAggregate]] = {}
        for run_id, name, last_step, low, high, mean, total, count in rows:
            result.setdefault(run_id, {})[name] = MetricAggregate(
                last_step=int(last_step),
                last=_number(last_values.get((run_id, name))),
                minimum=_number(low),
                maximum=_number(high),
                mean=_number(mean),
                total=_number(total),
                count=int(count),
            )
        return result

    def curves(
        self, run_ids: Sequence[int], names: Sequence[str], *, max_points: int | None = None
    ) -> dict[int, dict[str, CurvePoints]]:
        """Curves of some metrics of many runs, thinned in the database, as NumPy arrays.

        Each point comes with the running total of ``value * steps since the previous point
        read`` (for ``tokens``: the tokens seen so far; exact when every step is read and
        logged). With ``max_points``, a run's curves keep only the steps on a stride of
        ``last step // max_points`` plus the last step, so comparing a hundred 5,000-step runs
        reads about ``max_points`` rows per curve: one cheap ``MAX(step)`` query on the primary
        key, then one query per distinct stride.

        The rows go from the database driver's cursor straight into one NumPy array, plain
        numbers only (the metric's index among ``names``, and a NULL flag for NaN): no ORM or
        ``Row`` object and no Python loop per row. A comparison reads hundreds of thousands of
        rows on a worker thread; building Python objects for each held the interpreter lock
        (and fed the garbage collector) long enough to stall the window's painting.

        Returns:
            Run id to metric name to its points ordered by step.
        """
        import numpy as np

        if not run_ids or not names:
            return {}
        ids, metrics = list(run_ids), list(dict.fromkeys(names))
        strides: dict[int, list[int]] = {}
        last_steps: dict[int, int] = {}
        if max_points:
            last = select(MetricRow.run_id, func.max(MetricRow.step)).where(
                MetricRow.run_id.in_(ids), MetricRow.name.in_(metrics)
            )
            for run_id, step in self._session.execute(last.group_by(MetricRow.run_id)):
                last_steps[run_id] = int(step)
                strides.setdefault(max(1, int(step) // max_points), []).append(run_id)
        else:
            strides[1] = ids
        name_index = case(
            *[(MetricRow.name == name, index) for index, name in enumerate(metrics)], else_=-1
        )
        columns = (
            MetricRow.run_id,
            name_index,
            MetricRow.step,
            func.coalesce(MetricRow.value, 0.0),
            MetricRow.value.is_(None),
        )
        parts = []
        for stride, members in strides.items():
            query = select(*columns).where(
                MetricRow.run_id.in_(members), MetricRow.name.in_(metrics)
            )
            if stride > 1:
                wanted_last = [last_steps[run_id] for run_id in members]
                query = query.where(
                    or_(MetricRow.step % stride == 0, MetricRow.step.in_(wanted_last))
                )
            result = self._session.connection().execute(query)
            try:
                # The driver's own cursor yields plain tuples, which NumPy reads in C.
                rows = cast("Iterable[tuple[Any, ...]]", result.cursor)
                parts.append(np.fromiter(rows, dtype=_CURVE_ROW))
            finally:
                result.close()
        return _split_curves(
            np.concatenate(parts) if parts else np.zeros(0, dtype=_CURVE_ROW), metrics
        )

    def points_after(self, run_id: int, after_step: int) -> list[MetricPoint]:
        """Every metric point of a run logged at a step after ``after_step``, by step.

        Following a live run calls this with the last step it has, so each poll reads only the
        new points instead of every whole curve again.
        """
        query = (
            select(MetricRow.step, MetricRow.name, MetricRow.value, MetricRow.wall_time)
            .where(MetricRow.run_id == run_id, MetricRow.step > after_step)
            .order_by(MetricRow.step, MetricRow.name)
        )
        return [
            MetricPoint(step=step, name=name, value=_number(value), wall_time=wall_time)
            for step, name, value, wall_time in self._session.execute(query)
        ]

    def lineage(self, run_id: int) -> list[tuple[RunRow, str]]:
        """A run, then the run it resumed or was cloned from, and so on back to the first.

        Returns:
            ``(run, relation to the previous run)`` pairs; the first relation is ``""``.

        Raises:
            NotFoundError: If the run does not exist.
        """
        repo = RunRepository(self._session)
        chain: list[tuple[RunRow, str]] = [(repo.get(run_id), "")]
        seen = {run_id}
        while True:
            row = chain[-1][0]
            if row.resumed_from_id is not None:
                parent_id, relation = row.resumed_from_id, "resumed from"
            elif row.parent_run_id is not None:
                parent_id, relation = row.parent_run_id, "cloned from"
            else:
                break
            parent = self._session.get(RunRow, parent_id)
            if parent is None or parent_id in seen:
                break
            chain.append((parent, relation))
            seen.add(parent_id)
        return chain


class QueueRepository(_Repository):
    """The run queue: QUEUED runs in order, claimed by workers one at a time."""

    def enqueue(
        self,
        *,
        name: str,
        recipe: Mapping[str, Any],
        owner: str,
        host: str,
        sweep_id: str | None = None,
        parent_run_id: int | None = None,
    ) -> RunRow:
        """Add a run at the end of the queue.

        Returns:
            The new QUEUED run, flushed.
        """
        last = self._session.scalar(
            select(func.max(RunRow.queue_position)).where(RunRow.status == RunStatus.QUEUED)
        )
        row = RunRow(
            name=name,
            status=RunStatus.QUEUED,
            recipe=dict(recipe),
            owner=owner,
            host=host,
            tags=[],
            sweep_id=sweep_id,
            parent_run_id=parent_run_id,
            queue_position=(last or 0) + 1,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def queued(self) -> list[RunRow]:
        """The QUEUED runs in the order they will run."""
        query = (
            select(RunRow)
            .where(RunRow.status == RunStatus.QUEUED)
            .order_by(RunRow.queue_position, RunRow.id)
        )
        return list(self._session.scalars(query))

    def move(self, run_id: int, index: int) -> list[RunRow]:
        """Move a queued run to ``index`` (0: next to run) and renumber the queue.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If it is no longer queued (a worker took it).
        """
        row = self._queued(run_id)
        order = [other for other in self.queued() if other.id != row.id]
        order.insert(max(0, min(index, len(order))), row)
        for position, item in enumerate(order, start=1):
            item.queue_position = position
        self._session.flush()
        return order

    def remove(self, run_id: int) -> None:
        """Take a run off the queue (it is deleted; it never started).

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If it is no longer queued.
        """
        self._session.delete(self._queued(run_id))
        self._session.flush()

    def claim(self, *, host: str, pid: int) -> RunRow | None:
        """Take the next queued run for this worker, or ``None`` when the queue is empty.

        On PostgreSQL the candidate row is locked with ``FOR UPDATE SKIP LOCKED``: a second
        worker claiming at the same moment skips it and takes the next one, so no run is taken
        twice and no worker waits for another. SQLite has one writer at a time; there the claim
        is a compare-and-set ``UPDATE ... WHERE status = 'QUEUED'``, retried with the next
        candidate if another process won the race.

        Args:
            host: The claiming machine: the run's files will live there.
            pid: The claiming process.

        Returns:
            The claimed run, now PENDING on ``host``, or ``None``.
        """
        candidates = (
            select(RunRow.id)
            .where(RunRow.status == RunStatus.QUEUED)
            .order_by(RunRow.queue_position, RunRow.id)
        )
        if self._session.get_bind().dialect.name == "postgresql":
            run_id = self._session.scalar(candidates.limit(1).with_for_update(skip_locked=True))
            if run_id is None:
                return None
            return self._take(run_id, host, pid)
        for run_id in list(self._session.scalars(candidates.limit(20))):
            taken = self._session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.status == RunStatus.QUEUED)
                .values(status=RunStatus.PENDING, host=host, pid=pid, queue_position=None)
            )
            if getattr(taken, "rowcount", 0) == 1:
                row = self._session.get(RunRow, run_id, populate_existing=True)
                if row is not None:
                    row.heartbeat_at = utcnow()
                    self._session.flush()
                return row
        return None

    def _take(self, run_id: int, host: str, pid: int) -> RunRow:
        row = RunRepository(self._session).get(run_id)
        row.status = RunStatus.PENDING
        row.host = host
        row.pid = pid
        row.queue_position = None
        row.heartbeat_at = utcnow()
        self._session.flush()
        return row

    def _queued(self, run_id: int) -> RunRow:
        row = RunRepository(self._session).get(run_id)
        if row.status is not RunStatus.QUEUED:
            msg = f"Run {run_id} is {row.status.value}, no longer queued; a worker has taken it."
            raise ConflictError(msg)
        return row


#: One row of a comparison's curve read: run, metric (index into the names asked for), step,
#: value (0 where NULL) and whether it was NULL (NaN is stored as NULL).
_CURVE_ROW = [("run", "i8"), ("name", "i8"), ("step", "i8"), ("value", "f8"), ("null", "?")]


def _split_curves(rows: Any, names: list[str]) -> dict[int, dict[str, CurvePoints]]:
    """Rows of several runs and metrics into one :class:`CurvePoints` per run and metric."""
    import numpy as np

    rows = rows[np.lexsort((rows["step"], rows["name"], rows["run"]))]
    values = np.where(rows["null"], np.nan, rows["value"])
    new_curve = (np.diff(rows["run"], prepend=-1) != 0) | (np.diff(rows["name"], prepend=-1) != 0)
    starts = np.flatnonzero(new_curve).tolist()
    result: dict[int, dict[str, CurvePoints]] = {}
    for start, stop in zip(starts, [*starts[1:], len(rows)], strict=True):
        steps = rows["step"][start:stop]
        curve = values[start:stop]
        # Each value counts for the steps since the previous point read (from step 0); a NaN
        # counts for nothing. cumsum adds left to right, as a loop would.
        spans = np.diff(steps, prepend=0)
        totals = np.cumsum(np.where(np.isfinite(curve), curve * spans, 0.0))
        name = names[int(rows["name"][start])]
        result.setdefault(int(rows["run"][start]), {})[name] = CurvePoints(
            steps.copy(), curve, totals
        )
    return result


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)
