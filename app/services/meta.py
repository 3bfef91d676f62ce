"""The task catalogue as the API and the GUI show it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from app.catalog import list_models
from app.tasks import FEATURES, list_tasks


def database_dialect(*, session: Session) -> str:
    """Run a trivial query (so health fails when the database does) and name the backend."""
    session.execute(text("SELECT 1"))
    return session.get_bind().dialect.name


def task_list() -> dict[str, Any]:
    items = []
    for spec in list_tasks():
        items.append(
            {
                "key": spec.key,
                "title": spec.title,
                "description": spec.description,
                "annotation_kinds": list(spec.annotation_kinds),
                "primary_metric": spec.primary_metric,
                "metric_mode": spec.metric_mode,
                "curve_metrics": list(spec.curve_metrics),
                "summary_metric": spec.summary_metric,
                "metrics": [{"key": m.key, "title": m.title, "mode": m.mode} for m in spec.metrics],
                "default_model": spec.default_model,
                "models": [m.id for m in list_models(spec.key)],
                "features": {name: spec.supports(name) for name in FEATURES},
                "available": sorted(spec.features, key=FEATURES.index),
            }
        )
    return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}
