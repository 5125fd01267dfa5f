"""Runs, metrics, training configs, datasets and model versions: the experiment record.

Every method is one unit of work: it opens a session, does its reads and writes, converts the
rows to frozen core models, and commits (or rolls back) before returning. So the objects handed
out are plain data, safe to pass to another thread.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from codetune_studio.core.models import (
    DatasetRecord,
    MetricPoint,
    ModelVersion,
    PluginResult,
    Run,
    TrainingConfig,
)
from codetune_studio.core.redact import known_secret_values, scrub
from codetune_studio.storage.repositories import (
    DatasetRepository,
    MetricRepository,
    ModelVersionRepository,
    PluginResultRepository,
    RunRepository,
    TrainingConfigRepository,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from codetune_studio.core.status import RunStatus
    from codetune_studio.storage.db import Database

__all__ = ["ExperimentService", "current_host", "current_user"]

logger = logging.getLogger(__name__)


def current_user() -> str:
    """The login name of the user running the studio, or ``unknown``."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry, as in some containers
        return "unknown"


def current_host() -> str:
    """This machine's host name."""
    return socket.gethostname()


class ExperimentService:
    """The experiment record the window, the CLI and the worker share.

    Args:
        database: The database to use; one per process.
    """

    def __init__(self, database: Database) -> None:
        self._uow = database.unit_of_work
        self._database = database

    @property
    def database(self) -> Database:
        """The database this service works on (for sibling services on the same store)."""
        return self._database

    # Runs -----------------------------------------------------------------------------------

    def create_run(
        self,
        name: str,
        recipe: Mapping[str, Any],
        *,
        owner: str | None = None,
        host: str | None = None,
        output_dir: str | None = None,
        config_id: int | None = None,
        dataset_id: int | None = None,
        resumed_from_id: int | None = None,
        parent_run_id: int | None = None,
        pid: int | None = None,
    ) -> Run:
        """Create a PENDING run with a snapshot of its recipe.

        Args:
            name: Display name.
            recipe: The recipe as JSON-compatible data (``recipe.model_dump(mode="json")``).
            owner: Who starts it; the current user by default.
            host: Where it will run; this machine by default.
            output_dir: Where its checkpoints go.
            config_id: The saved config it came from.
            dataset_id: The registered dataset it trains on.
            resumed_from_id: The run whose checkpoint it resumes.
            parent_run_id: The run it was cloned from.
            pid: The process on ``host`` that will train or launch it: once that process is
                gone, a run still PENDING is marked lost at once (``services.runs``).

        Returns:
            The new run.
        """
        with self._uow() as session:
            row = RunRepository(session).create(
                name=name,
                recipe=recipe,
                owner=owner or current_user(),
                host=host or current_host(),
                output_dir=output_dir,
                config_id=config_id,
                dataset_id=dataset_id,
                resumed_from_id=resumed_from_id,
                parent_run_id=parent_run_id,
                pid=pid,
            )
            run = Run.model_validate(row, from_attributes=True)
        logger.info("Created run %s (%s)", run.id, run.name)
        return run

    def start_run(
        self,
        run_id: int,
        *,
        pid: int | None = None,
        host: str | None = None,
        total_steps: int | None = None,
    ) -> Run:
        """Mark a PENDING run as RUNNING in this (or the given) process.

        ``total_steps``, when known, is kept so the runs list can show steps done of total.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If it is not PENDING.
        """
        with self._uow() as session:
            row = RunRepository(session).mark_running(
                run_id,
                pid=pid if pid is not None else os.getpid(),
                host=host or current_host(),
                total_steps=total_steps,
            )
            return Run.model_validate(row, from_attributes=True)

    def record_worker(
        self,
        run_id: int,
        *,
        pid: int | None = None,
        host: str | None = None,
        log_path: str | None = None,
    ) -> Run:
        """Record the process starting a PENDING run (this one by default) and its log file.

        Called by whoever launches the worker, right after it starts, and by the worker itself
        as soon as it reaches the database, so a worker killed during start-up leaves a pid
        that any studio process can find dead.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If the run has already ended.
        """
        with self._uow() as session:
            row = RunRepository(session).record_worker(
                run_id,
                pid=pid if pid is not None else os.getpid(),
                host=host or current_host(),
                log_path=log_path,
            )
            return Run.model_validate(row, from_attributes=True)

    def heartbeat(self, run_id: int) -> None:
        """Record that a run's worker is alive.

        Raises:
            NotFoundError: If the run does not exist.
        """
        with self._uow() as session:
            RunRepository(session).heartbeat(run_id)

    def finish_run(self, run_id: int, status: RunStatus, *, error: str | None = None) -> Run:
        """Record how a run ended.

        Args:
            run_id: The run.
            status: FINISHED, CANCELLED or FAILED.
            error: Why it failed.

        Returns:
            The ended run.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If it had already ended.
        """
        if error:
            # Whoever reports the end (a worker, a window, a sweep), the stored reason is masked.
            error = scrub(error, known_secret_values())
        with self._uow() as session:
            row = RunRepository(session).finish(run_id, status, error=error)
            run = Run.model_validate(row, from_attributes=True)
        logger.info("Run %s ended as %s", run.id, run.status.value)
        return run

    def delete_run(self, run_id: int) -> None:
        """Delete an ended run and its metrics from the database; its files stay on disk.

        Args:
            run_id: The run.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If it has not ended.
        """
        with self._uow() as session:
            RunRepository(session).delete(run_id)
        logger.info("Deleted run %s", run_id)

    def get_run(self, run_id: int) -> Run:
        """Return one run.

        Raises:
            NotFoundError: If it does not exist.
        """
        with self._uow() as session:
            return Run.model_validate(RunRepository(session).get(run_id), from_attributes=True)

    def list_runs(self, *, status: RunStatus | None = None, limit: int | None = 100) -> list[Run]:
        """Return runs, newest first, optionally only those in one status."""
        with self._uow() as session:
            rows = RunRepository(session).list_all(status=status, limit=limit)
            return [Run.model_validate(row, from_attributes=True) for row in rows]

    def active_runs(self) -> list[Run]:
        """Return the PENDING and RUNNING runs, newest first."""
        with self._uow() as session:
            rows = RunRepository(session).find_active()
            return [Run.model_validate(row, from_attributes=True) for row in rows]

    # Metrics --------------------------------------------------------------------------------

    def record_metrics(self, run_id: int, points: Sequence[MetricPoint]) -> int:
        """Store a batch of metric points in one transaction.

        A point for a (name, step) the run already has replaces the old value.

        Returns:
            The number of distinct points written.

        Raises:
            NotFoundError: If the run does not exist.
        """
        with self._uow() as session:
            return MetricRepository(session).add_batch(run_id, points)

    def metric_curve(self, run_id: int, name: str) -> list[MetricPoint]:
        """Return one metric of one run, ordered by step."""
        with self._uow() as session:
            return MetricRepository(session).curve(run_id, name)

    def metric_points_after(self, run_id: int, after_step: int) -> list[MetricPoint]:
        """Every metric point of a run at a step after ``after_step``, ordered by step.

        Following a run calls this with the last step it has seen, so each poll reads only
        the new rows (one query) instead of every whole curve.
        """
        from codetune_studio.storage.run_history import RunHistoryRepository

        with self._uow() as session:
            return RunHistoryRepository(session).points_after(run_id, after_step)

    def metric_names(self, run_id: int) -> list[str]:
        """Return the names of the metrics a run has logged."""
        with self._uow() as session:
            return MetricRepository(session).names(run_id)

    # Training configs -----------------------------------------------------------------------

    def create_training_config(
        self, name: str, recipe: Mapping[str, Any], *, owner: str | None = None
    ) -> TrainingConfig:
        """Save a new named config at version 1.

        Raises:
            ConflictError: If the name is taken.
        """
        with self._uow() as session:
            row = TrainingConfigRepository(session).create(
                name=name, recipe=recipe, owner=owner or current_user()
            )
            return TrainingConfig.model_validate(row, from_attributes=True)

    def save_training_config(
        self, config_id: int, recipe: Mapping[str, Any], *, expected_version: int
    ) -> TrainingConfig:
        """Replace a config's recipe, unless someone saved it since it was loaded.

        Args:
            config_id: The config.
            recipe: The edited recipe.
            expected_version: The ``version`` of the copy that was edited.

        Returns:
            The saved config, one version up.

        Raises:
            NotFoundError: If it does not exist.
            ConflictError: If someone else saved first; the stored config is left as they saved it.
        """
        with self._uow() as session:
            row = TrainingConfigRepository(session).save(config_id, recipe, expected_version)
            return TrainingConfig.model_validate(row, from_attributes=True)

    def get_training_config(self, config_id: int) -> TrainingConfig:
        """Return one config.

        Raises:
            NotFoundError: If it does not exist.
        """
        with self._uow() as session:
            row = TrainingConfigRepository(session).get(config_id)
            return TrainingConfig.model_validate(row, from_attributes=True)

    def list_training_configs(self) -> list[TrainingConfig]:
        """Return every config, by name."""
        with self._uow() as session:
            rows = TrainingConfigRepository(session).list_all()
            return [TrainingConfig.model_validate(row, from_attributes=True) for row in rows]

    # Datasets -------------------------------------------------------------------------------

    def register_dataset(
        self,
        name: str,
        *,
        source: str,
        format: str,  # noqa: A002 - matches the stored field
        fingerprint: str,
        num_rows: int,
        num_train: int | None = None,
        num_validation: int | None = None,
    ) -> DatasetRecord:
        """Register a dataset.

        Raises:
            ConflictError: If the name is taken.
        """
        with self._uow() as session:
            row = DatasetRepository(session).create(
                name=name,
                source=source,
                format=format,
                fingerprint=fingerprint,
                num_rows=num_rows,
                num_train=num_train,
                num_validation=num_validation,
            )
            return DatasetRecord.model_validate(row, from_attributes=True)

    def list_datasets(self) -> list[DatasetRecord]:
        """Return every registered dataset, by name."""
        with self._uow() as session:
            rows = DatasetRepository(session).list_all()
            return [DatasetRecord.model_validate(row, from_attributes=True) for row in rows]

    # Model versions and plugin results ------------------------------------------------------

    def add_model_version(
        self,
        name: str,
        *,
        path: str,
        base_model: str,
        run_id: int | None = None,
        base_revision: str | None = None,
        dataset_fingerprint: str | None = None,
        recipe_hash: str | None = None,
        parent_id: int | None = None,
    ) -> ModelVersion:
        """Register a trained adapter or model.

        Raises:
            NotFoundError: If ``run_id`` or ``parent_id`` names nothing.
        """
        with self._uow() as session:
            row = ModelVersionRepository(session).create(
                name=name,
                path=path,
                base_model=base_model,
                run_id=run_id,
                base_revision=base_revision,
                dataset_fingerprint=dataset_fingerprint,
                recipe_hash=recipe_hash,
                parent_id=parent_id,
            )
            return ModelVersion.model_validate(row, from_attributes=True)

    def list_model_versions(self, *, run_id: int | None = None) -> list[ModelVersion]:
        """Return model versions, newest first, optionally only those one run produced."""
        with self._uow() as session:
            rows = ModelVersionRepository(session).list_all(run_id=run_id)
            return [ModelVersion.model_validate(row, from_attributes=True) for row in rows]

    def lineage(self, version_id: int) -> list[ModelVersion]:
        """Return a model version, then its parent, and so on back to the first one.

        Raises:
            NotFoundError: If the version does not exist.
        """
        with self._uow() as session:
            rows = ModelVersionRepository(session).lineage(version_id)
            return [ModelVersion.model_validate(row, from_attributes=True) for row in rows]

    def record_plugin_result(
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
    ) -> PluginResult:
        """Store what an analysis plugin found; its error text is scrubbed of secrets first."""
        if error:
            error = scrub(error, known_secret_values())
        with self._uow() as session:
            row = PluginResultRepository(session).add(
                plugin=plugin,
                plugin_version=plugin_version,
                target=target,
                status=status,
                findings=findings,
                error=error,
                dataset_id=dataset_id,
                run_id=run_id,
            )
            return PluginResult.model_validate(row, from_attributes=True)

    def list_plugin_results(
        self, *, target: str | None = None, run_id: int | None = None
    ) -> list[PluginResult]:
        """Return plugin results, newest first, optionally for one target or run."""
        with self._uow() as session:
            rows = PluginResultRepository(session).list_all(target=target, run_id=run_id)
            return [PluginResult.model_validate(row, from_attributes=True) for row in rows]
