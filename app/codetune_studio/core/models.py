"""Domain models the services hand to the window and the command line.

Services convert database rows into these with ``Model.model_validate(row, from_attributes=True)``,
so a panel or a CLI command never sees a SQLAlchemy object or a session. They are frozen: to
change something, call a service, which writes and returns a fresh copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from codetune_studio.core.status import RunStatus

__all__ = [
    "DatabaseStatus",
    "DatasetRecord",
    "MetricPoint",
    "ModelVersion",
    "PluginResult",
    "Run",
    "TrainingConfig",
]


class _Record(BaseModel):
    """A stored row as the rest of the studio sees it: immutable, read from attributes."""

    model_config = ConfigDict(frozen=True, from_attributes=True)


class DatasetRecord(_Record):
    """A registered dataset.

    Attributes:
        id: Database id.
        name: Unique name the user picks.
        source: A local path or a Hugging Face Hub dataset id.
        format: The dataset format (for example ``jsonl`` or ``parquet``).
        fingerprint: A content hash, so a model version can name the exact data it saw.
        num_rows: Rows in the whole dataset.
        num_train: Rows in the training split, when split.
        num_validation: Rows in the validation split, when split.
        created_at: When it was registered (UTC).
    """

    id: int
    name: str
    source: str
    format: str
    fingerprint: str
    num_rows: int
    num_train: int | None = None
    num_validation: int | None = None
    created_at: datetime


class TrainingConfig(_Record):
    """A named, versioned training recipe.

    ``version`` is the optimistic-lock counter: saving requires the version that was loaded, so
    two people editing the same config cannot silently overwrite each other.

    Attributes:
        id: Database id.
        name: Unique name.
        recipe: The recipe as JSON-compatible data.
        version: Starts at 1 and grows by one on every save.
        owner: Who created it.
        created_at: When it was created (UTC).
        updated_at: When it was last saved (UTC).
    """

    id: int
    name: str
    recipe: dict[str, Any]
    version: int
    owner: str
    created_at: datetime
    updated_at: datetime


class Run(_Record):
    """One training run, from the moment Train is pressed until it ends.

    Attributes:
        id: Database id.
        name: Display name.
        status: Where the run is in its lifecycle.
        owner: The user who started it.
        host: The machine it runs (or ran) on.
        pid: The worker's process id while it runs.
        heartbeat_at: Last sign of life from the worker (UTC).
        started_at: When the worker started training (UTC).
        ended_at: When it reached a terminal status (UTC).
        created_at: When the run was created (UTC).
        recipe: Snapshot of the recipe it trains with.
        error: Why it failed, for a FAILED run.
        output_dir: Where checkpoints and the adapter go.
        resumed_from_id: The run whose checkpoint it resumed from.
        config_id: The saved training config it came from, if any.
        dataset_id: The registered dataset it trains on, if any.
        tags: Labels the user attached, sorted.
        note: A free-text note.
        parent_run_id: The run it was cloned from ("Clone into Parameters", a sweep's source).
        queue_position: Its place in the queue while QUEUED (smaller runs first).
        sweep_id: The sweep group it belongs to, if any.
        total_steps: The optimizer steps it will run, once the worker knows.
        log_path: The worker's log file, on ``host``.
    """

    id: int
    name: str
    status: RunStatus
    owner: str
    host: str
    pid: int | None = None
    heartbeat_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    created_at: datetime
    recipe: dict[str, Any]
    error: str | None = None
    output_dir: str | None = None
    resumed_from_id: int | None = None
    config_id: int | None = None
    dataset_id: int | None = None
    tags: list[str] = []
    note: str | None = None
    parent_run_id: int | None = None
    queue_position: int | None = None
    sweep_id: str | None = None
    total_steps: int | None = None
    log_path: str | None = None


class ModelVersion(_Record):
    """A trained adapter (or merged model) and where it came from.

    Attributes:
        id: Database id.
        run_id: The run that produced it, if it was trained here.
        name: Display name.
        path: Where the weights are on disk.
        base_model: The base model id or path.
        base_revision: The base model's revision (commit hash), when known.
        dataset_fingerprint: Fingerprint of the data it was trained on.
        recipe_hash: Hash of the recipe it was trained with.
        parent_id: The version it was fine-tuned from, for a chain of fine-tunes.
        created_at: When it was registered (UTC).
    """

    id: int
    run_id: int | None = None
    name: str
    path: str
    base_model: str
    base_revision: str | None = None
    dataset_fingerprint: str | None = None
    recipe_hash: str | None = None
    parent_id: int | None = None
    created_at: datetime


class PluginResult(_Record):
    """What an analysis plugin found about a dataset, a run or a file.

    Attributes:
        id: Database id.
        plugin: The plugin's name.
        plugin_version: The plugin's version.
        target: What was analysed (a path, a dataset name, a sample id).
        dataset_id: The dataset it is about, if any.
        run_id: The run it is about, if any.
        status: The plugin's outcome, for example ``ok`` or ``error``.
        findings: The plugin's findings as JSON-compatible data.
        error: Why the plugin failed, if it did.
        created_at: When it was recorded (UTC).
    """

    id: int
    plugin: str
    plugin_version: str
    target: str
    dataset_id: int | None = None
    run_id: int | None = None
    status: str
    findings: list[dict[str, Any]]
    error: str | None = None
    created_at: datetime


@dataclass(slots=True, frozen=True)
class MetricPoint:
    """One logged value of one metric at one optimizer step.

    A plain dataclass rather than a pydantic model: runs log thousands of these, and they need
    no validation.

    Attributes:
        step: The optimizer step.
        name: The metric name, for example ``train/loss``.
        value: The value (NaN and infinities are kept).
        wall_time: Seconds since the Unix epoch when it was logged.
    """

    step: int
    name: str
    value: float
    wall_time: float


class DatabaseStatus(BaseModel):
    """What ``db status`` reports about the store the studio is using.

    Attributes:
        dialect: ``sqlite`` or ``postgresql``.
        url_masked: The database URL with the password replaced by ``***``.
        revision: The schema revision the database is at, or ``None`` before the first upgrade.
        head_revision: The newest schema revision this studio knows.
        row_counts: Rows per table, for the tables that exist.
        is_fallback: Whether this is the local SQLite store used because PostgreSQL was unreachable.
    """

    model_config = ConfigDict(frozen=True)

    dialect: str
    url_masked: str
    revision: str | None
    head_revision: str
    row_counts: dict[str, int]
    is_fallback: bool = False

    @property
    def is_current(self) -> bool:
        """Whether the schema is at the newest revision this studio knows."""
        return self.revision == self.head_revision
