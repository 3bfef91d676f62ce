"""image name search index: an FTS5 trigram table on SQLite, pg_trgm (or a prefix index) on
PostgreSQL, so the dataset grid's file-name search reads an index (benchmarks/browse_speed.py);
and split_member's subset index made covering (split_id, subset, image_id) for the grid's
subset filter

SQLite: `image_name_fts` (external content = image.original_name, trigram tokenizer) kept by
three triggers on `image`, filled here by 'rebuild'. A later batch migration that rebuilds the
image table on SQLite drops these triggers and must create them again
(tests/db/test_migrations.py checks a name inserted at head is found).
PostgreSQL: a GIN trigram index when the pg_trgm extension exists or can be created, else a
b-tree prefix index on lower(original_name) (app.services.name_search reads which one is there).

Revision ID: 5c1e2b7d9a41
Revises: 5c2d7e1f9a41
Create Date: 2026-11-30 03:40:00
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "5c1e2b7d9a41"
down_revision: str | None = "5c2d7e1f9a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = (
    "CREATE VIRTUAL TABLE image_name_fts USING fts5(original_name, content='image', "
    "content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER image_name_fts_insert AFTER INSERT ON image BEGIN "
    "INSERT INTO image_name_fts(rowid, original_name) VALUES (new.id, new.original_name); END",
    "CREATE TRIGGER image_name_fts_delete AFTER DELETE ON image BEGIN "
    "INSERT INTO image_name_fts(image_name_fts, rowid, original_name) "
    "VALUES ('delete', old.id, old.original_name); END",
    "CREATE TRIGGER image_name_fts_update AFTER UPDATE OF original_name ON image BEGIN "
    "INSERT INTO image_name_fts(image_name_fts, rowid, original_name) "
    "VALUES ('delete', old.id, old.original_name); "
    "INSERT INTO image_name_fts(rowid, original_name) VALUES (new.id, new.original_name); END",
    "INSERT INTO image_name_fts(image_name_fts) VALUES ('rebuild')",
)


def upgrade() -> None:
    op.drop_index("ix_split_member_split_subset", table_name="split_member")
    op.create_index(
        "ix_split_member_split_subset", "split_member", ["split_id", "subset", "image_id"]
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
        return
    if bind.dialect.name != "postgresql":
        return
    try:
        # A savepoint: without the right to create the extension only this step rolls back.
        with bind.begin_nested():
            bind.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        trigram = True
    except Exception:  # any refusal (not installed, no privilege) means the fallback
        trigram = False
    if trigram:
        op.execute(
            "CREATE INDEX ix_image_name_trgm ON image USING gin (original_name gin_trgm_ops)"
        )
    else:
        op.execute(
            "CREATE INDEX ix_image_name_prefix ON image "
            "(project_id, lower(original_name) text_pattern_ops)"
        )


def downgrade() -> None:
    op.drop_index("ix_split_member_split_subset", table_name="split_member")
    op.create_index("ix_split_member_split_subset", "split_member", ["split_id", "subset"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS image_name_fts_{name}")
        op.execute("DROP TABLE IF EXISTS image_name_fts")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_image_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_image_name_prefix")
