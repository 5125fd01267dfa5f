"""Run status, shared by the engine, the database and the window."""

from __future__ import annotations

import enum

__all__ = ["RunStatus"]


class RunStatus(enum.StrEnum):
    """Lifecycle of a training run, after Lightning's ``TrainerStatus``."""

    #: Waiting in the run queue for a worker to claim it.
    QUEUED = "QUEUED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        """Whether a run in this status will never change again."""
        return self in {RunStatus.FINISHED, RunStatus.CANCELLED, RunStatus.FAILED}
