"""Domain-generalisation reports: one row per report over a leave-one-group-out split family
(the experiments it queued are listed in `runs`; the figures are read from them).

Revision ID: 9d8793b78782
Revises: 5c1e2b7d9a41
Create Date: 2026-11-30 06:59:26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision: str = "9d8793b78782"
down_revision: str | None = "5c1e2b7d9a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dg_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("family", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("runs", sa.JSON(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dg_report_project_id", "dg_report", ["project_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_dg_report_project_id", table_name="dg_report")
    op.drop_table("dg_report")
