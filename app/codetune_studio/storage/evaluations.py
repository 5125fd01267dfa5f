"""The eval results table's queries (kept apart from ``repositories.py`` to merge cleanly)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from codetune_studio.storage.orm import EvalResultRow
from codetune_studio.storage.repositories import ModelVersionRepository, _Repository

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["EvalResultRepository"]


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

    def list_all(
        self, *, model_version_id: int | None = None, limit: int | None = 100
    ) -> list[EvalResultRow]:
        """Return evaluations, newest first, optionally of one model version."""
        query = select(EvalResultRow).order_by(EvalResultRow.id.desc())
        if model_version_id is not None:
            query = query.where(EvalResultRow.model_version_id == model_version_id)
        if limit is not None:
            query = query.limit(limit)
        return list(self._session.scalars(query))
