"""Repositories: the queries the services need, each working inside a caller's session.

A repository never commits: the unit of work that owns the session does, so one service call
is one transaction however many repositories it uses.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm.exc import StaleDataError

from codetune_studio.core.errors import ConflictError, NotFoundError, StorageError
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus
from codetune_studio.storage.orm import (
    Base,
    DatasetRow,
    MetricRow,
    ModelVersionRow,
    PluginResultRow,
    RunRow,
    TrainingConfigRow,
    utcnow,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy.orm import Session

__all__ = [
    "DatasetRepository",
    "MetricRepository",
    "ModelVersionRepository",
    "PluginResultRepository",
    "RunRepository",
    "TrainingConfigRepository",
]

_ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING)


_RowT = TypeVar("_RowT", bound=Base)


class _Repository:
    """Holds the session of the unit of work the repository works in."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _require(self, model: type[_RowT], key: int, what: str, **options: Any) -> _RowT:
        """Load one row by primary key, or raise :class:`NotFoundError` naming it."""
        row = self._session.get(model, key, **options)
        if row is None:
            msg = f"{what} {key} does not exist."
            raise NotFoundError(msg)
        return row


class DatasetRepository(_Repository):
    """Registered datasets."""

    def create(
        self,
        *,
        name: str,
        source: str,
        format: str,  # noqa: A002 - the column's name, and the word users know
        fingerprint: str,
        num_rows: int,
        num_train: int | None = None,
        num_validation: int | None = None,
    ) -> DatasetRow:
        """Register a dataset.

        Args:
            name: Unique name.
            source: Local path or Hub dataset id.
            format: Dataset format, for example ``jsonl``.
            fingerprint: Content hash.
            num_rows: Rows in the whole dataset.
            num_train: Rows in the training split.
            num_validation: Rows in the validation split.

        Returns:
            The new row, flushed (its id is set).

        Raises:
            ConflictError: If a dataset with that name exists.
        """
        if self.find_by_name(name) is not None:
            msg = f"A dataset named {name!r} is already registered; pick another name."
            raise ConflictError(msg)
        row = DatasetRow(
            name=name,
            source=source,
            format=format,
            fingerprint=fingerprint,
            num_rows=num_rows,
            num_train=num_train,
            num_validation=num_validation,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def get(self, dataset_id: int) -> DatasetRow:
        """Return a dataset by id.

        Raises:
            NotFoundError: If there is none.
        """
        return self._require(DatasetRow, dataset_id, "Dataset")

    def find_by_name(self, name: str) -> DatasetRow | None:
        """Return the dataset with this name, or ``None``."""
        return self._session.scalars(select(DatasetRow).where(DatasetRow.name == name)).first()

    def list_all(self) -> list[DatasetRow]:
        """Return every dataset, by name."""
        return list(self._session.scalars(select(DatasetRow).order_by(DatasetRow.name)))


class TrainingConfigRepository(_Repository):
    """Named training recipes with optimistic locking."""

    def create(self, *, name: str, recipe: Mapping[str, Any], owner: str) -> TrainingConfigRow:
        """Store a new config at version 1.

        Raises:
            ConflictError: If a config with that name exists.
        """
        existing = self._session.scalars(
            select(TrainingConfigRow).where(TrainingConfigRow.name == name)
        ).first()
        if existing is not None:
            msg = f"A training config named {name!r} already exists; pick another name."
            raise ConflictError(msg)
        row = TrainingConfigRow(name=name, recipe=dict(recipe), owner=owner)
        self._session.add(row)
        self._session.flush()
        return row

    def get(self, config_id: int) -> TrainingConfigRow:
        """Return a config by id.

        Raises:
            NotFoundError: If there is none.
        """
        return self._require(TrainingConfigRow, config_id, "Training config")

    def list_all(self) -> list[TrainingConfigRow]:
        """Return every config, by name."""
        return list(
            self._session.scalars(select(TrainingConfigRow).order_by(TrainingConfigRow.name))
        )

    def save(
        self, config_id: int, recipe: Mapping[str, Any], expected_version: int
    ) -> TrainingConfigRow:
        """Replace a config's recipe, if nobody saved it since ``expected_version`` was loaded.

        Args:
            config_id: The config to change.
            recipe: The new recipe.
            expected_version: The version the caller loaded and edited.

        Returns:
            The saved row, at ``expected_version + 1``.

        Raises:
            NotFoundError: If the config does not exist.
            ConflictError: If someone else saved it first; nothing is written.
        """
        # FOR UPDATE (PostgreSQL) makes a concurrent saver wait here and then see the new
        # version; populate_existing refreshes a copy this session may already hold.
        row = self._require(
            TrainingConfigRow,
            config_id,
            "Training config",
            with_for_update=True,
            populate_existing=True,
        )
        if row.version != expected_version:
            raise _config_conflict(row.name, row.version, expected_version)
        name = row.name  # a failed flush expires the row, so read it now
        row.recipe = dict(recipe)
        try:
            self._session.flush()
        except StaleDataError as exc:
            # Someone committed between our read and our UPDATE (SQLite has no FOR UPDATE); the
            # version check in the UPDATE matched no row, so nothing was overwritten.
            raise _config_conflict(name, None, expected_version) from exc
        return row


def _config_conflict(name: str, current: int | None, expected: int) -> ConflictError:
    now = f"now version {current}" if current is not None else "now a newer version"
    return ConflictError(
        f"Training config {name!r} was changed by someone else ({now}, you edited version "
        f"{expected}). Reload it and apply your change again; nothing was overwritten."
    )


class RunRepository(_Repository):
    """Training runs and their lifecycle."""

    def create(
        self,
        *,
        name: str,
        recipe: Mapping[str, Any],
        owner: str,
        host: str,
        output_dir: str | None = None,
        config_id: int | None = None,
        dataset_id: int | None = None,
        resumed_from_id: int | None = None,
        parent_run_id: int | None = None,
        pid: int | None = None,
    ) -> RunRow:
        """Create a PENDING run; ``pid`` is the process that will train or launch it.

        Returns:
            The new row, flushed.
        """
        row = RunRow(
            name=name,
            status=RunStatus.PENDING,
            recipe=dict(recipe),
            owner=owner,
            host=host,
            output_dir=output_dir,
            config_id=config_id,
            dataset_id=dataset_id,
            resumed_from_id=resumed_from_id,
            parent_run_id=parent_run_id,
            pid=pid,
            tags=[],
        )
        self._session.add(row)
        self._session.flush()
        return row

    def get(self, run_id: int) -> RunRow:
        """Return a run by id.

        Raises:
            NotFoundError: If there is none.
        """
        return self._require(RunRow, run_id, "Run")

    def mark_running(
        self, run_id: int, *, pid: int, host: str, total_steps: int | None = None
    ) -> RunRow:
        """Record that a worker started training a PENDING run.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If the run is not PENDING.
        """
        row = self.get(run_id)
        if row.status is not RunStatus.PENDING:
            msg = f"Run {row.name!r} cannot start: it is {row.status.value}, not PENDING."
            raise ConflictError(msg)
        now = utcnow()
        row.status = RunStatus.RUNNING
        row.pid = pid
        row.host = host
        row.started_at = now
        row.heartbeat_at = now
        if total_steps is not None:
            row.total_steps = total_steps
        self._session.flush()
        return row

    def record_worker(
        self, run_id: int, *, pid: int, host: str, log_path: str | None = None
    ) -> RunRow:
        """Record which process on which host is starting a PENDING run, and where it logs.

        A RUNNING run keeps the pid its worker recorded when it started (the launcher's pid may
        be an ``accelerate launch`` parent); only a missing log path is filled in.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If the run has ended (marked lost meanwhile, for example).
        """
        row = self.get(run_id)
        if row.status.is_terminal:
            msg = f"Run {row.name!r} cannot start: it is {row.status.value}, not PENDING."
            raise ConflictError(msg)
        if row.status is RunStatus.PENDING:
            row.pid = pid
            row.host = host
            row.heartbeat_at = utcnow()  # a sign of life: the pid belongs to a process older
        if log_path is not None and (row.status is RunStatus.PENDING or row.log_path is None):
            row.log_path = log_path
        self._session.flush()
        return row

    def heartbeat(self, run_id: int) -> None:
        """Record a sign of life from a running worker.

        Raises:
            NotFoundError: If the run does not exist.
        """
        row = self.get(run_id)
        row.heartbeat_at = utcnow()
        self._session.flush()

    def finish(self, run_id: int, status: RunStatus, *, error: str | None = None) -> RunRow:
        """Record how a run ended.

        Args:
            run_id: The run.
            status: FINISHED, CANCELLED or FAILED.
            error: Why it failed.

        Returns:
            The updated row.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If it has already ended.
            StorageError: If ``status`` is not a terminal status.
        """
        if not status.is_terminal:
            msg = f"A run can only finish as FINISHED, CANCELLED or FAILED, not {status.value}."
            raise StorageError(msg)
        row = self.get(run_id)
        if row.status.is_terminal:
            msg = f"Run {row.name!r} already ended as {row.status.value}."
            raise ConflictError(msg)
        row.status = status
        row.error = error
        row.ended_at = utcnow()
        self._session.flush()
        return row

    def delete(self, run_id: int) -> None:
        """Delete a run that has ended; its metrics go with it (``ON DELETE CASCADE``).

        Model versions and plugin results it produced stay, with their link to it cleared.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If it has not ended (stop it, or mark a lost run as failed, first).
        """
        row = self.get(run_id)
        if not row.status.is_terminal:
            msg = (
                f"Run {row.name!r} is {row.status.value}; stop it (or mark it as failed if its "
                "worker is gone) before deleting it."
            )
            raise ConflictError(msg)
        self._session.delete(row)
        self._session.flush()

    def list_all(
        self, *, status: RunStatus | None = None, limit: int | None = None
    ) -> list[RunRow]:
        """Return runs, newest first.

        Args:
            status: Only runs in this status.
            limit: At most this many.
        """
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc())
        if status is not None:
            query = query.where(RunRow.status == status)
        if limit is not None:
            query = query.limit(limit)
        return list(self._session.scalars(query))

    def find_active(self) -> list[RunRow]:
        """Return the runs that have not ended (PENDING or RUNNING), newest first."""
        query = (
            select(RunRow)
            .where(RunRow.status.in_(_ACTIVE))
            .order_by(RunRow.created_at.desc(), RunRow.id.desc())
        )
        return list(self._session.scalars(query))


class MetricRepository(_Repository):
    """Metric points: written in batches, read one curve at a time."""

    def add_batch(self, run_id: int, points: Sequence[MetricPoint]) -> int:
        """Write many points with one multi-row upsert.

        A point whose (name, step) is already stored for the run replaces the stored value, and
        within one batch the later point wins, so a resumed run that re-logs a step overwrites it.

        Args:
            run_id: The run the points belong to.
            points: The points.

        Returns:
            The number of distinct (name, step) points written.

        Raises:
            NotFoundError: If the run does not exist.
        """
        if not points:
            return 0
        if self._session.get(RunRow, run_id) is None:
            msg = f"Run {run_id} does not exist; its metrics cannot be stored."
            raise NotFoundError(msg)
        # PostgreSQL rejects an upsert that touches one row twice in a statement, so collapse
        # duplicates here, keeping the last value as the upsert would.
        latest: dict[tuple[str, int], MetricPoint] = {(p.name, p.step): p for p in points}
        rows = [
            {
                "run_id": run_id,
                "name": p.name,
                "step": p.step,
                "value": None if math.isnan(p.value) else p.value,
                "wall_time": p.wall_time,
            }
            for p in latest.values()
        ]
        table = Base.metadata.tables[MetricRow.__tablename__]
        keys = ["run_id", "name", "step"]
        if self._session.get_bind().dialect.name == "postgresql":
            # Imported here: the PostgreSQL dialect is a tenth of a second a SQLite studio skips.
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            pg = postgresql_insert(table)
            pg_stmt = pg.on_conflict_do_update(
                index_elements=keys,
                set_={"value": pg.excluded.value, "wall_time": pg.excluded.wall_time},
            )
            self._session.execute(pg_stmt, rows)
        else:
            lite = sqlite_insert(table)
            lite_stmt = lite.on_conflict_do_update(
                index_elements=keys,
                set_={"value": lite.excluded.value, "wall_time": lite.excluded.wall_time},
            )
            self._session.execute(lite_stmt, rows)
        return len(rows)

    def curve(self, run_id: int, name: str) -> list[MetricPoint]:
        """Return one metric of one run, ordered by step."""
        query = (
            select(MetricRow.step, MetricRow.name, MetricRow.value, MetricRow.wall_time)
            .where(MetricRow.run_id == run_id, MetricRow.name == name)
            .order_by(MetricRow.step)
        )
        return [
            MetricPoint(
                step=step,
                name=metric,
                value=math.nan if value is None else value,
                wall_time=wall_time,
            )
            for step, metric, value, wall_time in self._session.execute(query)
        ]

    def names(self, run_id: int) -> list[str]:
        """Return the metric names a run has logged, sorted."""
        query = (
            select(MetricRow.name)
            .where(MetricRow.run_id == run_id)
            .distinct()
            .order_by(MetricRow.name)
        )
        return list(self._session.scalars(query))


class ModelVersionRepository(_Repository):
    """Trained adapters and models, with their ancestry."""

    def create(
        self,
        *,
        name: str,
        path: str,
        base_model: str,
        run_id: int | None = None,
        base_revision: str | None = None,
        dataset_fingerprint: str | None = None,
        recipe_hash: str | None = None,
        parent_id: int | None = None,
    ) -> ModelVersionRow:
        """Register a model version.

        Raises:
            NotFoundError: If ``parent_id`` or ``run_id`` names nothing.
        """
        if parent_id is not None:
            self.get(parent_id)
        if run_id is not None:
            RunRepository(self._session).get(run_id)
        row = ModelVersionRow(
            name=name,
            path=path,
            base_model=base_model,
            run_id=run_id,
            base_revision=base_revision,
            dataset_fingerprint=dataset_fingerprint,
            recipe_hash=recipe_hash,
            parent_id=parent_id,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def get(self, version_id: int) -> ModelVersionRow:
        """Return a model version by id.

        Raises:
            NotFoundError: If there is none.
        """
        return self._require(ModelVersionRow, version_id, "Model version")

    def list_all(self, *, run_id: int | None = None) -> list[ModelVersionRow]:
        """Return model versions, newest first, optionally only those one run produced."""
        query = select(ModelVersionRow).order_by(ModelVersionRow.id.desc())
        if run_id is not None:
            query = query.where(ModelVersionRow.run_id == run_id)
        return list(self._session.scalars(query))

    def lineage(self, version_id: int) -> list[ModelVersionRow]:
        """Return a version followed by its parent, grandparent and so on to the root.

        Raises:
            NotFoundError: If the version does not exist.
        """
        chain = [self.get(version_id)]
        seen = {version_id}
        while (parent_id := chain[-1].parent_id) is not None and parent_id not in seen:
            parent = self._session.get(ModelVersionRow, parent_id)
            if parent is None:
                break
            chain.append(parent)
            seen.add(parent_id)
        return chain


class PluginResultRepository(_Repository):
    """Outcomes of analysis plugins."""

    def add(
        self,
        *,
        plugin: str,
        plugin_version: str,
        target: str,
        status: str,
        findings: Sequence[Mapping[str, Any]],
        error: str | None = None,
        dataset_id: int | None = None,
        run_id: int | None = None,
    ) -> PluginResultRow:
        """Record one plugin outcome.

        Returns:
            The new row, flushed.
        """
        row = PluginResultRow(
            plugin=plugin,
            plugin_version=plugin_version,
            target=target,
            status=status,
            findings=[dict(f) for f in findings],
            error=error,
            dataset_id=dataset_id,
            run_id=run_id,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def list_all(
        self,
        *,
        target: str | None = None,
        dataset_id: int | None = None,
        run_id: int | None = None,
    ) -> list[PluginResultRow]:
        """Return plugin results, newest first, optionally for one target, dataset or run."""
        query = select(PluginResultRow).order_by(
            PluginResultRow.created_at.desc(), PluginResultRow.id.desc()
        )
        if target is not None:
            query = query.where(PluginResultRow.target == target)
        if dataset_id is not None:
            query = query.where(PluginResultRow.dataset_id == dataset_id)
        if run_id is not None:
            query = query.where(PluginResultRow.run_id == run_id)
        return list(self._session.scalars(query))
