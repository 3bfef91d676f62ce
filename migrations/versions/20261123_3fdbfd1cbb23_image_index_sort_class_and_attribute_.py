"""image index: Image.sort_class and image_attribute rows, so the grid's sort by class and
attribute filter read indexes (benchmarks/browse_speed.py); both are backfilled here

Revision ID: 3fdbfd1cbb23
Revises: a7950bf22c9e
Create Date: 2026-11-23 18:42:38.309488
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "3fdbfd1cbb23"
down_revision: str | None = "a7950bf22c9e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNLABELLED_SORT = 2**31 - 1


def _text(value: Any) -> str | None:
    # Frozen copy of app.services.image_index.attribute_text as of this revision.
    if isinstance(value, str):
        return value[:300]
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def upgrade() -> None:
    op.create_table(
        "image_attribute",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["image.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("image_id", "key"),
    )
    op.create_index(
        "ix_image_attribute_lookup", "image_attribute", ["project_id", "key", "value", "image_id"]
    )
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "sort_class",
                sa.Integer(),
                server_default=str(UNLABELLED_SORT),
                nullable=False,
            )
        )
    op.create_index("ix_image_project_sort_class", "image", ["project_id", "sort_class", "id"])

    bind = op.get_bind()
    bind.execute(
        sa.text(
            'UPDATE image SET sort_class = COALESCE((SELECT MIN(label_class."index") '
            "FROM annotation JOIN label_class ON label_class.id = annotation.class_id "
            "WHERE annotation.image_id = image.id), :unlabelled)"
        ),
        {"unlabelled": UNLABELLED_SORT},
    )
    rows = []
    for image_id, project_id, attributes in bind.execute(
        sa.text("SELECT id, project_id, attributes FROM image")
    ):
        if isinstance(attributes, str):
            attributes = json.loads(attributes)
        for key, value in (attributes or {}).items():
            text = _text(value)
            if text is not None and len(key) <= 100:
                rows.append({"i": image_id, "p": project_id, "k": key, "v": text})
    if rows:
        bind.execute(
            sa.text(
                "INSERT INTO image_attribute (image_id, project_id, key, value) "
                "VALUES (:i, :p, :k, :v)"
            ),
            rows,
        )


def downgrade() -> None:
    op.drop_index("ix_image_project_sort_class", table_name="image")
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_column("sort_class")
    op.drop_index("ix_image_attribute_lookup", table_name="image_attribute")
    op.drop_table("image_attribute")
