"""The `import` job: glue between a Job and the import pipeline in workers/importing.py."""

from __future__ import annotations

from typing import Any

from workers.context import JobContext
from workers.handlers import register_handler
from workers.importing import run_import


@register_handler("import")
def import_dataset(ctx: JobContext) -> dict[str, Any]:
    """Import params.import_id; progress counts images, cancel stops between batches."""
    summary = run_import(
        ctx.session,
        ctx.storage,
        int(ctx.params["import_id"]),
        ctx,
        taxonomy_from_folders=bool(ctx.params.get("taxonomy_from_folders")),
    )
    ctx.log(
        f"Imported {summary['images']} images, {summary['annotations']} annotations "
        f"({summary['warnings']} warnings, {summary['errors']} errors)"
    )
    return summary
