"""browse indexes: the dataset grid's sort orders and its class filter

Revision ID: 79e8bbb8274a
Revises: 42cfd93ca2ca
Create Date: 2026-11-23 16:44:09.969523
"""

from collections.abc import Sequence

from alembic import op

revision: str = "79e8bbb8274a"
down_revision: str | None = "42cfd93ca2ca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_annotation_class_image", "annotation", ["class_id", "image_id"])
    op.create_index("ix_image_project_bytes", "image", ["project_id", "bytes"])
    op.create_index("ix_image_project_created_at", "image", ["project_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_image_project_created_at", table_name="image")
    op.drop_index("ix_image_project_bytes", table_name="image")
    op.drop_index("ix_annotation_class_image", table_name="annotation")
