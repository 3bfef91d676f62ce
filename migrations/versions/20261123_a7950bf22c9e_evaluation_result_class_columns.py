"""Evaluation results: true and predicted class index columns for confusion-matrix filters.

Revision ID: a7950bf22c9e
Revises: 79e8bbb8274a
Create Date: 2026-11-23 16:37:03.600812
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7950bf22c9e"
down_revision: str | None = "79e8bbb8274a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("evaluation_result", schema=None) as batch_op:
        batch_op.add_column(sa.Column("true_class", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("predicted_class", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_evaluation_result_eval_classes",
            ["evaluation_id", "true_class", "predicted_class"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("evaluation_result", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_result_eval_classes")
        batch_op.drop_column("predicted_class")
        batch_op.drop_column("true_class")
