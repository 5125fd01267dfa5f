"""The studio's tables, as SQLAlchemy 2.0 typed mappings.

Every schema change here needs a migration in ``storage/migrations/versions``; the integration
tests compare the migrated database with these tables on SQLite and PostgreSQL and fail on any
difference.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    DateTime,
    Double,
    Enum,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from codetune_studio.core.status import RunStatus

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

__all__ = [
    "NAMING_CONVENTION",
    "AuditRow",
    "Base",
    "DatasetRow",
    "EvalResultRow",
    "MetricRow",
    "ModelVersionRow",
    "PluginResultRow",
    "RunRow",
    "TrainingConfigRow",
    "UTCDateTime",
    "utcnow",
]

#: Deterministic constraint names, so migrations can refer to them on every dialect.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones and hands back naive values, which
    this type marks as UTC again so both dialects return the same thing.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        """Normalise to UTC before writing; a naive value is taken to be UTC already."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        """Return an aware UTC datetime on every dialect."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base holding the studio's metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class DatasetRow(Base):
    """A registered dataset."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(128))
    num_rows: Mapped[int] = mapped_column(Integer)
    num_train: Mapped[int | None] = mapped_column(Integer)
    num_validation: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingConfigRow(Base):
    """A named training recipe with an optimistic-lock version."""

    __tablename__ = "training_configs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    recipe: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # SQLAlchemy adds "AND version = <loaded>" to every UPDATE and bumps it, so a save based on a
    # stale copy updates no row and raises StaleDataError instead of overwriting someone's change.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class RunRow(Base):
    """A training run and its lifecycle."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Stored as plain text with a CHECK constraint rather than a native PostgreSQL enum, so adding
    # a status later is a constraint change, not an ALTER TYPE that SQLite cannot mirror.
    status: Mapped[RunStatus] = mapped_column(
        Enum(
            RunStatus,
            name="run_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda statuses: [s.value for s in statuses],
        ),
        index=True,
    )
    owner: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    recipe: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    output_dir: Mapped[str | None] = mapped_column(Text)
    resumed_from_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    config_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_configs.id", ondelete="SET NULL")
    )
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    # Added by migration 0002 (runs and experiments): labels, lineage of clones, the run queue.
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    queue_position: Mapped[int | None] = mapped_column(Integer)
    sweep_id: Mapped[str | None] = mapped_column(String(64), index=True)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    log_path: Mapped[str | None] = mapped_column(Text)


class MetricRow(Base):
    """One metric value of one run at one step.

    The primary key (run_id, name, step) is the uniqueness rule that makes a re-logged step
    replace the old value, and its index is exactly the one reading a curve needs
    (``WHERE run_id = ? AND name = ? ORDER BY step``), so no second index is kept up to date on
    every insert.
    """

    __tablename__ = "metrics"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL stands for NaN: SQLite turns a bound NaN into NULL, so both dialects store it that way.
    value: Mapped[float | None] = mapped_column(Double)
    wall_time: Mapped[float] = mapped_column(Double)


class ModelVersionRow(Base):
    """A trained adapter or model and its provenance."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str] = mapped_column(String(500))
    base_revision: Mapped[str | None] = mapped_column(String(100))
    dataset_fingerprint: Mapped[str | None] = mapped_column(String(128))
    recipe_hash: Mapped[str | None] = mapped_column(String(128))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PluginResultRow(Base):
    """The outcome of one analysis plugin on one target."""

    __tablename__ = "plugin_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    plugin: Mapped[str] = mapped_column(String(200))
    plugin_version: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(32))
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditRow(Base):
    """One audited action: who, when, from where, what; never a secret (migration 0004)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]


class EvalResultRow(Base):
    """One model (or its base) evaluated on a task set: scores and per-task outcomes."""

    __tablename__ = "eval_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    label: Mapped[str] = mapped_column(String(500))
    variant: Mapped[str] = mapped_column(String(16))
    task_source: Mapped[str] = mapped_column(Text)
    num_tasks: Mapped[int] = mapped_column(Integer)
    samples_per_task: Mapped[int] = mapped_column(Integer)
    temperature: Mapped[float] = mapped_column(Double)
    pass_at_1: Mapped[float] = mapped_column(Double)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    tasks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
