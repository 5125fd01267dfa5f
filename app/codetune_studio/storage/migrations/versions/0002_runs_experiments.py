"""Runs and experiments: tags and note, clone lineage, the run queue, sweeps, log location.

Adds the QUEUED status (a CHECK constraint change: SQLite needs a table copy, so the whole change
goes through Alembic's batch mode, which is a plain ALTER on PostgreSQL).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = ("PENDING", "RUNNING", "FINISHED", "CANCELLED", "FAILED")
NEW_STATUSES = ("QUEUED", *OLD_STATUSES)


def _status_check(statuses: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{status}'" for status in statuses) + ")"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("parent_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("queue_position", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sweep_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("total_steps", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("log_path", sa.Text(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_runs_parent_run_id_runs"),
            "runs",
            ["parent_run_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_runs_sweep_id"), ["sweep_id"], unique=False)
        batch.drop_constraint(op.f("ck_runs_run_status"), type_="check")
        batch.create_check_constraint(op.f("ck_runs_run_status"), _status_check(NEW_STATUSES))
    # Existing runs get an empty tag list, so readers never meet NULL.
    op.execute("UPDATE runs SET tags = '[]' WHERE tags IS NULL")
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("tags", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    op.execute("DELETE FROM runs WHERE status = 'QUEUED'")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_run_status"), type_="check")
        batch.create_check_constraint(op.f("ck_runs_run_status"), _status_check(OLD_STATUSES))
        batch.drop_index(op.f("ix_runs_sweep_id"))
        batch.drop_constraint(op.f("fk_runs_parent_run_id_runs"), type_="foreignkey")
        batch.drop_column("log_path")
        batch.drop_column("total_steps")
        batch.drop_column("sweep_id")
        batch.drop_column("queue_position")
        batch.drop_column("parent_run_id")
        batch.drop_column("note")
        batch.drop_column("tags")
