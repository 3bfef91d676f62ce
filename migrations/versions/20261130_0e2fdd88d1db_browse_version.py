"""browse version: a per-project data version for the image list, bumped by triggers in the
writer's own transaction (app.services.browse_cache keys its page anchors and totals by it)

The triggers fire on every table whose rows can change what the image list returns or its
order: `image` (sort keys, names, the project's images), `annotation` (class and "annotated"
filters, regression targets), `image_attribute` (attribute filter), `split_member` (split
filter; no project_id, reached through its split) and deletions from `split` (a split's
members cascade away after the split row is gone, so the member trigger cannot find the
project then; and SQLite may reuse a deleted split's id). Each bump creates the row when it
is missing (INSERT … ON CONFLICT DO UPDATE) and selects the project row first, so a project
being deleted (its rows cascading away) is not written back.

SQLite: row triggers (it has no statement triggers); its writers are serial anyway and each
bump is a primary-key hit. PostgreSQL: statement triggers with transition tables, one bump per
statement and project however many rows it wrote; the bump locks the project's version row
until the writer commits, so writers of one project serialise (readers never wait).
A later batch migration that rebuilds one of these tables on SQLite drops its triggers and
must create them again (tests/db/test_browse_version.py checks every trigger at head).

Revision ID: 0e2fdd88d1db
Revises: 9d8793b78782
Create Date: 2026-11-30 16:42:19.436765
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0e2fdd88d1db"
down_revision: str | None = "9d8793b78782"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Table -> (events, the project ids of the changed rows `{rows}`: on SQLite the row NEW or
# OLD, on PostgreSQL a transition table).
TABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    table: (("INSERT", "UPDATE", "DELETE"), "{rows}.project_id", "SELECT project_id FROM {rows}")
    for table in ("image", "annotation", "image_attribute")
}
TABLES["split_member"] = (
    ("INSERT", "UPDATE", "DELETE"),
    "(SELECT s.project_id FROM split s WHERE s.id = {rows}.split_id)",
    "SELECT s.project_id FROM {rows} r JOIN split s ON s.id = r.split_id",
)
TABLES["split"] = (("DELETE",), "{rows}.project_id", "SELECT project_id FROM {rows}")


def _bump(where: str, plus: str) -> str:
    """Bump (or create at 1) the version of each existing project the condition selects."""
    # Only this module's fixed table and column names go into the text.
    insert = "INSERT INTO browse_version (project_id, version) SELECT p.id, 1 FROM project p"
    return (
        f"{insert} WHERE {where} ON CONFLICT (project_id) DO UPDATE SET version = {plus}version + 1"
    )


def _sqlite_triggers() -> list[str]:
    statements = []
    for table, (events, project, _) in TABLES.items():
        for event in events:
            rows = {"INSERT": ["NEW"], "DELETE": ["OLD"], "UPDATE": ["NEW", "OLD"]}[event]
            body = " ".join(_bump(f"p.id = {project.format(rows=r)}", "") + ";" for r in rows)
            statements.append(
                f"CREATE TRIGGER browse_bump_{table}_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN {body} END"
            )
    return statements


def _postgres_triggers() -> list[str]:
    statements = []
    for table, (events, _, projects) in TABLES.items():
        new, old = projects.format(rows="new_rows"), projects.format(rows="old_rows")
        plus = "browse_version."
        statements.append(
            f"CREATE FUNCTION browse_bump_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN "
            f"IF TG_OP = 'INSERT' THEN {_bump(f'p.id IN ({new})', plus)}; "
            f"ELSIF TG_OP = 'DELETE' THEN {_bump(f'p.id IN ({old})', plus)}; "
            f"ELSE {_bump(f'p.id IN ({new} UNION {old})', plus)}; "
            "END IF; RETURN NULL; END $$"
        )
        for event in events:
            referencing = {
                "INSERT": "NEW TABLE AS new_rows",
                "DELETE": "OLD TABLE AS old_rows",
                "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
            }[event]
            statements.append(
                f"CREATE TRIGGER browse_bump_{table}_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {referencing} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION browse_bump_{table}()"
            )
    return statements


def upgrade() -> None:
    op.create_table(
        "browse_version",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        statements = _sqlite_triggers()
    elif dialect == "postgresql":
        statements = _postgres_triggers()
    else:
        raise NotImplementedError(f"browse version triggers for {dialect}")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, (events, _, _) in TABLES.items():
        for event in events:
            suffix = f" ON {table}" if dialect == "postgresql" else ""
            op.execute(f"DROP TRIGGER IF EXISTS browse_bump_{table}_{event.lower()}{suffix}")
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS browse_bump_{table}()")
    op.drop_table("browse_version")
