"""The eval results table's queries (kept apart from ``repositories.py`` to merge cleanly)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import defer

from codetune_studio.storage.orm import EvalResultRow, ModelVersionRow
from codetune_studio.storage.repositories import ModelVersionRepository, _Repository

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["EvalResultRepository", "EvalScore"]


class EvalScore(NamedTuple):
    """One stored evaluation's scores, by the run whose model version it evaluated."""

    id: int
    run_id: int
    variant: str
    pass_at_1: float
    task_source: str
    metrics: dict[str, Any]


class EvalResultRepository(_Repository):
    """Stored code evaluations."""

    def add(
        self,
        *,
        label: str,
        variant: str,
        task_source: str,
        samples_per_task: int,
        temperature: float,
        pass_at_1: float,
        metrics: Mapping[str, Any],
        tasks: Sequence[Mapping[str, Any]],
        model_version_id: int | None = None,
    ) -> EvalResultRow:
        """Record one evaluation.

        Raises:
            NotFoundError: ``model_version_id`` names nothing.
        """
        if model_version_id is not None:
            ModelVersionRepository(self._session).get(model_version_id)
        row = EvalResultRow(
            label=label,
            variant=variant,
            task_source=task_source,
            num_tasks=len(tasks),
            samples_per_task=samples_per_task,
            temperature=temperature,
            pass_at_1=pass_at_1,
            metrics=dict(metrics),
            tasks=[dict(t) for t in tasks],
            model_version_id=model_version_id,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def get(self, result_id: int) -> EvalResultRow:
        """Return one evaluation.

        Raises:
            NotFoundError: There is none with that id.
        """
        return self._require(EvalResultRow, result_id, "Eval result")

    def link_base(self, tuned: EvalResultRow, base: EvalResultRow) -> None:
        """Note in ``tuned`` which row holds its base, evaluated alongside on the same tasks.

        The link lives in the ``metrics`` document (no schema change): two evaluations of one
        model version running at once would otherwise make "the next base row" ambiguous.
        """
        tuned.metrics = {**tuned.metrics, "base_result_id": base.id}
        self._session.flush()

    def list_all(
        self,
        *,
        model_version_id: int | None = None,
        limit: int | None = 100,
        with_tasks: bool = True,
    ) -> list[EvalResultRow]:
        """Return evaluations, newest first, optionally of one model version.

        Args:
            model_version_id: Only this model version's.
            limit: At most this many.
            with_tasks: Read the per-task outcomes too (the largest column by far); without
                them, touching ``tasks`` on a row costs one query per row.
        """
        query = select(EvalResultRow).order_by(EvalResultRow.id.desc())
        if not with_tasks:
            query = query.options(defer(EvalResultRow.tasks))
        if model_version_id is not None:
            query = query.where(EvalResultRow.model_version_id == model_version_id)
        if limit is not None:
            query = query.limit(limit)
        return list(self._session.scalars(query))

    def of_runs(self, run_ids: Sequence[int]) -> list[tuple[int, EvalResultRow]]:
        """Every evaluation of the model versions these runs produced, newest first.

        One query, without the per-task outcomes. An evaluation belongs to a run through its
        model version (``eval RUN_ID``, ``eval v:ID``, or the run's adapter folder).

        Returns:
            ``(run id, evaluation)`` pairs, base rows included.
        """
        if not run_ids:
            return []
        query = (
            select(ModelVersionRow.run_id, EvalResultRow)
            .join(ModelVersionRow, EvalResultRow.model_version_id == ModelVersionRow.id)
            .where(ModelVersionRow.run_id.in_(list(run_ids)))
            .options(defer(EvalResultRow.tasks))
            .order_by(EvalResultRow.id.desc())
        )
        return [(run_id, row) for run_id, row in self._session.execute(query) if run_id is not None]

    def scores_of_runs(self, run_ids: Sequence[int]) -> list[EvalScore]:
        """The scores of every evaluation of these runs' model versions, newest first.

        The runs list reads this on each refresh, so it selects plain columns: no per-task
        outcomes and no ORM objects.
        """
        if not run_ids:
            return []
        query = (
            select(
                EvalResultRow.id,
                ModelVersionRow.run_id,
                EvalResultRow.variant,
                EvalResultRow.pass_at_1,
                EvalResultRow.task_source,
                EvalResultRow.metrics,
            )
            .join(ModelVersionRow, EvalResultRow.model_version_id == ModelVersionRow.id)
            .where(ModelVersionRow.run_id.in_(list(run_ids)))
            .order_by(EvalResultRow.id.desc())
        )
        return [
            EvalScore(row.id, row.run_id, row.variant, row.pass_at_1, row.task_source, row.metrics)
            for row in self._session.execute(query)
            if row.run_id is not None
        ]

    def model_version_at(self, paths: Sequence[str]) -> int | None:
        """The newest model version stored at one of ``paths`` (a folder given by path)."""
        if not paths:
            return None
        query = (
            select(ModelVersionRow.id)
            .where(ModelVersionRow.path.in_(list(paths)))
            .order_by(ModelVersionRow.id.desc())
            .limit(1)
        )
        return self._session.scalar(query)
