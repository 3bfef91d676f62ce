"""HTML pages and HTMX partials. Pages call app.services directly, like the API does."""

from fastapi import APIRouter

from app.web import (
    auth,
    dataset,
    dg_reports,
    evaluation,
    exports,
    gate,
    imports,
    jobs,
    projects,
    splits,
    training,
    weights,
)

web_router = APIRouter(include_in_schema=False)
for module in (
    auth,
    projects,
    dataset,
    imports,
    splits,
    training,
    dg_reports,
    evaluation,
    gate,
    exports,
    jobs,
    weights,
):
    web_router.include_router(module.router)
